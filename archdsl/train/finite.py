"""The finiteness check of the training loss, kept on the device.

Reading a CUDA loss on the host (``if not torch.isfinite(loss)``) waits for the step's kernels to finish, so the
host cannot queue the next step ahead. :class:`LossWatch` records, with a few device kernels and no read, which
step first gave a NaN or infinite loss; the host reads the record only where it synchronises anyway (Lightning's
logging interval, the last batch of an epoch, before a checkpoint is written) and then raises
:class:`NonFiniteLossError` naming that first step. The same path runs on every device (the CPU included), so
the tests exercise it; a diverged run trains on for at most the steps up to the next check, and no checkpoint is
written from weights trained past a non-finite loss.
"""

from __future__ import annotations

import torch

__all__ = ["LossWatch", "NonFiniteLossError"]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""

    def __init__(self, value: float, epoch: int, step: int, global_step: int) -> None:
        self.value, self.epoch, self.step, self.global_step = value, epoch, step, global_step
        super().__init__(f"loss is {value} at epoch {epoch}, step {step} (global step {global_step})")


class LossWatch:
    """Where the loss first stopped being finite, recorded on the loss's device and read by :meth:`check`."""

    def __init__(self) -> None:
        self._first: torch.Tensor | None = None
        """int64 scalar on the device: the number of the first recorded step whose loss was not finite, or -1."""
        self._value: torch.Tensor | None = None
        """float32 scalar on the device: that step's loss."""
        self._steps: list[tuple[int, int, int]] = []
        """(epoch, batch, global step) of each step recorded since the last check, by record number."""

    def __getstate__(self) -> dict[str, object]:  # DDP-spawned ranks record on their own devices
        return {"_first": None, "_value": None, "_steps": []}

    def record(self, loss: torch.Tensor, epoch: int, batch: int, global_step: int) -> None:
        """Note ``loss`` of this step without reading it (no host synchronisation)."""
        loss = loss.detach().float()
        if self._first is None or self._value is None or self._first.device != loss.device:
            self._first = torch.full((), -1, dtype=torch.int64, device=loss.device)
            self._value = torch.zeros((), dtype=torch.float32, device=loss.device)
        new = ~torch.isfinite(loss) & (self._first < 0)
        self._first = torch.where(new, len(self._steps), self._first)  # a Python scalar is a kernel argument
        self._value = torch.where(new, loss, self._value)
        self._steps.append((epoch, batch, global_step))

    def check(self) -> None:
        """Raise :class:`NonFiniteLossError` for the first non-finite loss recorded since the last check; reads
        the device (a synchronisation) only when a step was recorded since then."""
        if not self._steps or self._first is None or self._value is None:
            return
        first = int(self._first)
        steps, self._steps = self._steps, []
        if first >= 0:
            value = float(self._value)
            self._first = torch.full_like(self._first, -1)
            raise NonFiniteLossError(value, *steps[first])
