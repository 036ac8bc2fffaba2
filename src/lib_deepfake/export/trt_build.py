"""ONNX (or checkpoint) -> TensorRT plan with an optimisation profile, a timing cache and a manifest.

Version-aware through :mod:`lib_deepfake.export.precision`: TensorRT 10 builds FP16 from the FP32 ONNX with the
FP16 builder flag; TensorRT 11 (always strongly typed, no FP16 flag) builds from the FP16 ONNX. The TensorRT calls
are the documented 10/11 API (gpu-stack.md §4.3), confined to :func:`build_serialized_plan`, which the tests drive
with a fake ``tensorrt`` module (its enums are NVIDIA's, from the lean bindings; its builder classes follow the
documented signatures in ``typings/tensorrt.pyi``); the real path is **not yet run on a GPU**.

``version_compatible`` sets ``BuilderFlag.VERSION_COMPATIBLE``: the plan then runs on later TensorRT versions of
the same major (10.x plans on 11.x too) and on the lean runtime (``tensorrt_lean_bindings``). By default such a
plan embeds a copy of the lean runtime; ``exclude_lean_runtime`` (``BuilderFlag.EXCLUDE_LEAN_RUNTIME``) leaves it
out, which makes the plan smaller but ties it to exactly the TensorRT version that built it.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lib_deepfake._optional import require
from lib_deepfake.engines import _trt_api
from lib_deepfake.errors import ArtifactMismatchError, LibDeepfakeError
from lib_deepfake.export.precision import PrecisionPlan, check_onnx_precision, plan_precision
from lib_deepfake.manifest import Manifest, contract_io

logger = logging.getLogger(__name__)

PLAN_SUFFIXES = (".plan", ".engine")


@dataclass(frozen=True)
class TrtBuildConfig:
    """Options of ``lib-export to-trt``.

    Attributes:
        min_batch, opt_batch, max_batch: the optimisation profile over the batch axis (opt is tuned for).
        workspace_gib: builder workspace memory pool limit.
        timing_cache: file to read and update with kernel timings (makes rebuilds fast); None = no cache.
        builder_opt_level: 0..5 (TensorRT default 3; higher builds longer and may run faster).
        precision: ``"fp16"`` or ``"fp32"``.
        version_compatible: build a version-compatible plan (later TensorRT versions, the lean runtime).
        exclude_lean_runtime: with ``version_compatible``, leave the lean runtime out of the plan.
    """

    min_batch: int = 1
    opt_batch: int = 64
    max_batch: int = 256
    workspace_gib: float = 4.0
    timing_cache: Path | None = None
    builder_opt_level: int = 3
    precision: str = "fp16"
    version_compatible: bool = False
    exclude_lean_runtime: bool = False

    def __post_init__(self) -> None:
        if self.exclude_lean_runtime and not self.version_compatible:
            raise LibDeepfakeError(
                "--exclude-lean-runtime applies to version-compatible plans: add --version-compatible"
            )
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise LibDeepfakeError(
                "the batch profile needs 1 <= min <= opt <= max, got "
                f"{self.min_batch}/{self.opt_batch}/{self.max_batch}"
            )
        if not 0 <= self.builder_opt_level <= 5:
            raise LibDeepfakeError(f"--builder-opt-level must be 0..5, got {self.builder_opt_level}")
        if self.workspace_gib <= 0:
            raise LibDeepfakeError(f"--workspace-gib must be positive, got {self.workspace_gib}")

    def profile(self, size: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """(min, opt, max) input shapes for uint8 [N, S, S, 3] faces."""
        return tuple((b, size, size, 3) for b in (self.min_batch, self.opt_batch, self.max_batch))  # type: ignore[return-value]


@dataclass
class TrtBuildResult:
    path: Path
    manifest: Manifest
    onnx_path: Path
    build_s: float


def compatibility_flags(config: TrtBuildConfig) -> tuple[str, ...]:
    """``trt.BuilderFlag`` member names for the plan's version compatibility."""
    if not config.version_compatible:
        return ()
    return ("VERSION_COMPATIBLE", "EXCLUDE_LEAN_RUNTIME") if config.exclude_lean_runtime else ("VERSION_COMPATIBLE",)


