"""Mixup and CutMix of a training batch with soft targets, on the batch's device.

As timm's ``Mixup`` in its default batch mode: one mixing weight ``lam ~ Beta(alpha, alpha)`` per batch, each
image mixed with its partner in the reversed batch, and the targets mixed with the same weight, label
smoothing folded in (a class's target is ``1 - smoothing + smoothing / classes``, every other class's
``smoothing / classes``). CutMix pastes one box of area ``1 - lam`` (whole pixels) from the partner image, and
the targets take the area actually pasted.

Each image keeps the larger share of itself: mixup keeps ``max(lam, 1 - lam)``; CutMix, when the box covers more
than half the image, keeps the box and takes the rest from the partner. With the reversed pairing (image ``i``
and image ``B-1-i`` mix with each other under the same weight and box) that is the same batch of mixed images as
the papers', in another order, and a vanishing ``alpha`` leaves every image as it was. Unlike the CutMix
reference code the box lies wholly inside the image (its corner drawn uniformly where it fits) rather than
centred anywhere and clipped at the borders, so its area is the drawn one.

kornia has mixup and CutMix too, but its mixup draws the weight uniformly from a range rather than from
Beta(alpha, alpha) as the mixup and CutMix papers and timm do, so the draw is here: a few lines, on the host
(no device synchronisation), from torch's default generator (``train.seed`` makes it reproducible).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from archdsl.spec.augment import AugmentSpec

__all__ = ["Mix", "MixDraw", "mix_of", "soft_targets"]


@dataclass(frozen=True)
class MixDraw:
    """What one batch got: ``kind`` ``none``, ``mixup`` or ``cutmix``; the share ``lam`` of each image that is its
    own; for CutMix the box ``(top, bottom, left, right)`` and whether the image keeps the box (``keeps_box``,
    the box being the larger part) or the rest of it."""

    kind: str
    lam: float
    box: tuple[int, int, int, int] | None = None
    keeps_box: bool = False


def soft_targets(y: torch.Tensor, classes: int, smoothing: float) -> torch.Tensor:
    """Class indices -> one-hot rows with label smoothing, float32 on ``y``'s device."""
    off = smoothing / classes
    targets = torch.full((len(y), classes), off, dtype=torch.float32, device=y.device)
    return targets.scatter_(1, y.view(-1, 1), 1.0 - smoothing + off)


def _beta(alpha: float) -> float:
    """A draw of Beta(alpha, alpha) as ``X / (X + Y)`` of two Gamma(alpha) draws taken in log space
    (``Gamma(a) = Gamma(a + 1) * U^(1/a)``): exact for small ``alpha`` too, where torch's ``Beta`` sampler
    underflows and returns 0.5."""
    gammas = torch.distributions.Gamma(torch.tensor(alpha + 1.0), torch.tensor(1.0)).sample((2,))
    logs = gammas.log() + torch.rand(2).log() / alpha
    return float(torch.sigmoid(logs[0] - logs[1]))


def _randint(high: int) -> int:
    return int(torch.randint(high, ()))


class Mix:
    """``(images, labels) -> (mixed images, soft targets)`` for a training batch (``train.augment``)."""

    def __init__(self, augment: AugmentSpec, classes: int, smoothing: float) -> None:
        self.mixup = augment.mixup.alpha if augment.mixup is not None else None
        self.cutmix = augment.cutmix.alpha if augment.cutmix is not None else None
        self.switch_prob = augment.switch_prob
        self.mix_prob = augment.mix_prob
        self.classes = classes
        self.smoothing = smoothing

    def draw(self, height: int, width: int) -> MixDraw:
        """The host-side draw for one batch of ``height`` x ``width`` images."""
        if float(torch.rand(())) >= self.mix_prob:
            return MixDraw("none", 1.0)
        if self.cutmix is not None and (self.mixup is None or float(torch.rand(())) < self.switch_prob):
            return self._cutmix(_beta(self.cutmix), height, width)
        if self.mixup is not None:
            lam = _beta(self.mixup)
            return MixDraw("mixup", max(lam, 1.0 - lam))
        return MixDraw("none", 1.0)

    @staticmethod
    def _cutmix(lam: float, height: int, width: int) -> MixDraw:
        """A box of area ``1 - lam`` (rounded to whole pixels) wholly inside the image, its corner drawn uniformly."""
        side = math.sqrt(1.0 - lam)
        cut_h, cut_w = round(height * side), round(width * side)
        top, left = _randint(height - cut_h + 1), _randint(width - cut_w + 1)
        box = (top, top + cut_h, left, left + cut_w)
        pasted = cut_h * cut_w / (height * width)
        if pasted > 0.5:
            return MixDraw("cutmix", pasted, box, keeps_box=True)
        return MixDraw("cutmix", 1.0 - pasted, box)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        draw = self.draw(x.shape[-2], x.shape[-1])
        targets = soft_targets(y, self.classes, self.smoothing)
        if draw.kind == "none":
            return x, targets
        partner = x.flip(0)
        if draw.box is not None:
            top, bottom, left, right = draw.box
            inside, outside = (x, partner) if draw.keeps_box else (partner, x)
            mixed = outside.clone()
            mixed[..., top:bottom, left:right] = inside[..., top:bottom, left:right]
            x = mixed
        else:
            x = torch.lerp(partner, x, draw.lam)
        return x, torch.lerp(targets.flip(0), targets, draw.lam)


def mix_of(augment: AugmentSpec, classes: int, smoothing: float) -> Mix | None:
    """The batch mixing ``augment`` asks for, or None."""
    return Mix(augment, classes, smoothing) if augment.mixes else None
