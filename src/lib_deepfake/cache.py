"""The one cache root of the library: the bundled face-crop set, compiled OpenVINO models, ... each in its own
subfolder. ``$LIB_DEEPFAKE_CACHE``, else ``$XDG_CACHE_HOME/lib-deepfake``, else ``~/.cache/lib-deepfake``."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "LIB_DEEPFAKE_CACHE"


def cache_root() -> Path:
    """The cache root (not created here: whoever writes into it creates its own subfolder)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lib-deepfake"


__all__ = ["CACHE_ENV", "cache_root"]
