"""Shared DataModule machinery: the request, the registry, tensor-backed splits, batch augmentation."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

from archdsl.errors import SpecError

__all__ = ["BatchedTensorDataset", "DataRequest", "TensorDataModule", "make_datamodule", "random_shift_flip"]


@dataclass(frozen=True)
class DataRequest:
    """What a dataset factory needs to know: the data spec and the model's input."""

    data: Any
    """The ``train.data`` spec."""
    channels: int
    size: int
    batch_size: int
    seed: int
    num_classes: int
    """The head's class count (datasets check theirs against it)."""
    allow_import: bool = False
    """The command line allowed importing user code (``custom``)."""


def make_datamodule(request: DataRequest) -> L.LightningDataModule:
    """The DataModule of the registered dataset ``request.data.name`` (its kind names the function)."""
    from archdsl.kinds import DATASETS

    module, _, function = DATASETS.get(request.data.name).datamodule.partition(":")
    factory: Callable[[DataRequest], L.LightningDataModule] = getattr(importlib.import_module(module), function)
    return factory(request)


def check_classes(found: int, request: DataRequest, what: str) -> None:
    if found != request.num_classes:
        raise SpecError.at("head.num_classes", f"must equal the {found} classes of {what}, got {request.num_classes}")


def random_shift_flip(x: torch.Tensor, max_shift: int, flip: bool) -> torch.Tensor:
    """Per-sample random integer translation (edge-replicated) and optional horizontal flip, vectorised."""
    b, c, h, w = x.shape
    p = max_shift
    if p > 0:
        padded = F.pad(x, (p, p, p, p), mode="replicate")
        dy = torch.randint(0, 2 * p + 1, (b, 1), device=x.device)
        dx = torch.randint(0, 2 * p + 1, (b, 1), device=x.device)
        rows = dy + torch.arange(h, device=x.device)  # (B, H)
        cols = dx + torch.arange(w, device=x.device)  # (B, W)
        bi = torch.arange(b, device=x.device)[:, None, None, None]
        ci = torch.arange(c, device=x.device)[None, :, None, None]
        x = padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]  # (B, C, H, W)
    if flip:
        mask = torch.rand(b, device=x.device) < 0.5
        x = torch.where(mask[:, None, None, None], x.flip(-1), x)
    return x


class BatchedTensorDataset(TensorDataset):
    """A ``TensorDataset`` the DataLoader indexes once per batch (its ``__getitems__`` protocol): one gather per
    tensor instead of one indexing per sample and a stack. The batches are the same, in the same order."""

    def __getitems__(self, indices: list[int]) -> list[torch.Tensor]:
        index = torch.as_tensor(indices)
        return [t[index] for t in self.tensors]


def _whole_batch(batch: list[torch.Tensor]) -> list[torch.Tensor]:
    """The collate step of a :class:`BatchedTensorDataset`: its batch is already stacked."""
    return batch


class TensorDataModule(L.LightningDataModule):
    """Train/val/test splits held as tensors; augmentation runs on whole batches on the device."""

    def __init__(
        self,
        load: Callable[[], tuple[Dataset[Any], Dataset[Any], Dataset[Any]]],
        batch_size: int,
        seed: int,
        augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self._load = load
        self.batch_size = batch_size
        self.seed = seed
        self.augment = augment
        self.num_workers = num_workers
        self.splits: tuple[Dataset[Any], Dataset[Any], Dataset[Any]] | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.splits is None:
            self.splits = self._load()

    def _loader(self, i: int, shuffle: bool) -> DataLoader[Any]:
        self.setup()
        assert self.splits is not None
        gen = torch.Generator().manual_seed(self.seed) if shuffle else None
        split = self.splits[i]
        return DataLoader(
            split,
            collate_fn=_whole_batch if isinstance(split, BatchedTensorDataset) else None,
            batch_size=self.batch_size,
            shuffle=shuffle,
            generator=gen,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader[Any]:
        return self._loader(0, True)

    def val_dataloader(self) -> DataLoader[Any]:
        return self._loader(1, False)

    def test_dataloader(self) -> DataLoader[Any]:
        return self._loader(2, False)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        trainer = getattr(self, "trainer", None)
        if self.augment is not None and trainer is not None and trainer.training:
            x, y = batch
            return self.augment(x), y
        return batch


def channel_stats(train: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation (1, C, 1, 1) of a training split."""
    return train.mean(dim=(0, 2, 3), keepdim=True), train.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)


def normalise_split(train: torch.Tensor, *others: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Standardise every split with the per-channel mean/std of ``train``."""
    mean, std = channel_stats(train)
    return tuple((t - mean) / std for t in (train, *others))


def tensor_splits(
    xs: tuple[torch.Tensor, torch.Tensor, torch.Tensor], ys: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
) -> tuple[TensorDataset, TensorDataset, TensorDataset]:
    a, b, c = (BatchedTensorDataset(x, y) for x, y in zip(xs, ys, strict=True))
    return a, b, c
