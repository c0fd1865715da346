"""Checkpoints written atomically: a crash never leaves a half-written ``.ckpt`` behind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from archdsl.atomic import atomic_path

__all__ = ["AtomicCheckpointIO", "load_checkpoint_data"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """``torch.save`` through :func:`~archdsl.atomic.atomic_path` (a temporary file, then a rename); loads with
    ``weights_only=True`` unless told otherwise (Lightning's own default would unpickle arbitrary objects when
    resuming)."""

    def load_checkpoint(
        self, path: Any, map_location: Any = lambda storage, loc: storage, weights_only: bool | None = None
    ) -> dict[str, Any]:
        return super().load_checkpoint(path, map_location, True if weights_only is None else weights_only)

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        with atomic_path(path) as tmp:
            torch.save(checkpoint, tmp)


def load_checkpoint_data(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (never unpickles code)."""
    return torch.load(path, map_location="cpu", weights_only=True)
