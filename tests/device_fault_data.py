"""A user data module (``train.data.name: custom``) for the sticky-device-fault test: the UCI digits, except
that the first process to set it up (per marker file) gets the error a poisoned CUDA context raises."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from archdsl.train.data.base import TensorDataModule, tensor_splits
from archdsl.train.data.digits import load_digits_splits

__all__ = ["DeviceFaultOnce"]

ILLEGAL_ACCESS = "CUDA error: an illegal memory access was encountered"


def _digits(channels: int, size: int):  # type: ignore[no-untyped-def]
    return tensor_splits(*load_digits_splits(channels, size))  # type: ignore[arg-type]


class DeviceFaultOnce(TensorDataModule):
    def __init__(self, batch_size: int, marker: str, channels: int = 1, size: int = 8) -> None:
        super().__init__(partial(_digits, channels, size), batch_size, seed=0)
        self.marker = Path(marker)

    def setup(self, stage: str | None = None) -> None:
        try:
            with self.marker.open("x") as f:  # the first process only
                f.write(str(os.getpid()))
        except FileExistsError:
            return super().setup(stage)
        raise RuntimeError(ILLEGAL_ACCESS)
