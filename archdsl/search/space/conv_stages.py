"""HaloNet's conv/attention trade-off rows as a search parameter: ``conv_stages`` = n leading conv stages."""

from __future__ import annotations

from typing import Any

__all__ = ["apply_conv_stages"]


def apply_conv_stages(data: dict[str, Any], n: int) -> None:
    """The first ``n`` stages' bottlenecks get a 3x3 conv mixer (HaloNet's "conv stage")."""
    for stage in data["stages"][:n]:
        for block in stage["blocks"]:
            if block.get("type") == "bottleneck" and (block.get("mixer") or {}).get("type") != "conv":
                block["mixer"] = {"type": "conv", "kernel_size": 3}
