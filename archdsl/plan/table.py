"""Human-readable table of a :class:`ModelPlan`: per stage, or the whole tree (``--blocks``)."""

from __future__ import annotations

from archdsl.plan.shapes import ModelPlan, Node, Shape

__all__ = ["human", "kind_label", "plan_table"]


def human(n: float) -> str:
    """``8178368512`` -> ``8.18G``."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.0f}"


def _shape(shape: Shape) -> str:
    return "x".join(str(s) for s in shape)


def kind_label(node: Node) -> str:
    """``bottleneck(halo+se)``: a part's type with its children's."""
    inner = "+".join(c.type for c in node.children)
    return f"{node.type}({inner})" if inner else node.type


def plan_table(plan: ModelPlan, blocks: bool = False) -> str:
    """Stem, stages and head with type, output, params and FLOPs; ``blocks`` adds one row per part (its
    module path, and the spec entry it repeats) and the parts nested in it."""
    rows: list[tuple[str, ...]] = []

    def node_rows(label: str, node: Node, depth: int, spec: str = "") -> None:
        rows.append(
            (
                "  " * depth + label,
                kind_label(node),
                _shape(node.out_shape),
                f"{node.params:,}",
                human(node.flops),
                spec,
            )
        )
        if blocks:
            for child in node.children:
                node_rows(child.path.rsplit(".", 1)[-1], child, depth + 1)

    node_rows("stem", plan.stem, 0)
    paths = {id(part): path for path, part in plan.part_paths()}
    for stage in plan.stages:
        kinds = list(dict.fromkeys(kind_label(p) for p in stage.parts))
        rows.append(
            (
                f"stage {stage.index}",
                "+".join(kinds),
                _shape(stage.out_shape),
                f"{stage.params:,}",
                human(stage.flops),
                "",
            )
        )
        if blocks:
            for part in stage.parts:
                spec = f"{part.path} #{part.repeat + 1}" if part.role == "block" else part.path
                node_rows(paths[id(part)], part, 1, spec)
    node_rows("head", plan.head, 0)
    rows.append(("total", "", "", f"{plan.params:,}", human(plan.flops), ""))
    header = ("part", "type", "output", "params", "FLOPs", "spec (repeat)" if blocks else "")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [f"{plan.name}: input {_shape(plan.input)} -> {_shape(plan.output)}"]
    for r in [header, *rows]:
        cells = (c.rjust(w) if i in (3, 4) else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
