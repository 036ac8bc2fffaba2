"""Entry points: pick a decoder, read a plan in one call, or decode in a child process with a hard time limit.

What protects against what:
- The **in-loop deadline** (``timeout_s``; :class:`DecodeTimeoutError`) is checked between packets and frames in
  every demux/decode loop. It stops slow decodes (huge or pathological files) but cannot interrupt a single libav
  call that never returns.
- :func:`decode_in_subprocess` runs the whole open + read in a child process and kills it at the deadline: the
  guard against a true hang inside libav, at the cost of a process start and copying the frames back.
- ``max_pixels`` (:class:`ResolutionTooLargeError`) refuses huge frames before any memory is spent on them.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lib_deepfake.video.errors import CorruptVideoError, DecodeTimeoutError, VideoFileError
from lib_deepfake.video.frames import FrameBatch, VideoSource
from lib_deepfake.video.info import DEFAULT_MAX_PIXELS, DEFAULT_TIMEOUT_S, VideoInfo
from lib_deepfake.video.sampling import ResolvedPlan, SamplingPlan, parse_plan

logger = logging.getLogger(__name__)

#: Decoder names accepted by :func:`open_video` (and the CLIs' ``--decoder``).
DECODERS = ("pyav", "dali")


def open_video(
    path: str | Path,
    *,
    decoder: str = "pyav",
    device: str | None = None,
    threads: int = 0,
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    allow_truncated: bool = False,
) -> VideoSource:
    """Open a video with the chosen decoder.

    Args:
        path: the video file.
        decoder: "pyav" (CPU, every codec libavcodec has) or "dali" (NVDEC on a GPU; DALI's CPU decoder for
            VP8/VP9/MJPEG when there is none).
        device: dali only: "gpu" (NVDEC, frames are CUDA tensors), "cpu", or None = "gpu" when CUDA is available.
        threads: decoder threads (0 = automatic).
        timeout_s: per-file time limit for opening and for each read (None: no limit).
        max_pixels: refuse frames larger than this (None: no limit).
        allow_truncated: decode what a truncated file holds (logged) instead of raising CorruptVideoError.

    Returns:
        A :class:`VideoSource`; use it as a context manager.
    """
    if decoder == "pyav":
        from lib_deepfake.video.pyav_source import PyAVSource

        return PyAVSource(
            path, threads=threads, timeout_s=timeout_s, max_pixels=max_pixels, allow_truncated=allow_truncated
        )
    if decoder == "dali":
        from lib_deepfake.video.dali_source import DaliVideoSource

        return DaliVideoSource(
            path, device=device, threads=threads, timeout_s=timeout_s, max_pixels=max_pixels,
            allow_truncated=allow_truncated,
        )  # fmt: skip
    from lib_deepfake.errors import ContractError

    raise ContractError(f"unknown decoder {decoder!r}; choose one of {', '.join(DECODERS)}")


def read_frames(path: str | Path, plan: SamplingPlan | str = "uniform:32", **kwargs: Any) -> FrameBatch:
    """Open, read one plan, close. ``kwargs`` go to :func:`open_video`."""
    with open_video(path, **kwargs) as src:
        return src.read(plan)


# ---- child-process decoding ----------------------------------------------------------------------------------


def _child_call(conn: Any, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    try:
        conn.send(("ok", fn(*args, **kwargs)))
    except VideoFileError as exc:
        conn.send(("err", exc))
    except BaseException as exc:  # noqa: BLE001 - report anything; the parent re-raises it typed
        conn.send(("err", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def run_in_subprocess(
    fn: Callable[..., Any],
    *args: Any,
    timeout_s: float,
    path: str | Path | None = None,
    start_method: str = "spawn",
    **kwargs: Any,
) -> Any:
    """Call ``fn(*args, **kwargs)`` in a child process; kill it when ``timeout_s`` passes.

    ``fn`` and its result must be picklable. Typed video errors raised in the child are re-raised here as they were;
    anything else becomes :class:`CorruptVideoError` with the child's message.

    Raises:
        DecodeTimeoutError: the child did not answer within ``timeout_s`` (it is killed).
    """
    ctx = mp.get_context(start_method)
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child_call, args=(child, fn, args, kwargs), daemon=True)  # type: ignore[attr-defined]
    proc.start()
    child.close()
    try:
        if not parent.poll(timeout_s):
            raise DecodeTimeoutError(f"exceeded the {timeout_s:g} s per-file time limit (decoder process killed)", path)
        try:
            status, payload = parent.recv()
        except EOFError as exc:
            proc.join(5)
            raise CorruptVideoError(f"decoder process died (exit code {proc.exitcode})", path) from exc
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(5)
        parent.close()
    if status == "err":
        if isinstance(payload, BaseException):
            raise payload
        raise CorruptVideoError(f"decoder process failed: {payload}", path)
    return payload


def _read_to_payload(path: str, plan: SamplingPlan, kwargs: dict[str, Any]) -> dict[str, Any]:
    batch = read_frames(path, plan, **kwargs)
    return {
        "frames": batch.frames.cpu().numpy(),
        "indices": batch.indices,
        "times_s": batch.times_s,
        "shifts": batch.shifts,
        "info": batch.info,
        "plan": batch.plan.plan,
        "plan_indices": batch.plan.indices,
        "plan_targets": batch.plan.targets,
        "stats": batch.stats,
        "decoder": batch.decoder,
    }


def decode_in_subprocess(
    path: str | Path,
    plan: SamplingPlan | str = "uniform:32",
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    grace_s: float = 30.0,
    start_method: str = "spawn",
    **kwargs: Any,
) -> FrameBatch:
    """:func:`read_frames` in a child process that is killed when ``timeout_s + grace_s`` passes.

    The child also runs with the in-loop deadline ``timeout_s``, which normally fires first with a clean
    :class:`DecodeTimeoutError`; ``grace_s`` covers process start-up. Frames come back as CPU tensors.
    ``start_method`` "spawn" is the safe default (the child imports torch/av afresh, about 1-3 s); "forkserver"
    amortises that over many calls.

    Raises:
        DecodeTimeoutError: the child did not finish in time (it is killed).
        VideoFileError subclasses raised in the child, re-raised with their type and reason.
    """
    import torch

    plan = parse_plan(plan)
    payload = run_in_subprocess(_read_to_payload, str(path), plan, dict(kwargs, timeout_s=timeout_s),
                                timeout_s=timeout_s + grace_s, path=path, start_method=start_method)  # fmt: skip
    info: VideoInfo = payload["info"]
    return FrameBatch(
        frames=torch.from_numpy(payload["frames"]),
        indices=payload["indices"],
        times_s=payload["times_s"],
        shifts=payload["shifts"],
        info=info,
        plan=ResolvedPlan(payload["plan"], payload["plan_indices"], payload["plan_targets"]),
        stats=payload["stats"],
        decoder=str(payload["decoder"]),
    )


__all__ = ["DECODERS", "decode_in_subprocess", "open_video", "read_frames", "run_in_subprocess"]
