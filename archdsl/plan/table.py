"""Human-readable table of a :class:`ModelPlan`."""

from __future__ import annotations

from archdsl.plan.shapes import ModelPlan, PartPlan, Shape

__all__ = ["human", "plan_table"]


def human(n: float) -> str:
    """``8178368512`` -> ``8.18G``."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.0f}"


def _shape(shape: Shape) -> str:
    return "x".join(str(s) for s in shape)


def plan_table(plan: ModelPlan, blocks: bool = False) -> str:
    rows: list[tuple[str, str, str, str, str]] = []

    def part_row(label: str, part: PartPlan) -> None:
        rows.append((label, part.type, _shape(part.out_shape), f"{part.params:,}", human(part.flops)))

    part_row("stem", plan.stem)
    for stage in plan.stages:
        types = sorted({p.type for p in stage.parts}, key=[p.type for p in stage.parts].index)
        rows.append(
            (
                f"stage {stage.index}",
                "+".join(types),
                _shape(stage.out_shape),
                f"{stage.params:,}",
                human(stage.flops),
            )
        )
        if blocks:
            for part in stage.parts:
                part_row(f"  {part.path.split('.', 2)[-1]}", part)
    part_row("head", plan.head)
    rows.append(("total", "", "", f"{plan.params:,}", human(plan.flops)))
    header = ("part", "type", "output", "params", "FLOPs")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    lines = [f"{plan.name}: input {_shape(plan.input)} -> {_shape(plan.output)}"]
    for r in [header, *rows]:
        lines.append(
            "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        )
    return "\n".join(lines)
