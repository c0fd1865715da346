"""Lightning without its chatter: the warnings and log lines that say nothing to an archdsl user."""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from typing import Any

from lightning.pytorch.callbacks import Callback

__all__ = ["QuietRanks", "quiet_lightning"]

_LOGGERS = (
    "lightning.pytorch",
    "lightning.fabric",
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.distributed",
)
_MESSAGES = (
    r".*does not have many workers.*",
    r".*Checkpoint directory .* exists and is not empty.*",
    r".*GPU available but not used.*",
    r".*LeafSpec.*is deprecated.*",
    r".*Experiment logs directory .* exists and is not empty.*",
    r".*smaller than the logging interval.*",
    r".*callbacks used to create the checkpoint need to be provided.*",
    r".*The `srun` command is available on your system but is not used.*",  # a worker's trial is its own
)


def _install() -> None:
    """Quiet Lightning's loggers and warnings (the warning filters last as long as the caller's scope)."""
    for name in _LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for message in _MESSAGES:
        warnings.filterwarnings("ignore", message=message)


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Lightning quiet inside the block; the warning filters are restored after it."""
    with warnings.catch_warnings():
        _install()
        yield


class QuietRanks(Callback):
    """Quiet Lightning in DDP-spawned ranks too: they start from a fresh interpreter, so the filters of
    :func:`quiet_lightning` do not reach them; unpickling this callback there installs them (for the rank's
    lifetime)."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return _quiet_rank, ()


def _quiet_rank() -> QuietRanks:
    _install()
    return QuietRanks()
