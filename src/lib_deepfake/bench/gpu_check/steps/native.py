"""Step ``native``: build the native crop library with CMake (CUDA when ``nvcc`` is there) and run ctest."""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lib_deepfake.bench.gpu_check.checks import check
from lib_deepfake.bench.gpu_check.harness import run_cmd, tail

if TYPE_CHECKING:
    from lib_deepfake.bench.gpu_check.profiles import Profile

logger = logging.getLogger(__name__)


def parse_ctest(output: str) -> dict[str, Any]:
    """ctest's output -> ``{"tests": {name: Passed|Skipped|Failed|...}, "counts": {status: n}}``."""
    tests: dict[str, str] = {}
    for m in re.finditer(r"Test\s+#\d+:\s+(\S+)\s+\.+\s*(\*\*\*)?\s*(Passed|Skipped|Failed|\S+)", output):
        tests[m.group(1)] = m.group(3)
    for m in re.finditer(r"\d+ - (\S+) \((\w+)\)", output):  # the "did not run / failed" summary lines
        tests.setdefault(m.group(1), m.group(2))
    counts: dict[str, int] = {}
    for status in tests.values():
        counts[status] = counts.get(status, 0) + 1
    return {"tests": tests, "counts": counts}


def drop_foreign_cmake_cache(build: Path, repo: Path) -> None:
    """Remove a CMake cache that belongs to another source tree (a build folder copied along with the checkout),
    which would make ``cmake -S repo -B build`` refuse to configure."""
    cache = build / "CMakeCache.txt"
    if not cache.is_file():
        return
    for line in cache.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("CMAKE_HOME_DIRECTORY:"):
            home = Path(line.split("=", 1)[1].strip())
            if home.resolve() != repo.resolve():
                logger.info("removing %s: configured for %s, not %s", cache, home, repo)
                cache.unlink()
                shutil.rmtree(build / "CMakeFiles", ignore_errors=True)
            return


def step_native(ctx: dict[str, Any], profile: Profile) -> dict[str, Any]:
    repo = Path(ctx["repo"])
    checks: list[dict[str, Any]] = []
    data: dict[str, Any] = {}
    log = Path(ctx["out"]) / "logs" / "native.log"
    deadline = time.monotonic() + float(ctx.get("step_budget_s", 120)) - 5
    prebuilt = os.environ.get("LIB_DEEPFAKE_NATIVE_LIB")
    if not (repo / "CMakeLists.txt").is_file():
        return {
            "checks": [check("build", "skip", f"no CMakeLists.txt in {repo}")],
            "data": data,
            "summary": "no native sources",
        }
    cmake = shutil.which("cmake")
    # A folder of its own (not build/native): the kit must not reconfigure the developer's build, and the GPU and
    # dry-run configurations differ (CUDA on/off), so each keeps its own incremental build.
    build = Path(ctx.get("native_build") or repo / "build" / f"gpu-check-native-{profile.name}")
    drop_foreign_cmake_cache(build, repo)
    if prebuilt and Path(prebuilt).exists() and (profile.name != "gpu" or cmake is None):
        # Dry run inside `make test`: the library was just built and tested there; do not build it twice.
        build = Path(prebuilt) if Path(prebuilt).is_dir() else Path(prebuilt).parent
        checks.append(check("build", "skip", f"using the prebuilt library in {build} (LIB_DEEPFAKE_NATIVE_LIB)"))
    elif cmake is None:
        return {
            "checks": [check("build", "skip", "cmake not found: native library not built (torch crop path used)")],
            "data": data,
            "summary": "cmake missing",
        }
    else:
        args = [cmake, "-S", str(repo), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"]
        nvcc = shutil.which("nvcc")
        if nvcc is None and Path("/usr/local/cuda/bin/nvcc").is_file():
            nvcc = "/usr/local/cuda/bin/nvcc"
            args.append(f"-DCMAKE_CUDA_COMPILER={nvcc}")
        if profile.name == "gpu":
            args.append("-DLIBDF_CUDA=AUTO")
            cc = ctx.get("compute_capability")
            if cc and nvcc:
                # Only this card's architecture: halves the nvcc time and the kit runs on a clock.
                args.append(f"-DCMAKE_CUDA_ARCHITECTURES={cc.replace('.', '')}")
        else:
            args.append("-DLIBDF_CUDA=OFF")  # the dry run checks the C++ side; nvcc without a GPU proves little
        t0 = time.perf_counter()
        code, out = run_cmd(args, timeout=deadline - time.monotonic(), log=log)
        if code == 0:
            jobs = str(max(1, min(os.cpu_count() or 1, 16)))
            code, out = run_cmd(
                [cmake, "--build", str(build), "-j", jobs], timeout=deadline - time.monotonic(), log=log
            )
        data["build_s"] = round(time.perf_counter() - t0, 1)
        data["nvcc"] = nvcc
        if code != 0:
            why = "timed out" if code is None else f"exit {code}"
            checks.append(check("build", "fail", f"cmake {why}: {tail(out, 3)}"))
            return {"checks": checks, "data": data, "summary": f"build failed ({why})"}
        checks.append(check("build", "pass", f"built in {data['build_s']} s in {build}"))
    libs = sorted(p.name for p in build.glob("libdeepfake_crop*.so"))
    data["libraries"] = libs
    data["build_dir"] = str(build)
    cuda_lib = "libdeepfake_crop_cuda.so" in libs
    if profile.name == "gpu":
        checks.append(
            check(
                "cuda library",
                "pass" if cuda_lib else "skip",
                "libdeepfake_crop_cuda.so built"
                if cuda_lib
                else "no CUDA library (nvcc not found): the CUDA crop kernel cannot be checked",
            )
        )
    ctest = shutil.which("ctest")
    if ctest and (build / "CTestTestfile.cmake").is_file():
        remaining = deadline - time.monotonic()
        code, out = run_cmd(
            [ctest, "--test-dir", str(build), "--output-on-failure", "--timeout", "120"], timeout=remaining, log=log
        )
        parsed = parse_ctest(out)
        data["ctest"] = parsed
        counts = parsed["counts"]
        summary = ", ".join(f"{v} {k.lower()}" for k, v in sorted(counts.items())) or tail(out, 1)
        checks.append(check("ctest", "pass" if code == 0 else "fail", summary if code is not None else "timed out"))
        kernel = parsed["tests"].get("cuda.kernel_matches_reference")
        if profile.name == "gpu" and cuda_lib:
            status = {"Passed": "pass", "Skipped": "fail"}.get(kernel or "", "fail" if kernel else "skip")
            checks.append(check("ctest cuda.kernel_matches_reference", status, f"ctest: {kernel or 'not registered'}"))
    else:
        checks.append(check("ctest", "skip", "ctest or the test registry missing (LIBDF_BUILD_TESTS=OFF?)"))
    context = {"native_lib": str(build)} if libs else {}
    return {
        "checks": checks,
        "data": data,
        "context": context,
        "summary": f"{', '.join(libs) or 'no library'}; " + (checks[-1]["detail"] if checks else ""),
    }
