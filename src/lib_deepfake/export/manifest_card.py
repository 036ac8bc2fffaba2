"""The model card an exported artifact carries: copied from the checkpoint (``to-onnx``, ``to-aoti``, ``to-trt`` from a
checkpoint) or from the source ONNX's manifest (``quantize``, ``quantize-openvino``, ``to-trt`` from an ONNX) into
the new manifest's ``extra``:

- ``model_card``: the card (:class:`~lib_deepfake.model.card.ModelCard` as a dict), or None;
- ``threshold``: the threshold ``lib-infer`` and ``lib-eval`` will use by default, and where it comes from
  (:func:`~lib_deepfake.model.threshold.resolve_threshold`): the calibrated one, or 0.5 - said so - for a model
  without a card (official checkpoints never have one);
- ``model_card_note`` (only without a card): why there is none.

A card of a newer version than this lib-deepfake reads is an error here, not something silently dropped.
"""

from __future__ import annotations

from typing import Any

from lib_deepfake.manifest import Manifest
from lib_deepfake.model.card import CARD_KEY, ModelCard
from lib_deepfake.model.threshold import resolve_threshold

__all__ = ["card_extra", "card_extra_from_manifest", "threshold_text"]

NO_CARD_OFFICIAL = "official checkpoints carry no model card: threshold 0.5 (default)"
NO_CARD = "no model card in the source (written before model cards, or by other tools): threshold 0.5 (default)"


def card_extra(card: dict[str, Any] | None, *, source: str = "") -> dict[str, Any]:
    """The manifest ``extra`` entries for a checkpoint whose card (a dict, or None) is ``card``.

    Args:
        card: ``checkpoint[CARD_KEY]``.
        source: ``official`` for an official checkpoint (the note says so).

    Raises:
        ArtifactMismatchError: the card is of a newer version.
    """
    return _entries(card, NO_CARD_OFFICIAL if source == "official" else NO_CARD)


def card_extra_from_manifest(manifest: Manifest | None) -> dict[str, Any]:
    """The manifest ``extra`` entries of an artifact made from the artifact described by ``manifest`` (None: it
    has no manifest): its card, or its note on why there is none."""
    extra = manifest.extra if manifest is not None else {}
    return _entries(extra.get(CARD_KEY), str(extra.get("model_card_note") or NO_CARD))


def _entries(card: dict[str, Any] | None, note: str) -> dict[str, Any]:
    parsed = ModelCard.from_dict(card) if card else None
    entries: dict[str, Any] = {
        CARD_KEY: parsed.to_dict() if parsed is not None else None,
        "threshold": resolve_threshold(parsed.threshold if parsed is not None else None).to_dict(),
    }
    if parsed is None:
        entries["model_card_note"] = note
    return entries


def threshold_text(extra: dict[str, Any]) -> str:
    """One line for the export commands' output: whether the artifact carries a card, and its threshold."""
    card = extra.get(CARD_KEY)
    if card is None:
        return str(extra.get("model_card_note") or NO_CARD)
    parsed = ModelCard.from_dict(card)
    demo = " (a demo model)" if parsed.demo else ""
    if parsed.threshold is None:
        return f"carried{demo}, without a calibrated threshold: 0.5 (default)"
    return f"carried{demo}; threshold {parsed.threshold.describe()}"
