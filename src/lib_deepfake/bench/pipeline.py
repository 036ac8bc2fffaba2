"""``lib-bench pipeline``: our scan pipeline, in several configurations ("rows"), against the PyTorch reference
pipeline, in one run, on the same files, under the benchmark protocol (:mod:`lib_deepfake.bench.protocol`).

- **Our rows** (:func:`plan_rows`): **fp32** - the FP32 classifier (``--onnx-model``, else ``--model``) with the
  library's defaults (detector long side 640, batches of 8, every sampled frame); **best** - the fastest
  classifier given (``--best-model``, e.g. an INT8 ONNX, on ``--best-engine``) with the same defaults; and the
  detector shortcuts on top of the best row, each its own row: ``--detect-every K``, a smaller detector input
  (``--detector-max-side S``), and both together. Each is :class:`~lib_deepfake.pipeline.scanner.Scanner` as
  ``lib-infer`` runs it.
- **reference** (:mod:`lib_deepfake.bench.pipeline_reference`): what a competent engineer writes in plain
  PyTorch - forward decode converting only the sampled frames, the same detector at the same size and batch, the
  same crops, the FP32 eager classifier batched per video, one video at a time.

Both sides' settings are recorded under the same keys (``resolved``). Every row's accuracy effect is measured
against the FP32 row (score deltas and verdict agreement; video AUC with ``labels``). Each pipeline runs in its
own spawned process, so that its peak memory (VmHWM of the process, plus the largest decode worker) is its own.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lib_deepfake.bench.pipeline_clips import CLIP_SETS, ClipSet, clip_set, make_bench_clips
from lib_deepfake.bench.pipeline_reference import reference_scan
from lib_deepfake.bench.pipeline_report import accuracy_effect, format_markdown
from lib_deepfake.faces.base import DetectorConfig

__all__ = ["CLIP_SETS", "ClipSet", "OursRow", "clip_set", "format_markdown", "make_bench_clips", "plan_rows",
           "reference_scan", "run_pipeline_bench"]  # fmt: skip

#: The StageTotals fields summed over the rounds of one row.
_TOTAL_KEYS = ("decode_s", "detect_s", "crop_s", "classify_s", "wait_s", "videos", "frames", "faces",
               "frames_detected", "frames_interpolated")  # fmt: skip
_STAGE_KEYS = ("decode_s", "detect_s", "crop_s", "classify_s", "wait_s")
#: The library's default detector input long side: asking for it is not a shortcut.
_DEFAULT_DETECTOR_SIDE = DetectorConfig().max_side


@dataclass(frozen=True)
class OursRow:
    """One configuration of our pipeline.

    Attributes:
        name: short key (``fp32``, ``best``, ``best+detect-every-2``, ...).
        what: the configuration in words, for the table.
        model: the classifier artifact.
        engine: the scan's engine choice (``auto``: from the artifact's suffix).
        detector_max_side: the detector's input long side (None: the library's default).
        detect_every: the detector on every K-th sampled frame.
    """

    name: str
    what: str
    model: Path
    engine: str = "auto"
    detector_max_side: int | None = None
    detect_every: int = 1


def plan_rows(fp32_model: Path, *, best_model: Path | None = None, best_engine: str = "auto", detect_every: int = 1,
              detector_max_side: int | None = None) -> list[OursRow]:  # fmt: skip
    """Our rows: fp32, best (with ``best_model``), then each shortcut on top of the best row and both together.

    >>> [r.name for r in plan_rows(Path("m.onnx"), best_model=Path("m.int8.onnx"), detect_every=2,
    ...                            detector_max_side=320)]
    ['fp32', 'best', 'best+detect-every-2', 'best+detector-320', 'best+detect-every-2+detector-320']
    """
    from lib_deepfake.engines import engine_for_artifact

    defaults = "library defaults (detector long side 640, batches of 8, every sampled frame)"
    # The fp32 row names its engine: "auto" on a checkpoint would probe for a faster precision.
    rows = [OursRow("fp32", f"FP32 classifier {fp32_model.name}, {defaults}", fp32_model,
                    engine_for_artifact(fp32_model))]  # fmt: skip
    base = rows[0]
    if best_model is not None:
        base = OursRow("best", f"{best_model.name} on engine {best_engine}, {defaults}", best_model, best_engine)
        rows.append(base)
    shortcuts: list[tuple[str, str, dict[str, Any]]] = []
    if detect_every > 1:
        shortcuts.append((f"detect-every-{detect_every}", f"the detector on one sampled frame in {detect_every} "
                          "(boxes interpolated where the two ends agree)", {"detect_every": detect_every}))  # fmt: skip
    if detector_max_side is not None and detector_max_side != _DEFAULT_DETECTOR_SIDE:
        shortcuts.append((f"detector-{detector_max_side}", f"detector input long side {detector_max_side} px",
                          {"detector_max_side": detector_max_side}))  # fmt: skip
    if len(shortcuts) == 2:
        (n1, w1, s1), (n2, w2, s2) = shortcuts
        shortcuts.append((f"{n1}+{n2}", f"{w1} and {w2}", {**s1, **s2}))
    for name, what, settings in shortcuts:
        rows.append(OursRow(f"{base.name}+{name}", f"{base.name} row with {what}", base.model, base.engine,
                            **settings))  # fmt: skip
    return rows


def _peak_rss_mib(worker_mib: float = 0.0) -> dict[str, float]:
    # VmHWM, not ru_maxrss: a spawned process's ru_maxrss starts at its parent's RSS at fork time.
    from lib_deepfake.pipeline.decode import vm_hwm_kib

    kib = vm_hwm_kib() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"main_mib": round(kib / 1024, 1), "largest_child_mib": round(worker_mib, 1)}


def _ours(paths: list[str], config: Any) -> dict[str, Any]:
    from lib_deepfake.pipeline.scanner import Scanner

    rows = []
    with Scanner(config) as scanner:
        scanner.warm_up()
        t0 = time.perf_counter()
        for outcome in scanner.scan(paths):
            rows.append(outcome.row)
        wall = time.perf_counter() - t0
        totals = scanner.totals.as_dict()
        resolved = {**scanner.resolved, "detector_max_side": config.detector_max_side,
                    "detect_batch": config.detect_batch, "detect_every": config.detect_every}  # fmt: skip
        worker_mib = scanner.peak_worker_rss_mib()
    return {"rows": rows, "wall_s": wall, "totals": totals, "resolved": resolved, "worker_mib": worker_mib}


def _child(kind: str, paths: list[str], config: Any, torch_model: str, conn: Any) -> None:
    try:
        if kind == "reference":
            res = reference_scan(paths, config, Path(torch_model))
            res["wall_s"] = res.pop("run_s")
        else:
            res = _ours(paths, config)
        res["peak_rss"] = _peak_rss_mib(res.pop("worker_mib", 0.0))
        conn.send(("ok", res))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        import traceback

        conn.send(("err", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


def _run_isolated(kind: str, paths: list[str], config: Any, torch_model: Path) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(kind, paths, config, str(torch_model), child))
    proc.start()
    child.close()
    try:
        status, payload = parent.recv()
    except EOFError:  # killed (out of memory, a signal) before it could report
        status, payload = "err", "the process died without a result"
    proc.join()
    if status != "ok" and proc.exitcode:
        payload = f"{payload} (exit code {proc.exitcode})"
    if status != "ok":
        from lib_deepfake.errors import LibDeepfakeError

        raise LibDeepfakeError(f"the {kind} pipeline failed: {payload}")
    return payload


def _rates(videos: int, frames: int, faces: int, wall: float) -> dict[str, float]:
    return {"videos_per_s": round(videos / wall, 4), "frames_per_s": round(frames / wall, 3),
            "faces_per_s": round(faces / wall, 3), "wall_s": round(wall, 3)}  # fmt: skip


def _round_rates(runs: list[dict[str, Any]], chunks: list[list[str]]) -> list[float | None]:
    return [len(chunk) / run["wall_s"] if run["wall_s"] > 0 else None for run, chunk in zip(runs, chunks)]


def _peak(runs: list[dict[str, Any]]) -> dict[str, float]:
    return {k: max(run["peak_rss"][k] for run in runs) for k in ("main_mib", "largest_child_mib")}


def _status_counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        out[r["status"]] = out.get(r["status"], 0) + 1
    return out


def decoded_frames_per_video(paths: list[str], plan: str, decoder: str) -> float | None:
    """Frames our decoder decodes per video for ``plan`` (untimed pass); None for a decoder that does not say."""
    if decoder != "pyav":
        return None  # DALI does not report the frames it decodes to reach the wanted ones
    from lib_deepfake.video import open_video

    total = 0
    for path in paths:
        with open_video(path, decoder="pyav") as src:
            total += src.read(plan).stats.frames_decoded
    return round(total / len(paths), 2) if paths else None


def _ours_summary(row: OursRow, runs: list[dict[str, Any]], config: Any, decoded: float | None) -> dict[str, Any]:
    from lib_deepfake.bench.protocol import spread

    t = {k: sum(run["totals"][k] for run in runs) for k in _TOTAL_KEYS}
    wall = sum(run["wall_s"] for run in runs)
    peak = _peak(runs)
    resolved = runs[0]["resolved"]
    return {
        "name": row.name,
        "what": row.what,
        "model": str(row.model),
        "engine": resolved.get("engine_label"),
        "resolved": resolved,
        **_rates(t["videos"], t["frames"], t["faces"], wall),
        "videos_per_s_rounds": spread([len(run["rows"]) / run["wall_s"] for run in runs if run["wall_s"] > 0]),
        "decoded_frames_per_video": decoded,
        "stages_s": {k: round(t[k], 3) for k in _STAGE_KEYS},
        "stage_note": "decode_s is summed worker time and overlaps the main-process stages",
        "frames_detected": t["frames_detected"],
        "frames_interpolated": t["frames_interpolated"],
        "decode_fps_per_worker": round(t["frames"] / t["decode_s"], 2) if t["decode_s"] else None,
        "peak_rss": peak,
        "peak_rss_total_mib_upper_bound": round(
            peak["main_mib"] + config.resolved_workers() * peak["largest_child_mib"], 1
        ),  # fmt: skip
        "status": _status_counts([r for run in runs for r in run["rows"]]),
    }


def _reference_summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    stages = {k: sum(run["stages"][k] for run in runs) for k in runs[0]["stages"]}
    c = {k: sum(run["counts"][k] for run in runs) for k in runs[0]["counts"]}
    wall = sum(run["wall_s"] for run in runs)
    return {
        "name": "reference",
        "engine": runs[0]["engine"],
        "resolved": runs[0]["resolved"],
        **_rates(c["videos"], c["frames"], c["faces"], wall),
        "frames_decoded": c["frames_decoded"],
        "decoded_frames_per_video": round(c["frames_decoded"] / c["videos"], 2) if c["videos"] else None,
        "decode_fps": round(c["frames_decoded"] / stages["decode_s"], 2) if stages["decode_s"] else None,
        "stages_s": {k: round(v, 3) for k, v in stages.items()},
        "peak_rss": _peak(runs),
        "status": _status_counts([r for run in runs for r in run["rows"]]),
    }


def _pin_engines(configs: dict[str, Any], specs: dict[str, str], say: Callable[[str], None]) -> dict[str, Any]:
    """Each row's engine chosen once, here, and pinned into its config (the rows run in spawned processes, once per
    round: ``auto`` on a checkpoint would otherwise probe every time). ``ENGINE:PRECISION`` (``openvino:bf16``)
    runs that engine at that precision."""
    from lib_deepfake.pipeline.engine_choice import EngineChoice, choose_engine, pin_engine

    chosen: dict[tuple[Path, str], EngineChoice] = {}
    out = {}
    for name, config in configs.items():
        spec = specs[name]
        key = (config.model, spec)
        if key not in chosen:
            engine, _, precision = spec.partition(":")
            if precision:
                chosen[key] = EngineChoice(engine, config.model, f"--best-engine {spec}", {"precision": precision})
            else:
                if engine == "auto":
                    say(f"choosing the engine of {config.model.name} (--best-engine auto)")
                chosen[key] = choose_engine(config)
        out[name] = pin_engine(config, chosen[key])
    return out


def run_pipeline_bench(paths: list[Path], model: Path, *, onnx_model: Path | None = None,
                       best_model: Path | None = None, best_engine: str = "auto", plan: str = "uniform:32",
                       workers: int = 0, batch_size: int = 32, skip_reference: bool = False, rounds: int = 1,
                       device: str = "cpu", decoder: str = "auto", detector: str = "centerface",
                       detector_max_side: int | None = None, detect_every: int = 1, labels: Path | None = None,
                       clip_sets: list[dict[str, Any]] | None = None, protocol: Any = None,
                       progress: Callable[[str], None] | None = None) -> dict[str, Any]:  # fmt: skip
    """Run our rows and the reference on ``paths`` in interleaved rounds; return the result (JSON-serialisable).

    Args:
        paths: video files.
        model: a checkpoint; the reference always runs it with the FP32 eager torch engine.
        onnx_model: the same model as FP32 ONNX for our fp32 row (default: ``model`` itself, on torch).
        best_model, best_engine: the fastest classifier to compare and its engine: the best row. ``best_engine``
            is an engine name, ``ENGINE:PRECISION`` (``openvino:bf16`` on the FP32 ONNX) or ``auto`` (the engine of
            the suffix; with a checkpoint on a CPU, what ``lib-infer --engine auto`` would choose, probed once).
        plan: sampling plan (uniform:N: the reference samples uniformly).
        workers, batch_size, device, decoder, detector: our pipeline's settings (every row); ``detector`` and
            ``device`` also the reference's.
        skip_reference: our rows only (no ratios).
        rounds: split the videos into this many chunks; in each round every pipeline scans the chunk, in an order
            reversed every other round, giving one ratio per row and round (median and min-max reported).
        detector_max_side, detect_every: the shortcut rows (:func:`plan_rows`).
        labels: ``path,label`` CSV: every row's video AUC and accuracy.
        clip_sets: the generated clip sets (recorded in the result).
        protocol: a :class:`~lib_deepfake.bench.protocol.BenchProtocol` (default: the current one).
        progress: called with one-line progress messages.
    """
    from lib_deepfake.bench.machine import device_slug, machine_info
    from lib_deepfake.bench.protocol import current_protocol, interleaved, mark, ratio_stats
    from lib_deepfake.pipeline.config import ScanConfig
    from lib_deepfake.pipeline.scan_threshold import resolve_scan_threshold
    from lib_deepfake.pipeline.summary import read_labels

    say = progress or (lambda msg: None)
    keys = [str(p) for p in paths]
    label_map = read_labels(labels) if labels is not None else None
    ours = plan_rows(onnx_model or model, best_model=best_model, best_engine=best_engine, detect_every=detect_every,
                     detector_max_side=detector_max_side)  # fmt: skip
    common = {"plan": plan, "workers": workers, "batch_size": batch_size, "report": False, "device": device,
              "decoder": decoder, "detector": detector}  # fmt: skip
    configs = {r.name: ScanConfig(r.model, engine=r.engine.partition(":")[0], detect_every=r.detect_every, **common,
                                  **({"detector_max_side": r.detector_max_side} if r.detector_max_side else {}))
               for r in ours}  # fmt: skip
    configs = _pin_engines(configs, {r.name: r.engine for r in ours}, say)
    # One threshold for every row, the FP32 model's (its model card's, else 0.5): verdicts compare like for like.
    threshold = resolve_scan_threshold(configs["fp32"])[0].threshold
    configs = {name: replace(c, threshold=threshold) for name, c in configs.items()}
    sides = [r.name for r in ours] + ([] if skip_reference else ["reference"])
    rounds = max(1, min(int(rounds), len(keys)))
    chunks = [keys[i::rounds] for i in range(rounds)]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
    started = (protocol or current_protocol()).start(say)
    machine_before = machine_info(device).get("load_average")
    for i, chunk in enumerate(chunks):
        for name in interleaved(sides, i):
            say(f"round {i + 1}/{rounds}: {name} on {len(chunk)} videos")
            config = configs["fp32" if name == "reference" else name]
            runs[name].append(_run_isolated("reference" if name == "reference" else "ours", chunk, config, model))
    record = started.finish()
    fp32 = configs["fp32"]
    resolved_decoder = runs["fp32"][0]["resolved"]["decoder"]
    decoded = decoded_frames_per_video(keys, plan, resolved_decoder)
    baseline = [r for run in runs["fp32"] for r in run["rows"]]
    rows = []
    for row in ours:
        summary = _ours_summary(row, runs[row.name], configs[row.name], decoded)
        row_rows = [r for run in runs[row.name] for r in run["rows"]]
        summary["accuracy"] = accuracy_effect(row_rows, baseline, label_map, fp32.threshold,
                                              is_baseline=row.name == "fp32")  # fmt: skip
        if not skip_reference:
            summary["speedup"] = ratio_stats(_round_rates(runs[row.name], chunks),
                                             _round_rates(runs["reference"], chunks))  # fmt: skip
        rows.append(summary)
    machine = machine_info(device)
    machine["load_average_at_start"] = machine_before
    result: dict[str, Any] = {
        "benchmark": "pipeline",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine,
        "inputs": {
            "videos": len(keys),
            "files": [Path(k).name for k in keys],
            "plan": plan,
            "rounds": rounds,
            "detector": detector,
            "detector_max_side": detector_max_side,
            "detect_every": detect_every,
            "model": str(model),
            "ours_model": str(onnx_model or model),
            "best_model": str(best_model) if best_model else None,
            "best_engine": best_engine,
            "labels": str(labels) if labels else None,
            "threshold": fp32.threshold,
            "clip_sets": clip_sets or [],
        },  # fmt: skip
        "ours": rows[0],
        "rows": rows,
        "notes": []
        if decoded is not None
        else [
            f"decoded frames per video not counted for the {resolved_decoder} decoder (it does not report them)"
        ],  # fmt: skip
    }
    if not skip_reference:
        ref_rows = [r for run in runs["reference"] for r in run["rows"]]
        result["reference"] = _reference_summary(runs["reference"])
        result["reference"]["accuracy"] = accuracy_effect(ref_rows, baseline, label_map, fp32.threshold)
        result["speedup_videos_per_s"] = rows[0]["speedup"]["median"]
        effect = result["reference"]["accuracy"]
        result["score_agreement"] = {"videos_compared": effect["videos_compared"],
                                     "max_abs_diff": effect["max_abs_score_diff"],
                                     "mean_abs_diff": effect["mean_abs_score_diff"]}  # fmt: skip
    result["device_slug"] = device_slug(result["machine"], device)
    return mark(result, record)
