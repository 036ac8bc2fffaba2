"""One ``lib-eval`` run: load the model once, score each prepared dataset, compute the metrics, write the outputs.

Threads on CPU: PNG reading is cheap next to the classifier, so on a small machine the crops are read in this
process and the engine gets every core; from 4 cores up a few reader processes (a quarter of the cores, at most 4)
keep the engine fed and the engine gets the rest. On CUDA the readers get up to half the cores.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lib_deepfake.errors import LibDeepfakeError

__all__ = ["EVAL_VERSION", "evaluate", "plan_threads"]

EVAL_VERSION = 1
PROTOCOL = (
    "frame level: every scored crop (the LIB paper's metric); video level: mean of a video's frame scores "
    "(DeepfakeBench) and identity-max (lib-infer); accuracy of the verdict 'fake if score >= threshold'"
)


def plan_threads(cores: int, on_cuda: bool, workers: int | None, threads: int | None) -> tuple[int, int]:
    """(PNG reader processes, engine intra-op threads) for ``cores`` usable cores; explicit values win."""
    if workers is None:
        workers = min(8, cores // 2) if on_cuda else (0 if cores < 4 else min(4, cores // 4))
    if threads is None:
        threads = max(1, cores - workers)
    return workers, threads


def _engine_options(name: str, device: str, precision: str | None, threads: int, allow_cpu_fallback: bool,
                    spin: bool) -> dict[str, Any]:  # fmt: skip
    opts: dict[str, Any] = {"device": device}
    if precision is not None:
        if name != "torch":
            raise LibDeepfakeError(
                f"--precision applies to checkpoints (torch engine); a {name} artifact has its precision built in"
            )
        opts["precision"] = precision
    if name == "onnxrt":
        on_cpu = device == "cpu"
        opts.update(threads=threads if on_cpu else None, allow_cpu_fallback=allow_cpu_fallback or None,
                    spin=spin if on_cpu else None)  # fmt: skip
    return opts


def evaluate(
    model: Path | str,
    dataset_root: Path | str,
    datasets: list[str],
    out_dir: Path | str,
    *,
    split: str = "test",
    engine: str = "auto",
    device: str = "cpu",
    precision: str | None = None,
    batch_size: int = 64,
    frames_per_video: int | None = None,
    threshold: float | None = None,
    min_faces: int = 3,
    workers: int | None = None,
    threads: int | None = None,
    allow_cpu_fallback: bool = False,
    progress: Callable[[Iterable[Any], int, str], Iterable[Any]] | None = None,
) -> dict[str, Any]:
    """Evaluate a checkpoint or exported artifact on several prepared datasets; write eval.json, eval.md, plots.

    Args:
        model: checkpoint (.pth/.pt), ONNX model or TensorRT plan.
        dataset_root, datasets, split: prepared datasets ``ROOT/NAME/{split}_{real,fake}.txt``.
        out_dir: output folder.
        engine: ``auto`` (from the suffix), ``torch``, ``onnxrt`` or ``trt``.
        device, precision, allow_cpu_fallback: engine options (precision: torch only).
        batch_size: crops per engine call.
        frames_per_video: None = every listed crop, N = N evenly spaced per folder.
        threshold: verdict threshold; None = the model card's calibrated threshold, else 0.5 (said so).
        min_faces: identity-max ignores identities with fewer crops (unless none has that many).
        workers, threads: PNG reader processes and engine threads (None: :func:`plan_threads`).
        progress: progress-bar wrapper ``(iterable, total, description) -> iterable``.

    Returns:
        The eval.json content.
    """
    import torch

    from lib_deepfake._optional import require
    from lib_deepfake.engines import create_engine, engine_for_artifact
    from lib_deepfake.evaluation.metrics import dataset_metrics
    from lib_deepfake.evaluation.report import write_outputs
    from lib_deepfake.evaluation.scoring import score_dataset
    from lib_deepfake.manifest import command_line, library_versions
    from lib_deepfake.model.card import load_card
    from lib_deepfake.model.checkpoint import file_sha256
    from lib_deepfake.model.threshold import resolve_threshold
    from lib_deepfake.pipeline.config import usable_cores

    t0 = time.perf_counter()
    # Fail before scoring anything when the metric/plot libraries are missing.
    require("sklearn", purpose="lib-eval metrics", extra="eval")
    require("matplotlib", purpose="lib-eval ROC plots", extra="eval")
    model = Path(model)
    if not model.is_file():
        raise LibDeepfakeError(f"model not found: {model}")
    if not datasets:
        raise LibDeepfakeError("no dataset to evaluate (--dataset NAME[,NAME...])")
    if len(set(datasets)) != len(datasets):
        raise LibDeepfakeError(f"a dataset is named twice in {','.join(datasets)}")
    name = engine_for_artifact(model) if engine == "auto" else engine
    on_cuda = device.startswith("cuda")
    n_workers, n_threads = plan_threads(usable_cores(), on_cuda, workers, threads)
    card = load_card(model)
    resolved = resolve_threshold(card.threshold if card else None, threshold)
    if name == "torch" and not on_cuda:
        torch.set_num_threads(n_threads)
    opts = _engine_options(name, device, precision, n_threads, allow_cpu_fallback, spin=n_workers == 0)
    results = []
    with create_engine(name, model, **opts) as eng:
        for dataset in datasets:
            scores = score_dataset(eng, dataset_root, dataset, split, frames_per_video=frames_per_video,
                                   batch_size=batch_size, workers=n_workers, progress=progress)  # fmt: skip
            results.append((dataset_metrics(scores, resolved.value, min_faces=min_faces), scores))
        info = eng.info()
        model_info = {
            "path": str(model.resolve()),
            "sha256": file_sha256(model),
            "engine": eng.describe(),
            "engine_info": asdict(info),
            "input_size": int(eng.input_size),
            "card": card.to_dict() if card else None,
        }
    report = {
        "eval_version": EVAL_VERSION,
        "model": model_info,
        "threshold": resolved.to_dict(),
        "split": split,
        "frames_per_video": frames_per_video,
        "min_faces": min_faces,
        "protocol": PROTOCOL,
        "datasets": [r.metrics for r, _ in results],
        "reader_workers": n_workers,
        "engine_threads": n_threads if not on_cuda else None,
        "versions": library_versions(),
        "command": command_line(),
        "wall_s": round(time.perf_counter() - t0, 2),
    }
    files = write_outputs(Path(out_dir), report, results)
    return {**report, "files": files}
