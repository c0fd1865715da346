"""Where a trial trains, and from what: a retry of a lost trial continues from that trial's last checkpoint.

Every search trial keeps a resumable ``last.ckpt`` of its latest epoch next to ``best.ckpt`` in its directory
on ``--out`` (a filesystem every worker shares on a cluster) and records its path. A retry (of a trial handed
back on SIGTERM or Ctrl-C, failed as stale, or lost to a device fault) trains in that same directory from
that checkpoint: same parameters, same budget slot, the epochs the lost trial reported kept in the pruner's
view, its history (``metrics.csv``) continued. It starts over, in a directory of its own, only when there is
nothing to continue (the lost trial stopped on a bug, kept no checkpoint, or its checkpoint is missing on
this host or unreadable), and says why in its ``started_over`` attribute.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from optuna.trial import FrozenTrial

from archdsl.search.faults import describe
from archdsl.search.record import TrialRecord, epoch_values
from archdsl.search.results import trial_dir

__all__ = ["Start", "start_of"]


@dataclass(frozen=True)
class Start:
    """How a trial starts: in ``directory``, from ``checkpoint`` (holding ``epoch`` epochs) or from scratch."""

    directory: Path
    checkpoint: Path | None = None
    epoch: int = 0
    lost: int | None = None
    """The trial it continues (or would have)."""
    reported: Mapping[int, float] = field(default_factory=dict)
    """The lost trial's reported values of the epochs the checkpoint holds (step -> value)."""
    started_over: str | None = None
    """Why a retry could not continue."""


def start_of(me: FrozenTrial, trials: Sequence[FrozenTrial], out: Path) -> Start:
    """Where and from what trial ``me`` trains (``out``: the search's ``--out``)."""
    from archdsl.train.fit import epochs_completed  # torch: only a trial about to train asks

    fresh = trial_dir(out, me.number)
    history = TrialRecord.of(me).retry_of
    if not history:
        return Start(fresh)
    number = history[-1]
    lost = next((t for t in trials if t.number == number), None)
    record = TrialRecord.of(lost) if lost is not None else None

    def over(why: str) -> Start:
        return Start(fresh, lost=number, started_over=f"trial {number} {why}; trained from scratch")

    if record is None or record.bug:
        return over("stopped on a bug (the code may have changed since)" if record else "is not in the study")
    if record.last_checkpoint is None:
        return over("kept no resumable checkpoint")
    path = Path(record.last_checkpoint)
    if not path.is_file():
        return over(f"kept its checkpoint at {path} on {record.host or 'another host'}, not found on this host")
    try:
        epoch = epochs_completed(path)
    except Exception as err:  # truncated, corrupt, from another version: the trial cannot continue from it
        return over(f"left an unreadable checkpoint {path} ({describe(err)})")
    reported = {step: value for step, value in epoch_values(lost).items() if step <= epoch} if lost else {}
    return Start(path.parent, path, epoch, number, reported)
