"""``params`` and ``flops``: the plan's analytic counts, the baselines every proxy must beat (no weights)."""

from __future__ import annotations

from archdsl.search.proxies.inputs import ProxyInputs
from archdsl.search.proxies.registry import Proxy, register

__all__: list[str] = []


def _params(inputs: ProxyInputs) -> float:
    return float(inputs.plan.params)


def _flops(inputs: ProxyInputs) -> float:
    return float(inputs.plan.flops)


register(Proxy("params", _params, "trainable parameters of the plan (a larger model is predicted better)", False))
register(Proxy("flops", _flops, "forward FLOPs of one image, from the plan", False))
