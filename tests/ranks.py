"""What spawned processes run in tests: a module that imports nothing heavy, since each child imports it."""

from __future__ import annotations


def raise_archdsl_error(index: int) -> None:
    """Rank 1 raises one of archdsl's own errors, as a rank's diverging loss does."""
    from archdsl.errors import Problem, SpecError

    if index == 1:
        raise SpecError(Problem("train.optimizer.lr", "training stopped: loss is nan at epoch 0, step 3"))
