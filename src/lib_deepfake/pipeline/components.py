"""What a scan runs on: the classifier engine and the face detector, loaded once, with every automatic choice
(engine and its artifact, decoder) and the reason for it - what run.json's ``"resolved"`` section records.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lib_deepfake.pipeline.config import ScanConfig
from lib_deepfake.pipeline.engine_choice import EngineChoice, choose_engine

if TYPE_CHECKING:
    from lib_deepfake.engines.base import Engine
    from lib_deepfake.faces.base import FaceDetector


@dataclass
class Components:
    """The loaded engines and what was chosen, with the reason for every automatic choice."""

    engine: Engine
    detector: FaceDetector
    resolved: dict[str, Any]


def resolve_choices(config: ScanConfig, *, engine_given: bool = False) -> dict[str, Any]:
    """Engine (with its artifact and options) and decoder, with the reason for each.

    ``engine="auto"`` with a checkpoint on a CPU probes the engines here (:func:`choose_engine`); ``engine_given``
    (a ready-made engine, as tests and benchmarks pass one) skips that.
    """
    from lib_deepfake._optional import is_installed

    if engine_given:
        choice = EngineChoice(config.engine, config.model, "given (a ready-made engine)")
    else:
        choice = choose_engine(config)
    resolved = choice.resolved()
    if config.decoder == "auto":
        if config.on_cuda and is_installed("nvidia.dali"):
            decoder, decoder_why = "dali", "auto: CUDA device and DALI installed (NVDEC)"
        else:
            decoder = "pyav"
            decoder_why = "auto: " + ("DALI not installed" if config.on_cuda else "CPU device") + ", PyAV (libavcodec)"
    else:
        decoder, decoder_why = config.decoder, "explicit (--decoder)"
    return {**resolved, "decoder": decoder, "decoder_choice": decoder_why}


def load_components(config: ScanConfig, *, engine: Engine | None = None,
                    detector: FaceDetector | None = None) -> Components:  # fmt: skip
    """Create and load the classifier engine and the face detector (``engine``/``detector``: ready-made ones,
    e.g. fakes in tests).

    Raises:
        LibDeepfakeError subclasses: unknown engine, missing runtime, unreadable artifact, missing GPU provider.
    """
    resolved = resolve_choices(config, engine_given=engine is not None)
    if resolved["decoder"] == "dali":
        from lib_deepfake._optional import require

        # Fail before the first file: a missing DALI is a broken setup, not one bad file per row.
        require("nvidia.dali", purpose="decoding video with DALI (--decoder dali); use --decoder pyav")
    if engine is None:
        engine = _create_engine(config, resolved)
    if detector is None:
        from lib_deepfake.faces.registry import create_detector

        detector = create_detector(config.detector, config.detector_config(), config.detector_model)
        _warm_detector(detector, config)
    resolved.update(
        {
            "engine_label": engine.describe(),
            "engine_runtime": engine.info().runtime,
            "precision": engine.precision,
            "input_size": int(engine.input_size),
            "device": config.device,
            "provider": _provider_of(engine),
            "detector": detector.name,
            # Only ONNX Runtime detectors have a provider; it is not part of the FaceDetector interface.
            "detector_provider": getattr(detector, "provider", None),
            "workers": config.resolved_workers(),
            "threads": config.resolved_threads(),
            "crop_backend": _crop_backend(config),
        }
    )
    return Components(engine, detector, resolved)


def _create_engine(config: ScanConfig, resolved: dict[str, Any]) -> Engine:
    import torch

    from lib_deepfake.engines import create_engine

    name = resolved["engine"]
    opts: dict[str, Any] = {"device": config.device}
    if name == "onnxrt":
        opts["threads"] = config.threads if not config.on_cuda else None
        opts["allow_cpu_fallback"] = config.allow_cpu_fallback or None
        # Decode workers share the cores: busy-waiting ORT threads would take their CPU (~3 % of a scan).
        opts["spin"] = False if not config.on_cuda else None
    if name == "torch" and not config.on_cuda:
        torch.set_num_threads(config.resolved_threads())
    if name == "openvino" and not config.on_cuda:
        opts["threads"] = config.threads
    # auto's probe settled precision/threads for its choice: they win over the scan-wide defaults above.
    opts.update(resolved.get("engine_options") or {})
    engine = create_engine(name, Path(resolved.get("engine_artifact") or config.model), **opts)
    engine.load()
    return engine


def model_manifest(engine: Engine | None) -> dict[str, Any] | None:
    """The model's manifest for run.json (without the I/O spec), None when the artifact has none."""
    man = engine.manifest if engine is not None else None
    if man is None:
        return None
    d = man.to_dict()
    d.pop("io", None)
    return d


def _crop_backend(config: ScanConfig) -> str:
    from lib_deepfake.faces.crop import crop_backend

    return str(crop_backend(config.torch_device()))


def _provider_of(engine: Engine) -> str | None:
    providers = engine.info().runtime.get("providers")
    if providers:
        return str(providers[0])
    return {"torch": "torch", "trt": "TensorRT"}.get(engine.name)


def _warm_detector(detector: FaceDetector, config: ScanConfig) -> None:
    # Creates the ONNX Runtime session now (so the provider is known for run.json and a missing GPU provider fails
    # before any file is touched) on a tiny blank frame.
    import torch

    frames = torch.zeros((1, 64, 64, 3), dtype=torch.uint8, device=config.device)
    detector.detect(frames)


__all__ = ["Components", "load_components", "model_manifest", "resolve_choices"]