def attach_timing_cache(build_config: Any, path: Path | None) -> tuple[Any, dict[str, Any]]:
    """Create the build's timing cache (from ``path`` when it exists) and attach it to ``build_config``.

    TensorRT refuses a cache written by another TensorRT version or on another GPU (``set_timing_cache`` returns
    False with ``ignore_mismatch=False``; ``create_timing_cache`` may also return None). Such a cache is replaced by
    a fresh one before the (long) build starts, with a warning, and the facts say so for the manifest.

    Returns:
        (the attached ITimingCache, facts: ``path``, ``status`` = "new" | "reused" | "rejected" | "memory").

    Raises:
        LibDeepfakeError: not even an empty cache can be attached.
    """
    old = path.read_bytes() if path is not None and path.is_file() else b""
    cache = build_config.create_timing_cache(old) if old else None
    # ignore_mismatch=False: a cache from another GPU/TensorRT is refused rather than silently mixed in.
    if cache is not None and build_config.set_timing_cache(cache, ignore_mismatch=False):
        return cache, {"path": str(path), "status": "reused", "bytes_in": len(old)}
    status = "memory" if path is None else "new"
    if old:
        status = "rejected"
        logger.warning(
            "TensorRT refused the timing cache %s (%d bytes; written by another TensorRT version or on another GPU): "
            "building with a fresh cache; the old one is kept as %s.rejected",
            path,
            len(old),
            path,
        )
    cache = build_config.create_timing_cache(b"")
    if cache is None or not build_config.set_timing_cache(cache, ignore_mismatch=False):
        raise LibDeepfakeError("TensorRT could not attach an empty timing cache to the builder configuration")
    return cache, {"path": str(path) if path is not None else None, "status": status, "bytes_in": len(old)}


def save_timing_cache(build_config: Any, cache: Any, facts: dict[str, Any]) -> None:
    """Write the build's timing cache back to ``facts["path"]`` (a refused old cache is moved aside, not lost)."""
    if facts["path"] is None:
        return
    from lib_deepfake.atomic import write_bytes_atomic

    path = Path(facts["path"])
    if facts["status"] == "rejected" and path.is_file():
        os.replace(path, path.with_name(path.name + ".rejected"))
    current = build_config.get_timing_cache() or cache
    data = bytes(current.serialize())
    write_bytes_atomic(path, data)
    facts["bytes_out"] = len(data)


def build_serialized_plan(
    onnx_path: Path, plan: PrecisionPlan, config: TrtBuildConfig, size: int
) -> tuple[bytes, dict[str, Any]]:
    """Parse ``onnx_path`` and build a serialized plan. The only function here that calls TensorRT's builder
    (through ``_trt_api.trt``, bound by :func:`build_engine`; tests bind a fake).

    Args:
        onnx_path: a contract ONNX file (weights inside or in a side file next to it: parse_from_file finds both).
        plan: the precision decision for this TensorRT major.
        config: profile, workspace, timing cache, optimisation level.
        size: crop size S.

    Returns:
        (plan bytes, facts for the manifest: input name, flags used).
    """
    trt = _trt_api.trt
    trt_logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(trt_logger)
    flags = 0
    for name in plan.network_flags:
        flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i).desc()) for i in range(parser.num_errors)]
        raise LibDeepfakeError(f"TensorRT's ONNX parser rejected {onnx_path.name}: {'; '.join(errors) or 'no detail'}")
    if network.num_inputs != 1 or network.num_outputs != 1:
        raise ArtifactMismatchError(
            f"{onnx_path.name} has {network.num_inputs} inputs and {network.num_outputs} outputs; expected the engine "
            "contract (one each)"
        )
    input_name = str(network.get_input(0).name)
    build_config = builder.create_builder_config()
    build_config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(config.workspace_gib * (1 << 30)))
    build_config.builder_optimization_level = config.builder_opt_level
    builder_flags = (*plan.builder_flags, *compatibility_flags(config))
    for flag in builder_flags:
        build_config.set_flag(getattr(trt.BuilderFlag, flag))
    profile = builder.create_optimization_profile()
    shape_min, shape_opt, shape_max = config.profile(size)
    profile.set_shape(input_name, shape_min, shape_opt, shape_max)
    build_config.add_optimization_profile(profile)
    cache, cache_facts = attach_timing_cache(build_config, config.timing_cache)
    serialized = builder.build_serialized_network(network, build_config)
    if serialized is None:
        raise LibDeepfakeError(f"TensorRT failed to build a plan from {onnx_path.name} (see the TensorRT log above)")
    save_timing_cache(build_config, cache, cache_facts)
    facts = {"input_name": input_name, "builder_flags": list(builder_flags), "network_flags": list(plan.network_flags),
             "version_compatible": config.version_compatible, "exclude_lean_runtime": config.exclude_lean_runtime,
             "timing_cache": cache_facts}  # fmt: skip
    return bytes(serialized), facts


