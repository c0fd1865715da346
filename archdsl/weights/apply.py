"""``train.init``: read the checkpoint, match every tensor, then copy (all or nothing)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from archdsl.compiler.build import build_from_plan
from archdsl.errors import ArchDSLError, Location
from archdsl.plan.shapes import ModelPlan
from archdsl.spec.train import InitSpec
from archdsl.weights.match import InitMatch, match_init
from archdsl.weights.read import read_checkpoint

__all__ = ["LoadedInit", "init_weights", "load_init"]


@dataclass(frozen=True)
class LoadedInit:
    """A checkpoint read and matched to a plan: ready to copy into a model built from that plan."""

    match: InitMatch
    tensors: dict[str, torch.Tensor]
    """The file's tensors by the file's keys."""

    def copy_into(self, model: nn.Module) -> int:
        """Copy every matched tensor into ``model`` (built from the plan matched against); returns how many."""
        state = model.state_dict()  # detached tensors that share the parameters' storage
        transforms = dict(self.match.transforms)
        with torch.no_grad():
            for ours, key in self.match.pairs:
                tensor = self.tensors[key]
                state[ours].copy_(transforms[ours].tensor(tensor) if ours in transforms else tensor)
        return len(self.match.pairs)


def load_init(plan: ModelPlan, init: InitSpec, locate: Callable[[str], Location] | None = None) -> LoadedInit:
    """Read ``init``'s file and match it to ``plan`` (shapes from a meta-device build: nothing allocated); every
    problem is raised at once, located with ``locate`` (the spec's ``source.locate``) when given."""
    try:
        tensors = read_checkpoint(init.path)
        model = {name: tuple(t.shape) for name, t in build_from_plan(plan, "meta").state_dict().items()}
        file = {key: tuple(t.shape) for key, t in tensors.items()}
        return LoadedInit(match_init(plan, init, model, file, f"'{Path(init.path).name}'"), tensors)
    except ArchDSLError as err:
        raise err.located(locate) if locate is not None else err from None


def init_weights(
    model: nn.Module, plan: ModelPlan, init: InitSpec, locate: Callable[[str], Location] | None = None
) -> int:
    """Initialise ``model`` (built from ``plan``) from ``init``'s file; nothing is copied unless everything
    matches. Returns the number of tensors copied."""
    return load_init(plan, init, locate).copy_into(model)
