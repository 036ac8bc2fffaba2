"""Errors raised while training that a user can act on."""

from __future__ import annotations

from lib_deepfake.errors import LibDeepfakeError


class TrainingError(LibDeepfakeError):
    """Training cannot go on (non-finite loss, inconsistent resume state, bad distributed setup)."""