def cast_input_first(model: Any) -> bool:
    """Reorder ``faces -> Transpose -> Cast(float)`` into ``faces -> Cast -> Transpose`` in an ONNX ``ModelProto``.

    TensorRT accepts UINT8 network inputs only when they are cast before any other layer, while the exported graph
    permutes NHWC -> NCHW on the uint8 tensor first. Casting first is numerically identical (a permutation commutes
    with an element-wise cast). Edits ``model`` in place.

    Returns:
        True when the graph was changed.
    """
    graph = model.graph
    if len(graph.input) != 1:
        return False
    name = graph.input[0].name
    consumers = [n for n in graph.node if name in n.input]
    if len(consumers) != 1 or consumers[0].op_type != "Transpose":
        return False
    transpose = consumers[0]
    after = [n for n in graph.node if transpose.output[0] in n.input]
    if len(after) != 1 or after[0].op_type != "Cast" or any(o.name == transpose.output[0] for o in graph.output):
        return False
    cast = after[0]
    # faces -> Cast -> (cast's old output name reused by the Transpose, so downstream nodes are untouched)
    cast_out, transposed = cast.output[0], transpose.output[0]
    cast.input[0] = name
    cast.output[0] = transposed
    transpose.input[0] = transposed
    transpose.output[0] = cast_out
    nodes = list(graph.node)
    ti, ci = nodes.index(transpose), nodes.index(cast)
    nodes[ti], nodes[ci] = nodes[ci], nodes[ti]  # keep topological order: Cast now runs first
    del graph.node[:]
    graph.node.extend(nodes)
    for info in list(graph.value_info):
        if info.name in (cast_out, transposed):
            graph.value_info.remove(info)  # shapes/dtypes changed; TensorRT re-infers them
    return True


def _tensorrt_ready_onnx(onnx_path: Path, out_dir: Path) -> Path:
    """``onnx_path`` itself, or a copy with the uint8 input cast first (see :func:`cast_input_first`)."""
    onnx = require("onnx", purpose="preparing the ONNX graph for TensorRT", extra="export")
    model = onnx.load(str(onnx_path))
    if not cast_input_first(model):
        return onnx_path
    fixed = out_dir / f"{onnx_path.stem}.trt-input.onnx"
    onnx.checker.check_model(model)
    fixed.write_bytes(model.SerializeToString())
    logger.info("%s: cast the uint8 input before the transpose for TensorRT (%s)", onnx_path.name, fixed.name)
    return fixed


