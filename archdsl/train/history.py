"""``metrics.csv`` across a resume: Lightning's CSV logger, keeping the rows written before the resume point.

Lightning's logger starts a fresh ``metrics.csv`` in a non-empty directory; resuming would lose the history
of the epochs already trained. :class:`HistoryLogger` reads that history when it is made and puts it back in
front of the new rows once the fit ends (Lightning finalises its loggers on success, failure and Ctrl-C).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_only

from archdsl.atomic import atomic_write_text

__all__ = ["METRICS", "HistoryLogger"]

METRICS = "metrics.csv"


class HistoryLogger(CSVLogger):
    """Lightning's CSV logger in ``out``: with ``resume``, the earlier rows of ``metrics.csv`` are kept.

    It writes ``hparams.yaml`` once: Lightning logs the hyperparameters again at the start of every stage
    (fit, validate, test), and each pure-Python YAML dump of the spec costs a search trial about 15 ms."""

    def __init__(self, out: Path, *, resume: bool) -> None:
        super().__init__(out, name="", version="")
        self._history = _read(out / METRICS) if resume else []
        self._hparams_logged = False

    def log_hyperparams(self, *args: Any, **kwargs: Any) -> None:
        if not self._hparams_logged:
            super().log_hyperparams(*args, **kwargs)
            self._hparams_logged = True

    @rank_zero_only  # as Lightning's: the other ranks of a DDP run write nothing
    def finalize(self, status: str) -> None:
        super().finalize(status)
        if self._history:
            history, self._history = self._history, []  # once: validate and test finalise it again
            keys = _prepend(Path(self.log_dir) / METRICS, history)
            # the writer appends the final validation and test rows in its own column order: the file's now
            self.experiment.metrics_keys[:] = keys


def _read(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _prepend(path: Path, history: list[dict[str, str]]) -> list[str]:
    """Write ``history`` (the rows before the resume point) followed by the rows of this run; returns the
    columns (sorted, as Lightning's writer keeps them)."""
    rows = _read(path)
    first_step = min((int(r["step"]) for r in rows if r.get("step")), default=None)
    kept = [r for r in history if first_step is None or int(r.get("step") or 0) < first_step]
    keys = sorted({k for r in (*kept, *rows) for k in r})
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys)
    writer.writeheader()
    writer.writerows([*kept, *rows])
    atomic_write_text(path, buffer.getvalue())
    return keys
