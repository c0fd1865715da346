"""Initial values of the learned tensors follow the papers: their scale and layout, measured on large draws."""

from __future__ import annotations

import pytest
import torch

from archdsl.nn.class_attention import ClassAttentionHead
from archdsl.nn.pos_embed import PositionEmbedding
from archdsl.nn.relpos import RelativePosition2d


def _std_close(t: torch.Tensor, want: float) -> bool:
    # a truncated normal at +-2 (absolute) keeps nearly all of a narrow normal; the sample std of n draws is
    # within 5% of sigma for n >= 4000 with overwhelming probability
    return abs(t.std().item() - want) <= 0.05 * want and t.abs().max().item() <= 2.0


def test_position_embedding_is_added_and_starts_small() -> None:
    torch.manual_seed(0)
    m = PositionEmbedding(64, 16, 16)
    assert m.pos.shape == (1, 64, 16, 16)
    assert _std_close(m.pos.detach(), 0.02)  # ViT / timm: trunc_normal(std=.02)
    x = torch.randn(3, 64, 16, 16)
    assert torch.equal(m(x), x + m.pos)


def test_class_token_starts_small() -> None:
    torch.manual_seed(0)
    head = ClassAttentionHead(4096, 3, 4, 8, depth=0, aux_head=False)
    assert _std_close(head.cls_token.detach(), 0.02)


@pytest.mark.parametrize("head_dim", [16, 64])
def test_relative_position_tables_start_at_the_logit_scale(head_dim: int) -> None:
    torch.manual_seed(0)
    rows = range(128)
    m = RelativePosition2d(head_dim, (128, 128), rows, rows, rows, rows)
    assert m.table_h.shape == m.table_w.shape == (255, head_dim)
    for table in (m.table_h, m.table_w):
        assert _std_close(table.detach(), head_dim**-0.5)  # HaloNet / BoTNet: std = d^-1/2
