"""Step ``decode``: a generated H.264 clip decoded by PyAV and, on a GPU, by DALI/NVDEC (frames/s); every decoded
frame's identity is checked with the index code drawn into it. The dry run checks DALI's CPU path on a VP9 clip."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lib_deepfake.bench.gpu_check.checks import check, describe_error
from lib_deepfake.bench.gpu_check.probes import find_nvcuvid, has

if TYPE_CHECKING:
    from lib_deepfake.bench.gpu_check.profiles import Profile


def _decode_rate(path: Path, decoder: str, device: str | None = None) -> dict[str, Any]:
    """Decode every frame of ``path`` (RGB frames, on the GPU for DALI-NVDEC); frames/s and a frame check."""
    import torch

    from lib_deepfake.video import open_video
    from lib_deepfake.video.synth import read_index_code

    kwargs: dict[str, Any] = {"decoder": decoder}
    if device is not None:
        kwargs["device"] = device
    t0 = time.perf_counter()
    with open_video(path, **kwargs) as src:
        t_open = time.perf_counter() - t0
        batch = src.read("all")
        if batch.frames.is_cuda:
            torch.cuda.synchronize(batch.frames.device)
    wall = time.perf_counter() - t0
    n = int(batch.frames.shape[0])
    step = max(1, n // 16)
    picks = list(range(0, n, step))
    sample = batch.frames[picks].cpu().numpy()
    wrong = [
        int(batch.indices[i]) for k, i in enumerate(picks) if read_index_code(sample[k]) != int(batch.indices[i]) % 256
    ]
    return {
        "frames": n,
        "wall_s": round(wall, 3),
        "open_s": round(t_open, 3),
        "fps": round(n / wall, 1),
        "device": str(batch.frames.device),
        "checked_frames": len(picks),
        "wrong_index_codes": wrong,
        "sample_indices": [int(batch.indices[i]) for i in picks],
        "sample": sample,
    }


def step_decode(ctx: dict[str, Any], profile: Profile) -> dict[str, Any]:
    import numpy as np
    import torch

    from lib_deepfake.bench.decode import full_decode
    from lib_deepfake.video.synth import write_clip

    if not has("av"):
        return {
            "checks": [check("decode", "skip", "PyAV (av) not installed: cannot write or decode the clip")],
            "summary": "av missing",
        }
    on_gpu = profile.device.startswith("cuda") and torch.cuda.is_available()
    checks: list[dict[str, Any]] = []
    w, h = profile.clip_size
    clip = Path(ctx["work"]) / f"h264-{h}p-{profile.clip_frames}f.mp4"
    t0 = time.perf_counter()
    if not clip.is_file():
        clip.parent.mkdir(parents=True, exist_ok=True)
        tmp = clip.with_name("tmp-" + clip.name)
        write_clip(tmp, frames=profile.clip_frames, size=(w, h), fps=30, codec="libx264", gop=60, noise=True)
        tmp.replace(clip)
    data: dict[str, Any] = {
        "clip": {
            "path": str(clip),
            "size": [w, h],
            "frames": profile.clip_frames,
            "bytes": clip.stat().st_size,
            "write_s": round(time.perf_counter() - t0, 1),
        }
    }
    full = full_decode(clip)
    data["pyav_raw_loop"] = {**full, "fps": round(full["frames_decoded"] / full["wall_s"], 1)}
    pyav = _decode_rate(clip, "pyav")
    pyav_sample = pyav.pop("sample")
    data["pyav"] = pyav
    checks.append(
        check(
            f"PyAV {h}p H.264",
            "fail" if pyav["wrong_index_codes"] else "pass",
            f"{pyav['fps']:.0f} frames/s (RGB tensors, open incl.); raw loop "
            f"{data['pyav_raw_loop']['fps']:.0f} frames/s; frame codes "
            f"{'ok' if not pyav['wrong_index_codes'] else 'WRONG ' + str(pyav['wrong_index_codes'][:5])}",
        )
    )
    summary = f"PyAV {pyav['fps']:.0f} fps"
    if not has("nvidia.dali"):
        checks.append(check("DALI decode", "skip", "nvidia.dali not installed"))
    elif on_gpu:
        nv = find_nvcuvid()
        if not nv["ok"]:
            checks.append(check(f"DALI NVDEC {h}p H.264", "skip", "libnvcuvid.so not found (driver's NVDEC library)"))
        else:
            try:
                dali = _decode_rate(clip, "dali", "gpu")
            except Exception as exc:  # a DALI failure must not cost the PyAV numbers
                dali = {"error": describe_error(exc)}
        if nv["ok"] and "error" in dali:
            data["dali"] = dali
            checks.append(check(f"DALI NVDEC {h}p H.264", "fail", dali["error"]))
        elif nv["ok"]:
            dali_sample = dali.pop("sample")
            same = dali["sample_indices"] == pyav["sample_indices"]
            mad = float(np.abs(dali_sample.astype(np.int16) - pyav_sample.astype(np.int16)).mean()) if same else None
            dali["mean_abs_diff_vs_pyav"] = mad
            data["dali"] = dali
            ok = not dali["wrong_index_codes"] and dali["device"].startswith("cuda") and (mad is None or mad <= 4.0)
            checks.append(
                check(
                    f"DALI NVDEC {h}p H.264",
                    "pass" if ok else "fail",
                    f"{dali['fps']:.0f} frames/s on {dali['device']} ({dali['fps'] / pyav['fps']:.1f}x PyAV); "
                    f"frame codes {'ok' if not dali['wrong_index_codes'] else 'WRONG'}; mean |pixel diff| "
                    f"vs PyAV {mad if mad is None else round(mad, 2)}",
                )
            )
            summary += f"; DALI NVDEC {dali['fps']:.0f} fps"
    else:
        # The CPU stand-in: DALI's CPU decoder cannot decode H.264, so a small VP9 clip checks the DALI path.
        vp9 = Path(ctx["work"]) / "vp9-240p-30f.webm"
        if not vp9.is_file():
            write_clip(vp9, frames=30, size=(320, 240), fps=30, codec="libvpx-vp9", gop=10)
        try:
            dali = _decode_rate(vp9, "dali", "cpu")
            dali.pop("sample")
            ok = not dali["wrong_index_codes"]
            detail = f"{dali['fps']:.0f} frames/s, 320x240, frame codes {'ok' if ok else 'WRONG'}"
        except Exception as exc:
            dali, ok = {}, False
            detail = describe_error(exc)
        data["dali_cpu_vp9"] = dali
        checks.append(check("DALI CPU VP9 (stand-in for NVDEC)", "pass" if ok else "fail", detail))
        checks.append(check(f"DALI NVDEC {h}p H.264", "skip", "dry run: no GPU"))
    return {"checks": checks, "data": data, "summary": summary}
