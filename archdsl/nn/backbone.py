"""The compiled model: stem -> stages -> head, plain ``nn.Module`` parts, with feature taps.

``feature_info`` describes every stage's output as timm models do (``num_chs``, ``reduction``: the stride
from the input, ``module``: the attribute path), and ``forward_features`` returns those maps, so a detection
or segmentation model can take the backbone without its head. A map that up-sampling stages made k times
wider than the input has the reduction 1/k, a float (0.5).

``channels_last=True`` keeps weights and activations in NHWC memory layout (the input is converted once on
entry): oneDNN and cuDNN convolutions run without layout reorders, a measured gain for conv-dominated models
(``ModelPlan.channels_last`` decides; see docs/performance.md). Values are unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Backbone"]


class Backbone(nn.Module):
    """``head(stages(stem(x)))``; ``forward_features(x)`` is the list of stage outputs."""

    def __init__(
        self,
        stem: nn.Module,
        stages: list[nn.Module],
        head: nn.Module,
        feature_channels: list[int] | None = None,
        feature_reductions: list[float] | None = None,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.stem = stem
        self.stages = nn.Sequential(*stages)
        self.head = head
        self.feature_info: list[dict[str, int | float | str]] = [
            {"num_chs": c, "reduction": r, "module": f"stages.{i}"}
            for i, (c, r) in enumerate(zip(feature_channels or [], feature_reductions or [], strict=True))
        ]
        self.channels_last = False
        self.use_layout(channels_last)

    def use_layout(self, channels_last: bool) -> None:
        """Keep weights and activations in NHWC (``True``) or NCHW memory; values are unchanged (the layout the
        model is built in suits the CPU; a device may want the other)."""
        if channels_last != self.channels_last:
            fmt = torch.channels_last if channels_last else torch.contiguous_format
            self.to(memory_format=fmt)  # type: ignore[call-overload]  # torch's stub lacks it
        self.channels_last = channels_last

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last and x.dim() == 4 else x

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output map of every stage, in order (see ``feature_info``)."""
        x = self.stem(self._layout(x))
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.stages(self.stem(self._layout(x))))
