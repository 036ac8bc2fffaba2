"""Logging helpers. Library modules log through ``logging.getLogger(__name__)``; only the CLI adds handlers."""

from __future__ import annotations

import logging

_seen: set[str] = set()


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)


def warn_once(logger: logging.Logger, message: str) -> None:
    """Log ``message`` as a warning the first time it is seen in this process."""
    if message not in _seen:
        _seen.add(message)
        logger.warning(message)


def setup_cli_logging(verbosity: int = 0) -> None:
    """Attach one stderr handler. verbosity: -1 quiet, 0 info, 1+ debug."""
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    root = logging.getLogger("lib_deepfake")
    root.setLevel(level)
    if not any(getattr(h, "_lib_deepfake", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handler._lib_deepfake = True  # type: ignore[attr-defined]
        root.addHandler(handler)
