"""``lib-bench engines``: every engine x precision x batch size against the FP32 PyTorch reference.

Order of work, so that each number means one thing:

1. prepare artifacts (ONNX export, TensorRT build) - ``prep_s``;
2. load every engine - ``load_s``;
3. parity: the reference and every engine on the same face crops (the bundled set or ``parity_crops``), before any
   timing (:mod:`lib_deepfake.engines.parity`: log-odds and P(fake) differences, limits per precision);
4. per batch size: warm-up calls per engine (``warmup_s``), then ``rounds`` rounds in which the engines take turns
   (order reversed every other round) running ``iters / rounds`` timed calls each. Interleaving keeps a shared or
   throttling machine from favouring whichever engine ran first.

The result is a plain dict (JSON is the source of truth; :mod:`lib_deepfake.bench.report` renders views).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from lib_deepfake.bench.engine_artifacts import prepare_artifact, row_skip_reason
from lib_deepfake.errors import LibDeepfakeError

logger = logging.getLogger(__name__)

SCHEMA = "lib-deepfake/bench-engines/1"
REFERENCE_LABEL = "torch fp32 eager"


@dataclass(frozen=True)
class EngineBenchConfig:
    """Options of ``lib-bench engines`` (written into the result as ``config``).

    Attributes:
        model: checkpoint (ours or official); ONNX and TensorRT artifacts are made from it in ``work_dir``.
        engines: engine names from the registry.
        precisions: precisions to run for each engine (combinations an engine lacks are skipped with a note).
        batch_sizes: batch sizes to time.
        device: ``cpu`` or ``cuda[:N]``.
        warmup: untimed calls per engine and batch size.
        iters: timed calls per engine and batch size (split over ``rounds``).
        rounds: interleaving rounds.
        parity_samples: face crops for the parity check (at most; the bundled set holds 66).
        threads: ONNX Runtime intra-op threads on CPU (default: usable cores); torch's are recorded as they are.
        torch_options: opt-in torch options (channels_last, cuda_graphs, compile) for non-reference torch rows.
        ort_provider: ``cpu``/``cuda``/``tensorrt`` (default from the device).
        allow_cpu_fallback: let ONNX Runtime run on CPU when the GPU provider is missing (recorded).
        trt_cuda_graphs: replay CUDA graphs in the TensorRT engine.
        work_dir: where exported artifacts are cached.
        seed: seed of the random crops.
        calibration: face crops that INT8 rows are calibrated on (default: the bundled face-crop set).
        parity_crops: the user's face crops (folder or .npy/.pt) for the parity check instead of the bundled set.
        measure_peak: time the GEMM peaks (fp32 and each requested precision) first, for the "of peak" column.
    """

    model: Path
    engines: tuple[str, ...] = ("torch", "onnxrt")
    precisions: tuple[str, ...] = ("fp32",)
    batch_sizes: tuple[int, ...] = (1, 16, 64, 256)
    device: str = "cpu"
    warmup: int = 3
    iters: int = 20
    rounds: int = 2
    parity_samples: int = 32
    threads: int | None = None
    torch_options: dict[str, bool] = field(default_factory=dict)
    ort_provider: str | None = None
    allow_cpu_fallback: bool = False
    trt_cuda_graphs: bool = False
    work_dir: Path = Path("bench/artifacts")
    official_input_size: int | None = None
    seed: int = 0
    calibration: Path | None = None
    measure_peak: bool = True
    parity_crops: Path | None = None

    def __post_init__(self) -> None:
        if not self.engines:
            raise LibDeepfakeError("no engines to benchmark")
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise LibDeepfakeError(f"batch sizes must be positive, got {self.batch_sizes}")
        if self.iters < 1 or self.rounds < 1 or self.warmup < 0:
            raise LibDeepfakeError("--iters and --rounds must be >= 1 and --warmup >= 0")
        if self.rounds > self.iters:
            raise LibDeepfakeError(f"--rounds {self.rounds} > --iters {self.iters}: each round needs a timed call")

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


@dataclass
class _Row:
    """One engine configuration being benchmarked."""

    label: str
    engine_name: str
    precision: str
    artifact: Path
    options: dict[str, Any]
    prep: dict[str, Any]
    engine: Any = None
    is_reference: bool = False


def rss_mib() -> tuple[float | None, float | None]:
    """(current, peak) resident memory of this process in MiB (Linux /proc; None elsewhere)."""
    cur = peak = None
    try:
        with open("/proc/self/status", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    cur = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) / 1024
    except OSError:
        pass
    return cur, peak


def _memory(device: torch.device) -> dict[str, Any]:
    rss, peak = rss_mib()
    mem: dict[str, Any] = {"process_rss_mib": rss, "process_peak_rss_mib": peak}
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        mem["torch_peak_allocated_mib"] = torch.cuda.max_memory_allocated(device) / (1 << 20)
        mem["device_used_mib"] = (total - free) / (1 << 20)
    return mem


def _ensure_onnx(
    checkpoint: Path, work_dir: Path, precision: str, official_input_size: int | None
) -> tuple[Path, dict[str, Any]]:
    """Export (or reuse) the ONNX of ``checkpoint`` in ``precision``; returns (path, prep facts)."""
    from lib_deepfake.export.onnx_export import export_onnx
    from lib_deepfake.manifest import Manifest
    from lib_deepfake.model.checkpoint import file_sha256

    out = work_dir / f"{checkpoint.stem}.{precision}.onnx"
    sha = file_sha256(checkpoint)
    manifest = Manifest.load(out) if out.is_file() else None
    if manifest is not None and manifest.source_checkpoint_sha256 == sha and manifest.precision == precision:
        return out, {"kind": "onnx export", "reused": True, "prep_s": 0.0}
    start = time.perf_counter()
    export_onnx(checkpoint, out, fp16=precision == "fp16", official_input_size=official_input_size)
    return out, {"kind": "onnx export", "reused": False, "prep_s": time.perf_counter() - start}


def _ensure_plan(checkpoint: Path, cfg: EngineBenchConfig, precision: str) -> tuple[Path, dict[str, Any]]:
    """Build (or reuse) the TensorRT plan, from the ONNX that this TensorRT major needs (shared with onnxrt rows)."""
    from lib_deepfake.engines import _trt_api
    from lib_deepfake.engines.trt_engine import present_gpu, trt_major
    from lib_deepfake.export.precision import plan_precision
    from lib_deepfake.export.trt_build import TrtBuildConfig, build_engine
    from lib_deepfake.manifest import Manifest
    from lib_deepfake.model.checkpoint import file_sha256

    version = str(_trt_api.bind("building TensorRT plans").__version__)
    onnx_precision = plan_precision(trt_major(version), precision).onnx_precision
    onnx_path, onnx_prep = _ensure_onnx(checkpoint, cfg.work_dir, onnx_precision, cfg.official_input_size)
    out = cfg.work_dir / f"{checkpoint.stem}.{precision}.plan"
    top = max(cfg.batch_sizes)
    build = TrtBuildConfig(min_batch=1, opt_batch=top, max_batch=top, precision=precision,
                           timing_cache=cfg.work_dir / "trt-timing.cache")  # fmt: skip
    old = Manifest.load(out) if out.is_file() else None
    if old is not None and torch.cuda.is_available():
        want = {"tensorrt": version, "onnx_sha256": file_sha256(onnx_path),
                "profile": {"min": 1, "opt": top, "max": top}, **present_gpu(torch.device(cfg.device))}  # fmt: skip
        if old.precision == precision and all(old.extra.get(k) == v for k, v in want.items()):
            return out, {"kind": "tensorrt build", "reused": True, "prep_s": onnx_prep["prep_s"], "build_s": 0.0}
    result = build_engine(onnx_path, out, build, device=cfg.device)
    return out, {"kind": "tensorrt build", "reused": False, "prep_s": onnx_prep["prep_s"] + result.build_s,
                 "onnx_export_s": onnx_prep["prep_s"], "build_s": result.build_s}  # fmt: skip


def _plan_rows(cfg: EngineBenchConfig) -> tuple[list[_Row], list[str]]:
    """The reference plus every requested (engine, precision) row; unsupported combinations become notes."""
    from lib_deepfake.engines.registry import engine_availability, engine_entry
    from lib_deepfake.errors import MissingDependencyError

    reference = _Row(REFERENCE_LABEL, "torch", "fp32", cfg.model, {}, {"kind": "none", "prep_s": 0.0},
                     is_reference=True)  # fmt: skip
    rows, notes = [reference], []
    for name in cfg.engines:
        engine_entry(name)  # unknown names fail here, with a suggestion
        # An engine asked for by name that cannot run here is an error, not a skipped row (a precision it lacks is
        # a note below): a benchmark must not quietly lose the engine it was run for.
        avail = engine_availability(name, cfg.device)
        if not avail:
            raise MissingDependencyError(f"--engines {name}: not usable here: {avail.reason}")
        for precision in cfg.precisions:
            why = row_skip_reason(name, precision, cfg.device)
            if why:
                notes.append(f"{name} {precision}: skipped ({why})")
                continue
            options: dict[str, Any] = {}
            if name == "torch":
                options = {k: v for k, v in cfg.torch_options.items() if v}
                if precision == "fp32" and not options:
                    continue  # that is the reference row
            elif name == "onnxrt":
                options = {"provider": cfg.ort_provider, "threads": cfg.threads,
                           "allow_cpu_fallback": cfg.allow_cpu_fallback or None}  # fmt: skip
            elif name == "trt":
                options = {"cuda_graphs": cfg.trt_cuda_graphs or None}
            elif name == "openvino":
                options = {"precision": precision, "threads": cfg.threads, "cache_dir": cfg.work_dir / "openvino-cache"}
            elif name == "aoti":
                options = {"cuda_graphs": cfg.trt_cuda_graphs or None}
            options = {k: v for k, v in options.items() if v is not None}
            rows.append(_Row("", name, precision, cfg.model, options, {}))
    return rows, notes


def run_engine_bench(cfg: EngineBenchConfig, *, progress: Callable[[str], None] | None = None,
                     protocol: Any = None) -> dict[str, Any]:  # fmt: skip
    """Run the engine benchmark described by ``cfg`` and return the result dict (see module docstring).

    ``protocol`` (:class:`~lib_deepfake.bench.protocol.BenchProtocol`, default the current one) is started once the
    engines are loaded; each ratio to the reference is the median (with min-max, ``ratio_stats``) of the per-round
    ratios.

    Raises:
        LibDeepfakeError: bad configuration, missing extras, unusable providers (without fallback), ...
    """
    from lib_deepfake.bench.flops import annotate_results, model_work
    from lib_deepfake.bench.machine import load_average, machine_info
    from lib_deepfake.bench.peak import measure_peaks
    from lib_deepfake.bench.protocol import current_protocol, ratio_stats
    from lib_deepfake.bench.timer import summarize, time_calls, warm_up
    from lib_deepfake.engines.base import parse_device
    from lib_deepfake.engines.parity import compare_outputs, run_batched
    from lib_deepfake.engines.registry import create_engine
    from lib_deepfake.manifest import command_line
    from lib_deepfake.model.checkpoint import read_checkpoint
    from lib_deepfake.model.testing import random_faces
    from lib_deepfake.prep.face_crops import parity_crops

    say = progress or (lambda message: logger.info("%s", message))
    device = parse_device(cfg.device)
    load_start = load_average()
    ckpt = read_checkpoint(cfg.model, official_input_size=cfg.official_input_size)
    rows, notes = _plan_rows(cfg)
    cfg.work_dir.mkdir(parents=True, exist_ok=True)
    say("measuring the GEMM peaks and counting the model's multiply-accumulates")
    peaks = measure_peaks(device, ("fp32", *cfg.precisions)) if cfg.measure_peak else {}
    work = model_work(ckpt.config)
    results: list[dict[str, Any]] = []
    try:
        for row in rows:
            if row.engine_name in ("openvino", "aoti") or row.precision == "int8":
                say(f"preparing the {row.engine_name} {row.precision} artifact")
                row.artifact, row.prep = prepare_artifact(
                    row.engine_name, row.precision, checkpoint=cfg.model, work_dir=cfg.work_dir, device=cfg.device,
                    calibration=cfg.calibration, official_input_size=cfg.official_input_size,
                    ensure_onnx=_ensure_onnx)  # fmt: skip
            elif row.engine_name == "onnxrt":
                say(f"exporting ONNX ({row.precision})")
                row.artifact, row.prep = _ensure_onnx(cfg.model, cfg.work_dir, row.precision, cfg.official_input_size)
            elif row.engine_name == "trt":
                say(f"building TensorRT plan ({row.precision})")
                row.artifact, row.prep = _ensure_plan(cfg.model, cfg, row.precision)
            elif not row.prep:
                row.prep = {"kind": "none", "prep_s": 0.0}
            extra: dict[str, Any] = {"precision": row.precision} if row.engine_name == "torch" else {}
            if row.engine_name == "torch":
                extra["official_input_size"] = cfg.official_input_size
            row.engine = create_engine(row.engine_name, row.artifact, device=cfg.device, **extra, **row.options)
            say(f"loading {row.engine_name} {row.precision}")
            row.engine.load()
            if not row.label:
                row.label = row.engine.describe()
        size = rows[0].engine.input_size
        started = (protocol or current_protocol()).start(say)

        # Parity before timing, on identical face crops (noise saturates a trained model: everything agrees there).
        _, parity_faces, parity_inputs = parity_crops(size, cfg.parity_crops, cfg.parity_samples)
        reference_probs = run_batched(rows[0].engine, parity_faces, min(16, cfg.parity_samples))
        parity: dict[str, dict[str, Any]] = {}
        for row in rows:
            got = run_batched(row.engine, parity_faces, min(16, cfg.parity_samples))
            report = compare_outputs(reference_probs, got, row.engine.precision, engine=row.engine_name)
            parity[row.label] = {**report.to_dict(), "inputs": parity_inputs}
            if report.passed is False:
                logger.warning("%s disagrees with the reference: %s", row.label, "; ".join(report.failures))
        for row in rows:
            row.engine.validate_inputs = False  # checked during parity; keep checks out of the timed loop

        per_round = [cfg.iters // cfg.rounds + (1 if r < cfg.iters % cfg.rounds else 0) for r in range(cfg.rounds)]
        for batch in cfg.batch_sizes:
            faces = random_faces(batch, size, seed=cfg.seed + batch).to(device)
            warm: dict[str, float] = {}
            for row in rows:
                say(f"batch {batch}: warming up {row.label}")
                warm[row.label] = warm_up(functools.partial(row.engine.infer, faces), device, cfg.warmup)
            latencies: dict[str, list[float]] = {row.label: [] for row in rows}
            walls: dict[str, float] = dict.fromkeys(latencies, 0.0)
            round_rates: dict[str, list[float | None]] = {label: [] for label in latencies}
            memory: dict[str, dict[str, Any]] = {}
            for r, calls in enumerate(per_round):
                order = rows if r % 2 == 0 else rows[::-1]
                for row in order:
                    if device.type == "cuda":
                        torch.cuda.reset_peak_memory_stats(device)
                    say(f"batch {batch}: round {r + 1}/{cfg.rounds} {row.label} x{calls}")
                    seg = time_calls(functools.partial(row.engine.infer, faces), device, calls)
                    latencies[row.label].extend(seg.latencies_ms)
                    walls[row.label] += seg.wall_s
                    round_rates[row.label].append(batch * calls / seg.wall_s if seg.wall_s > 0 else None)
                    memory[row.label] = _memory(device)
            for row in rows:
                summary = summarize(latencies[row.label], batch, walls[row.label])
                results.append({
                    "label": row.label, "engine": row.engine_name, "precision": row.precision, "batch": batch,
                    **summary, "warmup_s": warm[row.label], "memory": memory[row.label],
                })  # fmt: skip
            for res in results:
                if res["batch"] == batch:
                    res["ratio_stats"] = ratio_stats(round_rates[res["label"]], round_rates[rows[0].label])
                    res["ratio_vs_reference"] = res["ratio_stats"]["median"]
        protocol_record = started.finish()
        engines_info = []
        for row in rows:
            info = asdict(row.engine.info())
            engines_info.append({"label": row.label, "reference": row.is_reference, **info, "prep": row.prep,
                                 "load_s": row.engine.load_s, "parity": parity[row.label]})  # fmt: skip
    finally:
        for row in rows:
            if row.engine is not None:
                row.engine.close()
    annotate_results(results, work, peaks)
    machine = machine_info(cfg.device)
    return {
        "schema": SCHEMA,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command_line(),
        "device": str(device),
        "machine": machine,
        "load_average": {"start": load_start, "end": load_average()},
        "noisy": protocol_record["noisy"],
        "protocol": protocol_record,
        "model": {
            "checkpoint": str(cfg.model),
            "sha256": ckpt.sha256,
            "source": ckpt.source,
            "backbone": ckpt.config.backbone,
            "num_libs": ckpt.config.num_libs,
            "width_mult": ckpt.config.width_mult,
            "input_size": ckpt.config.input_size,
        },
        "config": cfg.to_dict(),
        "peak": peaks,
        "work": work,
        "reference": REFERENCE_LABEL,
        "engines": engines_info,
        "results": results,
        "notes": notes,
    }
