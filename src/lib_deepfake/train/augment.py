"""The official training augmentations (method.md §4.5) written for albumentations 2.x, every parameter explicit.

albumentations 2.x only warns about (and ignores) argument names of 1.x and changed several defaults, so nothing
here relies on a default: ``strict=True`` makes an unknown argument an error. The strengths are those the official
code got from albumentations 1.3.1.
"""

from __future__ import annotations

from typing import Any

from lib_deepfake._optional import require

# σ of GaussNoise as a fraction of 255: 1.3.1 drew the variance from U(10, 50) grey levels², i.e. σ in [√10, √50].
_NOISE_STD_RANGE = (10**0.5 / 255.0, 50**0.5 / 255.0)


def build_official_augment(size: int, seed: int | None = None) -> Any:
    """The train-only ``Compose`` of the official loader, for uint8 HWC images of side ``size``.

    The official pipeline ran on BGR arrays; :class:`~lib_deepfake.train.data.FrameDataset` applies it in the
    channel order of the weights so an official-compatible (BGR) model sees exactly what it saw there.
    """
    A = require("albumentations", purpose="training augmentations")
    cv2 = require("cv2", purpose="training augmentations", extra="train")
    return A.Compose(
        [
            A.ImageCompression(compression_type="jpeg", quality_range=(60, 100), p=0.5),
            A.GaussNoise(
                std_range=_NOISE_STD_RANGE, mean_range=(0.0, 0.0), per_channel=True, noise_scale_factor=1, p=0.1
            ),
            A.GaussianBlur(blur_limit=(3, 3), sigma_limit=(0.8, 0.8), p=0.05),
            A.HorizontalFlip(p=0.5),
            A.PadIfNeeded(
                min_height=size, min_width=size, position="center", border_mode=cv2.BORDER_CONSTANT, fill=0, p=1.0
            ),
            A.OneOf(
                [
                    A.RandomBrightnessContrast(
                        brightness_limit=(-0.2, 0.2),
                        contrast_limit=(-0.2, 0.2),
                        brightness_by_max=True,
                        ensure_safe_range=False,
                        p=0.5,
                    ),
                    A.FancyPCA(alpha=0.1, p=0.5),
                    A.HueSaturationValue(
                        hue_shift_limit=(-20, 20), sat_shift_limit=(-30, 30), val_shift_limit=(-20, 20), p=0.5
                    ),
                ],
                p=0.7,
            ),
            A.ToGray(num_output_channels=3, method="weighted_average", p=0.2),
            # ShiftScaleRotate(0.1, 0.2, 10) of 1.3.1, through its non-deprecated 2.x equivalent.
            A.Affine(
                translate_percent=(-0.1, 0.1),
                scale=(0.8, 1.2),
                rotate=(-10, 10),
                shear=(0.0, 0.0),
                interpolation=cv2.INTER_LINEAR,
                border_mode=cv2.BORDER_CONSTANT,
                fill=0,
                keep_ratio=False,
                fit_output=False,
                p=0.5,
            ),
        ],
        strict=True,
        seed=seed,
    )
