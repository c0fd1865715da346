"""Published figures the project's outputs are read beside (data only, no code)."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["HALONET_COMPONENTS", "HALONET_TRADEOFF", "ComponentsRow", "TradeoffRow"]


class TradeoffRow(NamedTuple):
    """One row of HaloNet's conv/attention trade-off table."""

    attention_stages: str
    """Stages with attention mixers, numbered 1-4 as in the paper."""
    top1: float
    """ImageNet top-1 accuracy, %."""
    train_time: float
    """Training time, normalised by the paper."""


HALONET_TRADEOFF: dict[int, TradeoffRow] = {
    0: TradeoffRow("1, 2, 3, 4", 84.9, 1.9),
    1: TradeoffRow("2, 3, 4", 84.6, 1.4),
    2: TradeoffRow("3, 4", 84.7, 1.0),
    3: TradeoffRow("4", 83.8, 0.5),
}
"""Leading conv stages -> the paper's row. Vaswani et al., "Scaling Local Self-Attention for Parameter Efficient
Visual Backbones" (arXiv:2103.12731), the table of which stages are conv and which attention."""


class ComponentsRow(NamedTuple):
    """One row of HaloNet's table of training components, on a HaloNet and on a ResNet."""

    components: tuple[str, ...]
    """What the row adds to the baseline, named as in the paper: ``LS`` (label smoothing), ``RA``
    (RandAugment), ``SE`` (squeeze-and-excitation), ``SiLU``."""
    halonet_top1: float
    """ImageNet top-1 accuracy of the HaloNet, %."""
    resnet_top1: float
    """ImageNet top-1 accuracy of the ResNet, %."""


HALONET_COMPONENTS: dict[str, ComponentsRow] = {
    "baseline": ComponentsRow((), 78.6, 77.6),
    "ls": ComponentsRow(("LS",), 79.7, 78.1),
    "ls_ra": ComponentsRow(("LS", "RA"), 79.9, 78.4),
    "se": ComponentsRow(("SE",), 78.6, 78.6),
    "se_silu": ComponentsRow(("SE", "SiLU"), 79.0, 78.9),
    "ls_se": ComponentsRow(("LS", "SE"), 79.7, 78.9),
    "ls_se_silu": ComponentsRow(("LS", "SE", "SiLU"), 79.9, 79.1),
    "ls_se_silu_ra": ComponentsRow(("LS", "SE", "SiLU", "RA"), 80.5, 79.5),
}
"""The ``components`` row name -> the paper's row, in the paper's order. Vaswani et al. (arXiv:2103.12731), the
table of which training components help a HaloNet and a ResNet: label smoothing helps the attention model
twice as much (+1.1 against +0.5)."""
