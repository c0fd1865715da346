"""Shape checks shared by shape rules; each raises a located :class:`ShapeError` at a spec path."""

from __future__ import annotations

from archdsl.errors import ShapeError
from archdsl.plan.shapes import Ctx

__all__ = [
    "mlp_hidden",
    "require",
    "require_context_block",
    "require_divisible",
    "require_token_block",
    "same_size",
]


def require(ok: bool, path: str, message: str) -> None:
    """Raise ``ShapeError(path, message)`` unless ``ok``."""
    if not ok:
        raise ShapeError.at(path, message)


def require_divisible(value: int, by: int, path: str, what: str, by_what: str) -> None:
    require(by > 0 and value % by == 0, path, f"{what}={value} must be divisible by {by_what}={by}")


def same_size(size: int, stride: int) -> int:
    """Output side of an odd k x k window with "same" padding k // 2 and this stride: ceil(size / stride).

    Every such window fits any map (kernels are odd, see ``OddKernel``), so there is nothing to check.
    """
    return (size - 1) // stride + 1


def mlp_hidden(channels: int, mlp_ratio: float) -> int:
    """Hidden width of a block's MLP: ``int(channels * mlp_ratio)``."""
    return int(channels * mlp_ratio)


def require_token_block(ctx: Ctx, name: str, num_heads: int, mlp_ratio: float) -> None:
    """Rules shared by token blocks: same channels in and out, no stride, heads divide C, MLP width >= 1."""
    c = ctx.in_shape[0]
    require(
        ctx.out_channels in (0, c),
        ctx.path,
        f"a {name} block keeps its {c} input channels but the stage declares {ctx.out_channels}; "
        "add a transition to the stage (e.g. `transition: {type: patch_merge}`) to change channels",
    )
    require(
        ctx.stride == 1,
        ctx.path,
        f"a {name} block cannot apply the stage's stride {ctx.stride}; "
        "add a transition to the stage (e.g. `transition: {type: patch_merge}`) to down-sample",
    )
    require(c % num_heads == 0, ctx.path + ".num_heads", f"num_heads={num_heads} must divide the block's channels {c}")
    require(
        mlp_hidden(c, mlp_ratio) >= 1,
        ctx.path + ".mlp_ratio",
        f"mlp_ratio={mlp_ratio} gives an empty MLP at {c} channels",
    )


def require_context_block(ctx: Ctx, name: str) -> None:
    """Rules of context blocks (residual blocks that keep the map): same channels in and out, no stride."""
    c = ctx.in_shape[0]
    require(
        ctx.out_channels in (0, c),
        ctx.path,
        f"a {name} block keeps its {c} input channels but the stage declares {ctx.out_channels}; "
        "put a conv block before it in the stage (e.g. `{type: bottleneck}`) to change channels",
    )
    require(
        ctx.stride == 1,
        ctx.path,
        f"a {name} block cannot apply the stage's stride {ctx.stride}; "
        "put a conv block before it in the stage (e.g. `{type: bottleneck}`) to down-sample",
    )