def _onnx_facts(onnx_path: Path) -> tuple[Manifest | None, str | None, int, int | None]:
    """(manifest, precision or None if unknown, crop size S, fixed batch or None) of a contract ONNX."""
    manifest = Manifest.load(onnx_path)
    if manifest is not None:
        batch = manifest.io["inputs"][0]["shape"][0]
        return manifest, manifest.precision, manifest.input_size, batch
    onnx = require("onnx", purpose="reading an ONNX model without a manifest", extra="export")
    model = onnx.load(str(onnx_path), load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4 or dims[1].dim_value <= 0:
        raise ArtifactMismatchError(f"{onnx_path.name} does not take faces uint8 [N, S, S, 3] with a fixed S")
    logger.warning("%s has no manifest (%s.json); using what its graph says", onnx_path.name, onnx_path.name)
    batch = dims[0].dim_value or None
    return None, meta.get("lib_deepfake.precision"), int(dims[1].dim_value), batch


def build_engine(
    source: Path | str,
    out: Path | str,
    config: TrtBuildConfig | None = None,
    *,
    device: str = "cuda:0",
    official_input_size: int | None = None,
) -> TrtBuildResult:
    """Build a TensorRT plan from a checkpoint (exported to ONNX first) or a contract ONNX.

    Args:
        source: a checkpoint (.pth/.pt, ours or official) or an ONNX from ``lib-export to-onnx``.
        out: the plan file (.plan or .engine); the manifest goes to ``out + '.json'``.
        config: build options.
        device: the GPU to build for (plans are specific to its compute capability).
        official_input_size: crop size of an official checkpoint (they do not record it).

    Raises:
        MissingDependencyError: TensorRT is not installed.
        LibDeepfakeError: unsupported TensorRT major, wrong ONNX precision for it, bad profile, build failure.
    """
    import torch

    from lib_deepfake.engines.trt_engine import present_gpu, trt_major
    from lib_deepfake.export.manifest_card import card_extra_from_manifest

    config = config or TrtBuildConfig()
    source, out = Path(source), Path(out)
    if out.suffix not in PLAN_SUFFIXES:
        raise LibDeepfakeError(f"output must end in {' or '.join(PLAN_SUFFIXES)}, got {out.name}")
    version = str(_trt_api.bind("building TensorRT plans", builder=True).__version__)
    plan = plan_precision(trt_major(version), config.precision)
    dev = torch.device(device)
    if dev.type != "cuda" or not torch.cuda.is_available():
        raise LibDeepfakeError("building a TensorRT plan needs a CUDA device; torch sees none")
    gpu = present_gpu(dev)
    if source.suffix == ".onnx":
        onnx_path = source
    else:
        from lib_deepfake.export.onnx_export import export_onnx

        onnx_path = out.with_name(f"{out.stem}.{plan.onnx_precision}.onnx")
        logger.info("exporting %s to %s for TensorRT %s (%s)", source.name, onnx_path.name, version, plan.note)
        export_onnx(source, onnx_path, fp16=plan.onnx_precision == "fp16", official_input_size=official_input_size)
    onnx_manifest, onnx_precision, size, fixed_batch = _onnx_facts(onnx_path)
    card = card_extra_from_manifest(onnx_manifest)  # before the build: a bad card stops it
    check_onnx_precision(plan, onnx_precision, onnx_path.name)
    if onnx_precision is None:
        logger.warning("%s: precision unknown; building as if it were %s", onnx_path.name, plan.onnx_precision)
    if fixed_batch is not None and not (config.min_batch == config.opt_batch == config.max_batch == fixed_batch):
        raise LibDeepfakeError(
            f"{onnx_path.name} has a fixed batch of {fixed_batch}: pass --min-batch/--opt-batch/--max-batch "
            f"{fixed_batch}, or export it with a dynamic batch"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    parse_path = _tensorrt_ready_onnx(onnx_path, out.parent)
    torch.cuda.set_device(dev)
    start = time.perf_counter()
    data, facts = build_serialized_plan(parse_path, plan, config, size)
    build_s = time.perf_counter() - start
    from lib_deepfake.atomic import write_bytes_atomic
    from lib_deepfake.model.checkpoint import file_sha256

    write_bytes_atomic(out, data)
    io = contract_io(size)
    io["profile"] = {"min": config.min_batch, "opt": config.opt_batch, "max": config.max_batch}
    manifest = Manifest(
        format="tensorrt",
        precision=plan.precision,
        io=io,
        model=onnx_manifest.model if onnx_manifest else {"preprocessing": {"input_size": size}},
        source_checkpoint_sha256=onnx_manifest.source_checkpoint_sha256 if onnx_manifest else "",
        source=str(onnx_path),
        extra={
            "tensorrt": version,
            "tensorrt_major": plan.trt_major,
            **gpu,
            "profile": io["profile"],
            "precision_plan": plan.note,
            "onnx_precision": onnx_precision or "unknown",
            "onnx_sha256": file_sha256(onnx_path),
            "parsed_onnx": str(parse_path),
            "strongly_typed": plan.strongly_typed,
            "build_config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
            "build_s": round(build_s, 3),
            **facts,
            **card,
        },
    )
    manifest.versions["tensorrt"] = version
    manifest.save(out)
    logger.info("built %s in %.1f s (%s, %s%s)", out.name, build_s, plan.precision, gpu["gpu_name"],
                ", version-compatible" if config.version_compatible else "")  # fmt: skip
    return TrtBuildResult(out, manifest, onnx_path, build_s)
