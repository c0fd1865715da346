"""Score one planned candidate with named proxies: build, measure, discard; no side effects."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from archdsl.planner import PlannedSpec
from archdsl.search.proxies.batch import ProxyBatch, load_batch
from archdsl.search.proxies.inputs import ProxyInputs
from archdsl.search.proxies.kinds import require

__all__ = ["score", "score_untrained"]


def score(planned: PlannedSpec, names: Sequence[str], batch: ProxyBatch, *, seed: int = 0) -> dict[str, float]:
    """``{name: score}`` of ``planned`` for every proxy of ``names`` (higher is predicted better for each).

    The model is built from the plan with weights drawn after ``torch.manual_seed(seed)`` (not at all for
    ``params``/``flops``), on the batch's device; no optimiser step is taken and the model is discarded. Each
    proxy starts from the same seed, so its value does not depend on the others asked for. torch's random state
    (CPU, and the batch's CUDA device) and grad mode are as they were afterwards. An unknown name is an
    :class:`~archdsl.search.proxies.registry.UnknownProxy`, before anything is built.
    """
    proxies = require(list(names))
    inputs = ProxyInputs(planned, batch, seed)
    device = batch.images.device
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    scores: dict[str, float] = {}
    with torch.random.fork_rng(devices=cuda), torch.inference_mode(False), torch.no_grad():
        for proxy in proxies:
            torch.manual_seed(seed)
            scores[proxy.name] = float(proxy.compute(inputs))
    return scores


def score_untrained(
    planned: PlannedSpec, names: Sequence[str], *, device: str, allow_import: bool = False
) -> dict[str, float]:
    """:func:`score` of a search's trial or proposal: on the batch of its own training data, weights and batch
    both seeded by its ``train.seed`` (the initialisation its training would start from)."""
    seed = planned.spec.train.seed
    return score(
        planned, names, load_batch(planned.spec, seed=seed, device=device, allow_import=allow_import), seed=seed
    )
