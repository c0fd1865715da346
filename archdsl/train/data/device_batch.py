"""Model inputs made on the device from the uint8 batches the loader hands over.

Loader workers ship uint8 images (a quarter of float32's bytes through shared memory, the pinned buffer and
the host-to-device copy); here, on the device and for a whole batch at once, they become float, grey when
the model takes one channel, augmented (training only), resized to the model's input (CIFAR-10 is kept at
32 px) and standardised: ``(pixel / 255 - mean) / std`` as one fused multiply-add. With ``train.augment``'s
image operations (:class:`~archdsl.train.recipe.images.ImageRecipe`), RandAugment or TrivialAugment runs on the
resized pixels in [0, 1] and random erasing on the standardised batch, training only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from archdsl.train.recipe.images import ImageRecipe

__all__ = ["DeviceBatch"]

Augment = Callable[[torch.Tensor], torch.Tensor]


class DeviceBatch:
    """uint8 ``(B, C, h, w)`` on the device -> standardised float ``(B, channels, size, size)``.

    ``mean``/``std`` are per output channel, of ``pixel / 255``; ``grey`` averages RGB into one channel;
    ``augment`` runs in training on float pixels (0-255) before the resize, ``recipe`` after it (see the module).
    Picklable (DDP-spawned ranks receive the data module pickled); the per-device constants are made once per
    device, not per batch.
    """

    def __init__(
        self,
        mean: tuple[float, ...] | list[float],
        std: tuple[float, ...] | list[float],
        size: int,
        *,
        grey: bool = False,
        augment: Augment | None = None,
        recipe: ImageRecipe | None = None,
    ) -> None:
        if len(mean) != len(std):
            raise ValueError(f"mean and std need one value per channel, got {len(mean)} and {len(std)}")
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.size = size
        self.grey = grey
        self.augment = augment
        self.recipe = recipe
        self._constants: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_constants": {}}

    def _scale_shift(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``(1 / (255 std), -mean / std)`` as (1, C, 1, 1) float32 tensors on ``device``."""
        if device not in self._constants:
            mean = torch.tensor(self.mean, dtype=torch.float64)
            std = torch.tensor(self.std, dtype=torch.float64)
            scale, shift = (1.0 / (255.0 * std)).float(), (-mean / std).float()
            self._constants[device] = (scale.view(1, -1, 1, 1).to(device), shift.view(1, -1, 1, 1).to(device))
        return self._constants[device]

    def __call__(self, x: torch.Tensor, training: bool) -> torch.Tensor:
        x = x.float()
        if self.grey and x.shape[1] != 1:
            x = x.mean(1, keepdim=True)
        if training and self.augment is not None:
            x = self.augment(x)
        h, w = x.shape[-2:]
        if (h, w) != (self.size, self.size):
            shrink = h > self.size or w > self.size
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=shrink)
        scale, shift = self._scale_shift(x.device)
        if not training or self.recipe is None:
            return torch.addcmul(shift, x, scale)
        x = self.recipe.pixels(x * (1.0 / 255.0)) * 255.0
        return self.recipe.standardised(torch.addcmul(shift, x, scale))
