"""Shape checks shared by shape rules; each raises a located :class:`ShapeError` at a spec path."""

from __future__ import annotations

from archdsl.errors import ShapeError
from archdsl.plan.shapes import Ctx

__all__ = ["out_size", "require", "require_divisible"]


def require(ok: bool, path: str, message: str) -> None:
    """Raise ``ShapeError(path, message)`` unless ``ok``."""
    if not ok:
        raise ShapeError.at(path, message)


def require_divisible(value: int, by: int, path: str, what: str, by_what: str) -> None:
    require(by > 0 and value % by == 0, path, f"{what}={value} must be divisible by {by_what}={by}")


def out_size(size: int, kernel: int, stride: int, padding: int, ctx: Ctx, path: str) -> int:
    """Output side of a conv/pool window; the window must fit."""
    out = (size + 2 * padding - kernel) // stride + 1
    require(
        out >= 1,
        path,
        f"a {kernel}x{kernel} window with padding {padding} does not fit a {size}x{size} map{ctx.where()}",
    )
    return out
