"""TrainConfig: every training knob in one frozen, validated dataclass, with the two recipes' defaults.

``--recipe official`` reproduces what the official code does (method.md §3-§4), defects included where they shape
the numbers (schedule, test-set selection, element-mean KL). ``--recipe default`` fixes them (method.md §5). Fields
left as ``None`` when building a config take the recipe's value, so an explicit option always wins.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

from lib_deepfake.errors import LibDeepfakeError

Recipe = Literal["default", "official"]

# Values that differ between the recipes; everything else has one default.
RECIPE_DEFAULTS: dict[str, dict[str, Any]] = {
    "official": {
        "optimizer": "adam",  # classic L2 in the gradient, as torch.optim.Adam(weight_decay=...)
        "weight_decay": 1e-6,
        "schedule": "official",  # per-iteration cosine T_max=150, rebuilt every epoch, halving rule
        "warmup_epochs": 0.0,
        "kl_reduction": "mean",  # nn.KLDivLoss() default: element mean = half the per-sample KL for 2 classes
        "select_split": "test",  # the official code selects (and halves the LR) on the test split
        "eval_frames_per_video": None,  # every listed frame
        "channel_order": "BGR",  # cv2.imread without conversion, RGB ImageNet constants (method.md §4.5)
        "drop_last": False,
        "sinkhorn_stable": False,
        "scales_by_position": True,  # hyper scales index the list of *enabled* terms (code behaviour)
    },
    "default": {
        "optimizer": "adamw",
        "weight_decay": 1e-2,
        "schedule": "cosine",  # warm-up, then one cosine over the whole run, per optimiser step
        "warmup_epochs": 1.0,
        "kl_reduction": "batchmean",  # the true mean per-sample KL
        "select_split": "val",
        "eval_frames_per_video": 32,  # the field's protocol (method.md §6.2/6.4)
        "channel_order": "RGB",
        "drop_last": True,  # a train batch of 1 breaks BatchNorm1d in the fusion layer (method.md §5.17)
        "sinkhorn_stable": True,
        "scales_by_position": False,  # scales are always (CE, GIL, LIL), whatever is switched off
    },
}


@dataclass(frozen=True)
class TrainConfig:
    """Resolved training configuration. Build with :func:`make_train_config` to get recipe defaults.

    Attributes (groups):
        data: ``dataset_root`` (folder holding ``NAME/{train,val,test}_{real,fake}.txt``), ``datasets`` (names),
            ``frames_per_video`` (train; None = all listed frames, N = N spread uniformly, re-drawn each epoch),
            ``eval_frames_per_video`` (val/test; None = all, N = N uniformly spaced), ``real_oversample``
            (``"official"`` per-dataset ratios of method.md §4.4, ``"none"``, or an integer), ``select_split``
            (split evaluated every epoch; selection and LR decisions use it), ``augment``.
        model: ``backbone``, ``num_libs``, ``width_mult``, ``input_size``, ``channel_order`` (what the weights
            expect; loaded crops are RGB and converted by the model's preprocessing), ``pretrained``.
        losses: ``gil``, ``lil``, ``lil_method`` (``mi`` as training uses, ``distance``), ``mi_calculator``
            (``kl``/``w``), ``kl_reduction`` (``mean`` official, ``batchmean``), ``temperature``, ``balance``
            (``auto``/``hyper``/``none``), ``scales`` (CE, GIL, LIL), ``mixup``, ``alpha``.
        optimisation: ``epochs``, ``batch_size`` (global, split over DDP ranks), ``eval_batch_size``, ``lr``,
            ``weight_decay``, ``optimizer``, ``schedule``, ``warmup_epochs``, ``grad_accum``, ``drop_last``.
        runtime: ``device``, ``amp`` (``auto``/``bf16``/``fp16``/``off``), ``channels_last``, ``seed``,
            ``workers`` (None = 0 on CPU, min(8, cores) on CUDA), ``threads`` (torch intra-op threads; None = torch's
            default), ``output``, ``save_every`` (epochs; 0 = never),
            ``tensorboard``.
        end of training: ``threshold_rule`` (``eer``, ``youden`` or ``target-fpr:F``): how the decision threshold
            stored in the checkpoints' model card is chosen on the validation videos.
    """

    dataset_root: Path
    datasets: tuple[str, ...]
    output: Path | None = None
    recipe: Recipe = "default"
    # data
    frames_per_video: int | None = None
    eval_frames_per_video: int | None = 32
    real_oversample: str = "official"
    select_split: Literal["val", "test"] = "val"
    augment: bool = True
    # model
    backbone: str = "resnet34"
    num_libs: int = 4
    width_mult: float = 1.0
    input_size: int = 224
    channel_order: Literal["RGB", "BGR"] = "RGB"
    pretrained: bool = True
    # losses
    gil: bool = True
    lil: bool = True
    lil_method: Literal["mi", "distance"] = "mi"
    mi_calculator: Literal["kl", "w"] = "kl"
    kl_reduction: Literal["mean", "batchmean"] = "batchmean"
    sinkhorn_stable: bool = True
    temperature: float = 1.5
    balance: Literal["auto", "hyper", "none"] = "auto"
    scales: tuple[float, float, float] = (1.0, 2.0, 10.0)
    scales_by_position: bool = False
    mixup: bool = True
    alpha: float = 0.5
    # optimisation
    epochs: int = 10
    batch_size: int = 256
    eval_batch_size: int | None = None
    lr: float = 1e-3
    weight_decay: float = 1e-2
    optimizer: Literal["adam", "adamw"] = "adamw"
    schedule: Literal["cosine", "official"] = "cosine"
    warmup_epochs: float = 1.0
    grad_accum: int = 1
    drop_last: bool = True
    # runtime
    device: str = "cpu"
    amp: Literal["auto", "bf16", "fp16", "off"] = "auto"
    channels_last: bool = False
    seed: int = 0
    workers: int | None = None
    threads: int | None = None
    save_every: int = 10
    tensorboard: bool = True
    # end of training
    threshold_rule: str = "eer"

    def __post_init__(self) -> None:
        object.__setattr__(self, "dataset_root", Path(self.dataset_root))
        if self.output is not None:
            object.__setattr__(self, "output", Path(self.output))
        object.__setattr__(self, "datasets", tuple(d.strip() for d in self.datasets if d.strip()))
        object.__setattr__(self, "scales", tuple(float(s) for s in self.scales))
        object.__setattr__(self, "channel_order", str(self.channel_order).upper())
        checks = [
            (self.recipe in RECIPE_DEFAULTS, f"recipe must be default or official, got {self.recipe!r}"),
            (bool(self.datasets), "give at least one dataset name (--dataset NAME[,NAME...])"),
            (self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}"),
            (self.batch_size >= 2, f"batch size must be >= 2 (BatchNorm1d needs 2 samples), got {self.batch_size}"),
            (self.eval_batch_size is None or self.eval_batch_size >= 1, "eval batch size must be >= 1"),
            (self.lr > 0, f"learning rate must be > 0, got {self.lr}"),
            (self.weight_decay >= 0, f"weight decay must be >= 0, got {self.weight_decay}"),
            (self.grad_accum >= 1, f"grad accumulation must be >= 1, got {self.grad_accum}"),
            (self.temperature > 0, f"temperature must be > 0, got {self.temperature}"),
            (self.alpha > 0, f"mixup alpha must be > 0, got {self.alpha}"),
            (len(self.scales) == 3, f"--scales takes three numbers (CE,GIL,LIL), got {len(self.scales)}"),
            (self.warmup_epochs >= 0, "warm-up epochs must be >= 0"),
            (self.frames_per_video is None or self.frames_per_video >= 1, "frames per video must be >= 1 or all"),
            (self.eval_frames_per_video is None or self.eval_frames_per_video >= 1, "eval frames must be >= 1"),
            (self.select_split in ("val", "test"), f"select split must be val or test, got {self.select_split!r}"),
            (self.amp in ("auto", "bf16", "fp16", "off"), f"amp must be auto, bf16, fp16 or off, got {self.amp!r}"),
            (self.channel_order in ("RGB", "BGR"), f"channel order must be RGB or BGR, got {self.channel_order!r}"),
            (self.save_every >= 0, "save-every must be >= 0"),
            (self.workers is None or self.workers >= 0, "workers must be >= 0"),
            (self.threads is None or self.threads >= 1, "threads must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise LibDeepfakeError(message)
        parse_oversample(self.real_oversample)
        from lib_deepfake.model.threshold import ThresholdRule  # here: importing lib_deepfake.model loads torch

        object.__setattr__(self, "threshold_rule", str(ThresholdRule.parse(str(self.threshold_rule))))

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["dataset_root"] = str(self.dataset_root)
        out["output"] = None if self.output is None else str(self.output)
        out["datasets"] = list(self.datasets)
        out["scales"] = list(self.scales)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["datasets"] = tuple(kwargs.get("datasets", ()))
        if "scales" in kwargs:
            kwargs["scales"] = tuple(kwargs["scales"])
        return cls(**kwargs)


def parse_oversample(value: str) -> str | int:
    """``"official"``, ``"none"`` or a positive integer (as text) -> the policy."""
    text = str(value).strip().lower()
    if text in ("official", "none"):
        return text
    try:
        ratio = int(text)
    except ValueError:
        raise LibDeepfakeError(
            f"real oversampling must be official, none or a positive integer, got {value!r}"
        ) from None
    if ratio < 1:
        raise LibDeepfakeError(f"real oversampling ratio must be >= 1, got {ratio}")
    return ratio


def make_train_config(recipe: Recipe = "default", **kwargs: Any) -> TrainConfig:
    """Build a :class:`TrainConfig`: keyword values that are ``None`` take the recipe's default.

    ``eval_frames_per_video``/``frames_per_video`` accept ``0`` or ``"all"`` for every frame.
    """
    if recipe not in RECIPE_DEFAULTS:
        raise LibDeepfakeError(f"recipe must be default or official, got {recipe!r}")
    merged: dict[str, Any] = dict(RECIPE_DEFAULTS[recipe])
    for key in ("frames_per_video", "eval_frames_per_video"):
        if kwargs.get(key) in (0, "all", "0"):
            kwargs[key] = "all"
    for key, value in kwargs.items():
        if value is not None:
            merged[key] = value
    for key in ("frames_per_video", "eval_frames_per_video"):
        if merged.get(key) == "all":
            merged[key] = None
        elif merged.get(key) is not None:
            merged[key] = int(merged[key])
    return TrainConfig(recipe=recipe, **merged)
