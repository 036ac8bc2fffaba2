"""Scratch artifacts more than one step uses, made once per work folder."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lib_deepfake.bench.gpu_check.profiles import Profile


def ensure_checkpoint(ctx: dict[str, Any], profile: Profile) -> Path:
    """The random-init, BatchNorm-calibrated LIB checkpoint of this profile (written once per work dir)."""
    from lib_deepfake.model.testing import write_test_checkpoint

    m = profile.model
    name = f"lib-{m['num_libs']}x{m['backbone']}-{m['size']}-w{m['width_mult']:g}.pt"
    path = Path(ctx["work"]) / name
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.pt")
        write_test_checkpoint(tmp, **m)
        tmp.replace(path)
    return path
