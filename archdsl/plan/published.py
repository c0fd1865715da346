"""Published figures the project's outputs are read beside (data only, no code)."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["HALONET_TRADEOFF", "TradeoffRow"]


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
