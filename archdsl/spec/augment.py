"""The training recipe of the papers beside the optimiser: ``train.augment`` and ``train.ema``.

```yaml
train:
  label_smoothing: 0.1
  augment:
    randaugment: {num_ops: 2, magnitude: 9, magnitude_std: 0.5}   # or trivialaugment: true
    random_erasing: {p: 0.25}
    mixup: {alpha: 0.8}
    cutmix: {alpha: 1.0}
    switch_prob: 0.5          # CutMix instead of mixup, when both are on
    mix_prob: 1.0             # batches mixed at all
  ema: {decay: 0.9998, warmup: true}
```
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from archdsl.spec.base import SpecModel

__all__ = ["AugmentSpec", "EmaSpec", "MixSpec", "RandAugmentSpec", "RandomErasingSpec"]

Probability = Annotated[float, Field(ge=0.0, le=1.0)]
RandOp = Literal[
    "auto_contrast",
    "equalize",
    "invert",
    "rotate",
    "posterize",
    "solarize",
    "solarize_add",
    "color",
    "contrast",
    "brightness",
    "sharpness",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
]
"""RandAugment's operations (timm's ``rand`` set)."""


class RandAugmentSpec(SpecModel):
    """RandAugment (Cubuk et al. 2020): ``num_ops`` operations drawn from 15 at one magnitude, on the device."""

    num_ops: int = Field(2, ge=1, le=15)
    """Operations applied one after another (drawn without replacement)."""
    magnitude: float = Field(9.0, ge=0.0, le=10.0)
    """Strength on the papers' (and timm's) 0-10 scale: 10 is the largest rotation (30 degrees), shear, shift."""
    magnitude_std: float = Field(0.5, ge=0.0, le=10.0)
    """Standard deviation of the magnitude, drawn per group of images and clipped to [0, 10] (timm's ``mstd``)."""
    ops: list[RandOp] | None = Field(None, min_length=1)
    """The operations drawn from; ``null``: all 15. Light strokes on a dark ground (digits) want the list without
    ``invert``, ``solarize`` and ``solarize_add``: solarizing at magnitude 5 blanks a white stroke."""

    @model_validator(mode="after")
    def _enough_ops(self) -> RandAugmentSpec:
        if self.ops is not None:
            if len(set(self.ops)) != len(self.ops):
                raise ValueError(f"ops must be distinct, got {self.ops}")
            if self.num_ops > len(self.ops):
                raise ValueError(f"num_ops must not exceed the {len(self.ops)} ops listed, got {self.num_ops}")
        return self


class RandomErasingSpec(SpecModel):
    """Random erasing (Zhong et al. 2020): a box of each chosen image set to the mean (0 after standardising)."""

    p: Probability = 0.25
    """Probability that an image gets a box."""
    scale: tuple[Probability, Probability] = Field((0.02, 0.33), strict=False)
    """The box's area as a fraction of the image, ``[low, high]``."""
    ratio: tuple[Annotated[float, Field(gt=0.0)], Annotated[float, Field(gt=0.0)]] = Field((0.3, 3.3), strict=False)
    """The box's aspect ratio (height / width), ``[low, high]``."""

    @model_validator(mode="after")
    def _ordered(self) -> RandomErasingSpec:
        for name in ("scale", "ratio"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"{name} must be [low, high] with low <= high, got {[low, high]}")
        return self


class MixSpec(SpecModel):
    """A mixing of image pairs whose weight is drawn from Beta(alpha, alpha), one draw per batch."""

    alpha: float = Field(gt=0.0, le=100.0)
    """The Beta distribution's parameter: small keeps images nearly whole, 1 draws the weight uniformly."""


class AugmentSpec(SpecModel):
    """Batch augmentation on the device, in training only (validation and test batches are never augmented).

    After the loader's crop and flip: RandAugment or TrivialAugment on the pixels, random erasing on the
    standardised images, then mixup or CutMix of the batch with soft targets (``train.label_smoothing`` folded
    into them)."""

    randaugment: RandAugmentSpec | None = None
    """RandAugment; ``null``: off."""
    trivialaugment: bool = False
    """TrivialAugment (Müller and Hutter 2021): one operation at a uniformly drawn magnitude; excludes
    ``randaugment``."""
    random_erasing: RandomErasingSpec | None = None
    """Random erasing; ``null``: off."""
    mixup: MixSpec | None = None
    """Mixup (Zhang et al. 2018): the batch blended with itself reversed; ``null``: off."""
    cutmix: MixSpec | None = None
    """CutMix (Yun et al. 2019): a box of the reversed batch pasted in; ``null``: off."""
    switch_prob: Probability = 0.5
    """With both mixup and CutMix on: the probability that a batch is CutMix-ed rather than mixed up."""
    mix_prob: Probability = 1.0
    """The probability that a batch is mixed at all (mixup or CutMix)."""

    @model_validator(mode="after")
    def _one_policy(self) -> AugmentSpec:
        if self.trivialaugment and self.randaugment is not None:
            raise ValueError("randaugment and trivialaugment exclude each other; keep one")
        return self

    @property
    def image_op_keys(self) -> list[str]:
        """The keys of the operations that work on the images themselves (they need the dataset's device step)."""
        return [k for k in ("randaugment", "trivialaugment", "random_erasing") if getattr(self, k) not in (None, False)]

    @property
    def image_ops(self) -> bool:
        """Whether any operation works on the images themselves."""
        return bool(self.image_op_keys)

    @property
    def mixes(self) -> bool:
        """Whether batches are mixed (the loss then takes soft targets)."""
        return (self.mixup is not None or self.cutmix is not None) and self.mix_prob > 0


class EmaSpec(SpecModel):
    """An exponential moving average of the weights, used by validation, ``best.ckpt``, ``export`` and ``predict``.

    Updated after every optimiser step; batch-norm running statistics are averaged with the weights."""

    decay: float = Field(0.9998, gt=0.0, lt=1.0)
    """The average keeps this share of itself per step (0.9998 remembers about 5,000 steps)."""
    warmup: bool = True
    """Step ``s`` decays by ``min(decay, 1 - s^(-2/3))`` (timm's EMA warm-up), so the first epochs are not
    dominated by the random initial weights; off, every step uses ``decay``."""
