"""Human-readable table of a :class:`ModelPlan`: per stage, or the whole tree (``--blocks``)."""

from __future__ import annotations

from archdsl.plan.shapes import ModelPlan, Node, Shape

__all__ = ["human", "plan_table"]


def human(n: float) -> str:
    """``8178368512`` -> ``8.18G``."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.0f}"


def _shape(shape: Shape) -> str:
    return "x".join(str(s) for s in shape)


def _kind(node: Node) -> str:
    """``bottleneck(halo+se)``: a part's type with its children's."""
    inner = "+".join(c.type for c in node.children)
    return f"{node.type}({inner})" if inner else node.type


def plan_table(plan: ModelPlan, blocks: bool = False) -> str:
    rows: list[tuple[str, str, str, str, str]] = []

    def node_rows(label: str, node: Node, depth: int) -> None:
        rows.append(("  " * depth + label, _kind(node), _shape(node.out_shape), f"{node.params:,}", human(node.flops)))
        if blocks:
            for child in node.children:
                node_rows(child.path.rsplit(".", 1)[-1], child, depth + 1)

    node_rows("stem", plan.stem, 0)
    for stage in plan.stages:
        kinds = list(dict.fromkeys(_kind(p) for p in stage.parts))
        rows.append((f"stage {stage.index}", "+".join(kinds), _shape(stage.out_shape), f"{stage.params:,}",
                     human(stage.flops)))  # fmt: skip
        if blocks:
            for part in stage.parts:
                node_rows(part.label.split(".", 2)[-1], part, 1)
    node_rows("head", plan.head, 0)
    rows.append(("total", "", "", f"{plan.params:,}", human(plan.flops)))
    header = ("part", "type", "output", "params", "FLOPs")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    lines = [f"{plan.name}: input {_shape(plan.input)} -> {_shape(plan.output)}"]
    for r in [header, *rows]:
        lines.append(
            "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        )
    return "\n".join(lines)
