"""Weight decay by parameter role: norms, biases, embeddings and relative-position tables are not decayed, whatever
the parameters are called; everything else (conv and linear weights) is."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
import torch
from torch import nn

import archdsl
from archdsl.nn.class_attention import ClassAttentionHead
from archdsl.nn.danet import DualAttention
from archdsl.nn.non_local import NonLocal
from archdsl.nn.pos_embed import PositionEmbedding
from archdsl.nn.relpos import RelativePosition2d
from archdsl.train.module import param_groups

ROOT = Path(__file__).resolve().parent.parent
NORMS = (nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)
EMBEDDINGS = {PositionEmbedding: {"pos"}, ClassAttentionHead: {"cls_token"}, RelativePosition2d: {"table_h", "table_w"}}


def _split(model: nn.Module) -> tuple[set[str], set[str]]:
    """The names of the decayed and of the not decayed parameters."""
    decay, no_decay = param_groups(model, 0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)] for p in decay["params"]}, {names[id(p)] for p in no_decay["params"]}


def _by_role(model: nn.Module) -> dict[str, set[str]]:
    """Every parameter of ``model`` by the role of the module that owns it, told by module type and name."""
    roles: dict[str, set[str]] = {"norm": set(), "bias": set(), "embedding": set(), "weight": set()}
    for path, module in model.named_modules():
        for name, _ in module.named_parameters(recurse=False):
            full = f"{path}.{name}" if path else name
            if isinstance(module, NORMS):
                roles["norm"].add(full)
            elif name == "bias":
                roles["bias"].add(full)
            elif name in EMBEDDINGS.get(type(module), set()):
                roles["embedding"].add(full)
            else:
                assert isinstance(module, nn.Conv2d | nn.Conv1d | nn.Linear) and name == "weight", full
                roles["weight"].add(full)
    return roles


@pytest.mark.parametrize(
    ("spec", "embedding"),
    [
        ("resnet50", None),
        ("botnet50", RelativePosition2d),
        ("halonet_h0", RelativePosition2d),
        ("volo_d1", ClassAttentionHead),
    ],
)
def test_exactly_the_norms_biases_embeddings_and_tables_are_not_decayed(spec: str, embedding: type | None) -> None:
    model = archdsl.build_model(archdsl.load_spec(ROOT / "specs" / f"{spec}.yaml"), device="meta")
    roles = _by_role(model)
    decayed, skipped = _split(model)
    assert skipped == roles["norm"] | roles["bias"] | roles["embedding"]
    assert decayed == roles["weight"]
    assert roles["norm"] and roles["bias"] and roles["weight"]
    if embedding is not None:  # the role is there to be told apart: the tables, VOLO's class token
        assert any(isinstance(m, embedding) for m in model.modules()) and roles["embedding"]


def test_a_name_with_pos_in_it_is_decayed_and_a_declared_one_is_not() -> None:
    class Toy(nn.Module):
        NO_WEIGHT_DECAY: ClassVar[tuple[str, ...]] = ("offsets",)

        def __init__(self) -> None:
            super().__init__()
            self.compose = nn.Conv2d(4, 4, 3)
            self.proj_pos = nn.Linear(4, 4)
            self.pos_scale = nn.Parameter(torch.ones(4, 4))  # "pos" in its own name, a plain weight
            self.offsets = nn.Parameter(torch.zeros(3, 4))  # declared: no decay, whatever it is called
            self.norm = nn.GroupNorm(2, 4)

    model = Toy()
    decayed, skipped = _split(model)
    assert decayed == {"compose.weight", "proj_pos.weight", "pos_scale"}
    assert skipped == {"compose.bias", "proj_pos.bias", "offsets", "norm.weight", "norm.bias"}


def test_gates_and_the_concatenation_vector_are_not_decayed() -> None:
    """DANet's zero-initialised gates and the non-local concatenation's weight vector: declared by their modules."""
    dual = DualAttention(8, 2, "both", "max_minus_energy")
    decayed, skipped = _split(dual)
    assert {"position.gamma", "channel.gamma"} <= skipped and "position.query.weight" in decayed
    concat = NonLocal(8, 4, "concatenation", subsample=False, zero_init=True)
    assert "w_f" in _split(concat)[1]
    assert "w_f" not in dict(NonLocal(8, 4, "dot_product", subsample=False, zero_init=True).named_parameters())


def test_frozen_parameters_are_in_neither_group() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    model[0].weight.requires_grad_(False)
    decayed, skipped = _split(model)
    assert decayed == set() and skipped == {"0.bias", "1.weight", "1.bias"}
