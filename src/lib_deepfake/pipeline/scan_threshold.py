"""A scan's verdict threshold and where it came from.

``ScanConfig.threshold`` None means "the model's": the calibrated threshold of its model card (the checkpoint's, or
the manifest's beside an exported artifact), else 0.5 - and the scan says which. A number is a threshold given by
the user (``lib-infer --threshold``), and wins. :func:`resolve_scan_threshold` settles it once, before anything
is scanned (the results' fingerprint and every verdict use the number), and returns what run.json records:

- ``threshold``: value, origin (``option`` | ``model`` | ``default``), text and rule
  (:class:`~lib_deepfake.model.threshold.ResolvedThreshold`);
- ``threshold_source``: the origin in words, for the report header and the console ("eer on val videos of FF++_c23,
  from the model card"; "default: the model has no model card");
- ``model_card``: the model's card (plus ``summary``, one line, and ``summary_lines``) or None.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from lib_deepfake.pipeline.config import ScanConfig

__all__ = ["NO_CARD_LINE", "ScanThreshold", "resolve_scan_threshold"]

#: The report header's model-card line for a model without a card.
NO_CARD_LINE = "No model card: threshold 0.5 (default)"


@dataclass(frozen=True)
class ScanThreshold:
    """The settled threshold of a scan: see the module docstring."""

    value: float
    resolved: dict[str, Any]
    source: str
    card: dict[str, Any] | None

    def header(self) -> dict[str, Any]:
        """The run.json entries."""
        return {"threshold": self.resolved, "threshold_source": self.source, "model_card": self.card}


def resolve_scan_threshold(config: ScanConfig) -> tuple[ScanConfig, ScanThreshold]:
    """``config`` with a number as its threshold, and where that number came from.

    The model card is read even when the threshold is given, so run.json and the report show what the verdicts are
    worth either way.

    Raises:
        CheckpointError, ArtifactMismatchError: the model or its card cannot be read (a card of a newer version).
    """
    from lib_deepfake.model.card import load_card
    from lib_deepfake.model.threshold import resolve_threshold

    card = load_card(config.model)
    choice = card.threshold if card is not None else None
    resolved = resolve_threshold(choice, config.threshold)
    if resolved.origin == "option":
        source = "given with --threshold"
        if choice is not None:
            source += f"; the model card's calibrated threshold is {choice.describe()}"
    elif resolved.origin == "model":
        assert choice is not None
        where = f"{choice.split} {choice.level}s" + (f" of {', '.join(choice.datasets)}" if choice.datasets else "")
        source = f"{choice.rule} on {where}, from the model card"
    elif card is None:
        source = "default: the model has no model card"
    else:
        source = "default: the model card holds no calibrated threshold"
    card_data = None
    if card is not None:
        lines = card.summary_lines()
        card_data = {**card.to_dict(), "summary": " · ".join(lines), "summary_lines": lines}
    settled = config if config.threshold == resolved.value else replace(config, threshold=resolved.value)
    return settled, ScanThreshold(resolved.value, resolved.to_dict(), source, card_data)
