"""Step ``crops``: the native CUDA crop kernel (RGB and NV12) against the C++ reference, byte for byte, and
crops/s of the native library and the torch path."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lib_deepfake.bench.gpu_check.checks import check, guarded_check

if TYPE_CHECKING:
    from lib_deepfake.bench.gpu_check.profiles import Profile


def _random_nv12(frames: int, h: int, w: int, seed: int):  # noqa: ANN202 - torch tensor
    import torch

    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (frames, h * 3 // 2, w), dtype=torch.uint8, generator=g)


def step_crops(ctx: dict[str, Any], profile: Profile) -> dict[str, Any]:
    import torch

    from lib_deepfake.bench import crops as crop_bench
    from lib_deepfake.faces import crop as crop_mod
    from lib_deepfake.faces import native

    on_gpu = profile.device.startswith("cuda")
    dev = torch.device(profile.device)
    checks: list[dict[str, Any]] = []
    cpu_ok, cpu_why = native.available("cpu")
    dev_ok, dev_why = native.available(dev)
    data: dict[str, Any] = {"native_cpu": cpu_why, "native_device": dev_why}
    size = 224
    frames, boxes = crop_bench.make_inputs(
        profile.crop_frame_size, profile.crop_faces, profile.crop_frames, 5, torch.device("cpu")
    )
    torch_cpu = crop_mod.crop_faces_torch(frames, boxes, size)
    if not cpu_ok:
        checks.append(check("C++ reference", "skip", f"native CPU library unavailable: {cpu_why}"))
        reference = None
    else:
        reference = native.crop_rgb(frames, boxes, size)
        diff = int((reference.int() - torch_cpu.int()).abs().max())
        checks.append(
            check(
                "C++ reference vs torch path (CPU)",
                "pass" if diff <= 1 else "fail",
                f"max diff {diff} grey level(s) over {reference.numel()} values (contract: <= 1)",
            )
        )
    if on_gpu:
        h, w = profile.crop_frame_size

        def rgb() -> tuple[str, str]:
            assert reference is not None
            got = native.crop_rgb(frames.to(dev), boxes, size).cpu()
            diff, ndiff = int((got.int() - reference.int()).abs().max()), int(torch.ne(got, reference).sum())
            return ("pass" if diff == 0 else "fail"), f"max diff {diff}, {ndiff} of {got.numel()} bytes differ"

        def nv12() -> tuple[str, str]:
            src = _random_nv12(profile.crop_frames, h, w, 6)
            ref12 = native.crop_nv12(src, boxes, size)
            got12 = native.crop_nv12(src.to(dev), boxes, size).cpu()
            diff = int((got12.int() - ref12.int()).abs().max())
            return (
                "pass" if diff == 0 else "fail"
            ), f"max diff {diff}, {int(torch.ne(got12, ref12).sum())} bytes differ"

        def torch_path() -> tuple[str, str]:
            assert reference is not None
            got = crop_mod.crop_faces_torch(frames.to(dev), boxes.to(dev), size).cpu()
            diff = int((got.int() - reference.int()).abs().max())
            return ("pass" if diff <= 1 else "fail"), f"max diff {diff} (contract: <= 1)"

        kernel_checks = (("CUDA kernel vs C++ reference (RGB)", rgb), ("CUDA kernel vs C++ reference (NV12)", nv12))
        if reference is None:
            checks.append(check("CUDA crops vs C++ reference", "skip", "no C++ reference to compare with"))
        else:
            for name, fn in kernel_checks:
                if dev_ok:
                    checks.append(guarded_check(name, fn))
                else:
                    checks.append(check(name, "skip", f"native CUDA library unavailable: {dev_why}"))
            checks.append(guarded_check("torch path on CUDA vs C++ reference", torch_path))
    else:
        checks.append(check("CUDA kernel vs C++ reference", "skip", "dry run: no GPU"))
    bench = crop_bench.run_crop_bench(
        profile.device,
        profile.crop_frame_size,
        size,
        profile.crop_faces,
        profile.crop_iters,
        frames=profile.crop_frames,
        warmup=2,
    )
    data["bench"] = bench
    b = bench["backends"]
    if "crops_per_s" in b.get("native", {}):
        speed = bench["speedup_native_vs_torch"]
        checks.append(
            check(
                f"crops/s on {bench['device']}",
                "pass",
                f"native {b['native']['crops_per_s']:.0f}, torch {b['torch']['crops_per_s']:.0f} "
                f"({speed}x); outputs differ by <= {bench['max_abs_diff']}",
            )
        )
        summary = f"native {b['native']['crops_per_s']:.0f} crops/s vs torch {b['torch']['crops_per_s']:.0f} ({speed}x)"
    else:
        summary = f"torch {b['torch']['crops_per_s']:.0f} crops/s; native skipped: {b.get('native', {}).get('skipped')}"
        checks.append(check(f"crops/s on {bench['device']}", "skip", summary))
    return {"checks": checks, "data": data, "summary": summary}
