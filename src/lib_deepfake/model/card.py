"""The model card every checkpoint and exported artifact carries: what the model was trained on, how, how well it
did, where its threshold came from, and what it is (not) fit for.

Stored as a plain dict (weights_only-safe) under :data:`CARD_KEY`: ``checkpoint[CARD_KEY]`` in our checkpoints and
``manifest.extra[CARD_KEY]`` in the manifests beside exported artifacts. A model trained on ``lib-prep
synth`` data is marked ``demo`` and says so. Official checkpoints have no card (:func:`load_card` returns None).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from lib_deepfake.errors import ArtifactMismatchError
from lib_deepfake.model.threshold import ThresholdChoice

__all__ = ["CARD_KEY", "CARD_VERSION", "DatasetCounts", "ModelCard", "load_card"]

CARD_KEY = "model_card"
CARD_VERSION = 1

DEMO_USE = (
    "Demonstration only: trained on the synthetic demo corpus (lib-prep synth: public-domain portraits with "
    "self-blended faces). It shows the toolkit working end to end; its scores and verdicts say nothing about real "
    "videos."
)
DEMO_LIMITS = ["Not a deepfake detector for real videos: it has never seen a real manipulation method."]
DEFAULT_USE = (
    "Research and triage: flag videos of faces as possibly manipulated (face swap, reenactment) for human review, "
    "on material similar to the training data. A score, not proof."
)
DEFAULT_LIMITS = [
    "Accuracy drops on material unlike the training data (other manipulation methods, compression, resolution, "
    "lighting): see the test metrics per dataset.",
    "Scores come from face crops only: no audio, background or timing evidence; a video without a detected face "
    "gets no verdict.",
    "The threshold was chosen on the validation split of the training data; other material may need another one.",
]


@dataclass
class DatasetCounts:
    """One training dataset as its list files describe it.

    Attributes:
        name: dataset name (folder under the dataset root).
        counts: ``{split: {"real"|"fake": {"videos": n, "frames": n}}}``; videos = list lines (face folders, one per
            video with ``--faces largest``), frames = the lines' frame counts.
        list_sha256: sha256 of each list file (``train_real.txt`` -> hex): the exact lists trained on.
        synthetic: built from the synthetic demo corpus.
        source: provenance recorded by lib-prep (importer, source root, options).
    """

    name: str
    counts: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    list_sha256: dict[str, str] = field(default_factory=dict)
    synthetic: bool = False
    source: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetCounts:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def describe(self) -> str:
        """``FF++_c23 (train 720 real / 2880 fake, val 140 / 560 videos)``."""
        parts = []
        for split, by_class in self.counts.items():
            real, fake = by_class.get("real", {}).get("videos", 0), by_class.get("fake", {}).get("videos", 0)
            if real or fake:
                parts.append(f"{split} {real} real / {fake} fake")
        return f"{self.name} ({', '.join(parts)} videos)" if parts else self.name


@dataclass
class ModelCard:
    """What a model is and is worth.

    Attributes:
        training_data: the datasets trained on.
        recipe: the training settings that matter (recipe name, epochs, batch, lr, augmentation, seed, ...).
        architecture: a short description (``LIB 4 x resnet34 @224``).
        val_metrics: metrics on the validation split (frame and video level).
        test_metrics: ``{dataset: metrics}`` on test splits (lib-eval's per-dataset dicts).
        threshold: the calibrated threshold and its rule, or None (0.5 is then used, and said).
        intended_use: one paragraph.
        limitations: one sentence each.
        demo: trained on the synthetic demo corpus.
    """

    training_data: list[DatasetCounts] = field(default_factory=list)
    recipe: dict[str, Any] = field(default_factory=dict)
    architecture: str = ""
    val_metrics: dict[str, Any] | None = None
    test_metrics: dict[str, Any] = field(default_factory=dict)
    threshold: ThresholdChoice | None = None
    intended_use: str = ""
    limitations: list[str] = field(default_factory=list)
    demo: bool = False
    card_version: int = CARD_VERSION

    @classmethod
    def build(cls, training_data: list[DatasetCounts], recipe: dict[str, Any], **kwargs: Any) -> ModelCard:
        """A card with the intended use and limits filled in: a demo card as soon as one training dataset comes from
        the synthetic demo corpus (a model meant for real videos is never trained on it; SBI pseudo-fakes made from
        such a dataset are not flagged themselves, the dataset they were made from is)."""
        demo = any(d.synthetic for d in training_data)
        kwargs.setdefault("intended_use", DEMO_USE if demo else DEFAULT_USE)
        kwargs.setdefault("limitations", list(DEMO_LIMITS if demo else DEFAULT_LIMITS))
        return cls(training_data=list(training_data), recipe=dict(recipe), demo=demo, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/weights_only-safe data (``threshold`` as a dict or None)."""
        data = asdict(self)
        data["threshold"] = self.threshold.to_dict() if self.threshold is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        version = int(data.get("card_version", 0))
        if version > CARD_VERSION:
            raise ArtifactMismatchError(
                f"model card version {version} is newer than this lib-deepfake understands ({CARD_VERSION})"
            )
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        known["training_data"] = [DatasetCounts.from_dict(d) for d in known.get("training_data") or []]
        threshold = known.get("threshold")
        known["threshold"] = ThresholdChoice.from_dict(threshold) if threshold else None
        return cls(**known)

    def summary_lines(self) -> list[str]:
        """A few lines for report headers: demo warning, training data, threshold, metrics, use and limits."""
        lines = []
        if self.demo:
            lines.append(
                "DEMO MODEL: trained on the synthetic demo corpus; its verdicts say nothing about real videos."
            )
        if self.architecture:
            lines.append(f"Model: {self.architecture}")
        if self.training_data:
            lines.append("Trained on: " + "; ".join(d.describe() for d in self.training_data))
        if self.threshold is not None:
            lines.append(f"Threshold: {self.threshold.describe()}")
        val = (self.val_metrics or {}).get("video") or {}
        if val.get("auc") is not None:
            lines.append(f"Validation: video AUC {val['auc']:.3f}")
        for name, metrics in self.test_metrics.items():
            auc = (metrics.get("frame") or {}).get("auc") if isinstance(metrics, dict) else None
            if auc is not None:
                lines.append(f"Test {name}: frame AUC {auc:.3f}")
        if self.intended_use:
            lines.append(f"Intended use: {self.intended_use}")
        lines.extend(f"Limit: {text}" for text in self.limitations)
        return lines


def load_card(artifact: Path | str) -> ModelCard | None:
    """The card of a checkpoint (``.pth``/``.pt``) or of an exported artifact (from the manifest beside it);
    None when it has none (official checkpoints, artifacts exported before cards existed)."""
    path = Path(artifact)
    data: Any
    if path.suffix.lower() in (".pth", ".pt"):
        from lib_deepfake.model.checkpoint import read_checkpoint

        data = read_checkpoint(path).extra.get(CARD_KEY)
    else:
        from lib_deepfake.manifest import Manifest

        manifest = Manifest.load(path)
        data = manifest.extra.get(CARD_KEY) if manifest is not None else None
    return ModelCard.from_dict(data) if data else None
