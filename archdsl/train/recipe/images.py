"""RandAugment, TrivialAugment and random erasing of whole batches on their device, by kornia.

kornia's augmentation module works on batched float tensors on any device and imports beside the CPU torch
wheel (torchvision's v2 transforms do not: torchvision only imports beside the CUDA build of torch here), so
the fifteen RandAugment operations are kornia's, not archdsl's. What archdsl adds:

- the magnitude on the papers' (and timm's) 0-10 scale: kornia's ``m`` is ``3 * magnitude`` over the same
  operation ranges (rotation up to 30 degrees, shear 0.3, colour factors 0.1-1.9), with timm's relative
  translation of up to 45 % of the side instead of kornia's 10 %;
- timm's magnitude noise (``magnitude_std``), drawn per group of images and clipped to [0, 10];
- more than one draw of operations per batch: kornia draws the operations once per call, so a batch is
  augmented in groups of :data:`OPS_GROUP` images, each with its own operations (a whole batch rotated the
  same way would shift its batch-norm statistics).

Random operations use torch's default generator (seeded by ``train.seed`` through Lightning), so a run is
reproducible; the pixels never leave the batch's device.
"""

from __future__ import annotations

import torch
from kornia.augmentation import RandomErasing
from kornia.augmentation.auto import RandAugment, TrivialAugment
from torch import nn

from archdsl.spec.augment import AugmentSpec

__all__ = ["OPS_GROUP", "RAND_POLICY", "ImageRecipe", "image_recipe"]

OPS_GROUP = 16
"""Images that share one draw of operations (each image still draws its own signs and TrivialAugment
magnitudes)."""

MAGNITUDE_SCALE = 3.0
"""kornia's magnitude ``m`` (0-30) per step of the papers' 0-10 scale."""

RAND_POLICY: list[list[tuple[str, float, float]]] = [
    [("auto_contrast", 0.0, 1.0)],
    [("equalize", 0.0, 1.0)],
    [("invert", 0.0, 1.0)],
    [("rotate", -30.0, 30.0)],
    [("posterize", 4.0, 8.0)],
    [("solarize", 0.0, 1.0)],
    [("solarize_add", 0.0, 0.43)],
    [("color", 0.1, 1.9)],
    [("contrast", 0.1, 1.9)],
    [("brightness", 0.1, 1.9)],
    [("sharpness", 0.1, 1.9)],
    [("shear_x", -0.3, 0.3)],
    [("shear_y", -0.3, 0.3)],
    [("translate_x", -0.45, 0.45)],
    [("translate_y", -0.45, 0.45)],
]
"""timm's ``rand`` operations and their ranges at magnitude 10, as kornia sub-policies."""


class ImageRecipe(nn.Module):
    """The image operations of ``train.augment``: :meth:`pixels` on float pixels in [0, 1], :meth:`standardised`
    (random erasing) on the standardised model input. Both keep the batch's shape, dtype and device."""

    def __init__(
        self,
        policy: RandAugment | TrivialAugment | None,
        erasing: RandomErasing | None,
        magnitude: float = 0.0,
        magnitude_std: float = 0.0,
    ) -> None:
        super().__init__()
        self.policy = policy
        self.erasing = erasing
        self.magnitude = magnitude
        self.magnitude_std = magnitude_std

    def _draw_magnitude(self) -> float:
        if self.magnitude_std <= 0:
            return self.magnitude
        drawn = self.magnitude + self.magnitude_std * float(torch.randn(()))
        return min(10.0, max(0.0, drawn))

    def pixels(self, x: torch.Tensor) -> torch.Tensor:
        """RandAugment or TrivialAugment of ``x`` (float, [0, 1]), a group of :data:`OPS_GROUP` images at a time."""
        policy = self.policy
        if policy is None:
            return x
        groups = []
        for group in x.split(OPS_GROUP):
            if isinstance(policy, RandAugment):
                policy.m = MAGNITUDE_SCALE * self._draw_magnitude()  # type: ignore[assignment]
            groups.append(policy(group))
        return torch.cat(groups) if len(groups) > 1 else groups[0]

    def standardised(self, x: torch.Tensor) -> torch.Tensor:
        """Random erasing of ``x`` (standardised): each chosen image gets one box of zeros (the dataset's mean)."""
        return x if self.erasing is None else self.erasing(x)


def image_recipe(augment: AugmentSpec | None) -> ImageRecipe | None:
    """The image operations ``augment`` asks for, or None when it asks for none."""
    if augment is None or not augment.image_ops:
        return None
    policy: RandAugment | TrivialAugment | None = None
    ra = augment.randaugment
    if ra is not None:
        chosen = [sub for sub in RAND_POLICY if ra.ops is None or sub[0][0] in ra.ops]
        policy = RandAugment(n=ra.num_ops, m=15, policy=chosen)  # type: ignore[arg-type]
    elif augment.trivialaugment:
        policy = TrivialAugment()
    re = augment.random_erasing
    erasing = None
    if re is not None:
        erasing = RandomErasing(scale=re.scale, ratio=re.ratio, value=0.0, p=re.p)
    return ImageRecipe(
        policy,
        erasing,
        magnitude=ra.magnitude if ra is not None else 0.0,
        magnitude_std=ra.magnitude_std if ra is not None else 0.0,
    )
