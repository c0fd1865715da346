"""Shared DataModule machinery: the request, the registry, tensor-backed splits, batch augmentation.

Batches reach the device as they leave the loader (uint8 for the image datasets, pinned when the trainer
trains on CUDA, so Lightning's non-blocking copy overlaps the step); :class:`TensorDataModule` then makes
the model's inputs there, per batch (:class:`~archdsl.train.data.device_batch.DeviceBatch`). A split that
assembles whole batches itself (:class:`WholeBatches`) is indexed once per batch, not once per sample.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from archdsl.errors import SpecError
from archdsl.spec.augment import AugmentSpec
from archdsl.train.data.fraction import train_fraction
from archdsl.train.data.workers import Workers, loader_workers
from archdsl.train.recipe.images import ImageRecipe, image_recipe

__all__ = [
    "BatchedTensorDataset",
    "DataRequest",
    "PrepareBatch",
    "Splits",
    "TensorDataModule",
    "WholeBatches",
    "dark_ground_preprocessing",
    "make_datamodule",
    "random_shift_flip",
    "stratified_split",
    "subset",
]

Splits = tuple[Dataset[Any], Dataset[Any], Dataset[Any]]
"""Train, validation and test."""
PrepareBatch = Callable[[torch.Tensor, bool], torch.Tensor]
"""``prepare(x, training)``: the loader's images, on the device, to the model's inputs."""


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
    augment: AugmentSpec | None = None
    """``train.augment``: its image operations run in the dataset's device step (:func:`image_recipe`)."""

    def image_recipe(self) -> ImageRecipe | None:
        """The image operations of ``train.augment`` for the dataset's :class:`DeviceBatch`, or None."""
        return image_recipe(self.augment)

    def refuse_image_ops(self, what: str) -> None:
        """A located error when ``train.augment`` asks for image operations that ``what`` cannot run."""
        if self.augment is not None and self.augment.image_ops:
            raise SpecError.at(
                f"train.augment.{self.augment.image_op_keys[0]}",
                f"needs a dataset whose loader hands over uint8 images (digits, mnist5k, cifar10, image_folder); "
                f"{what} does not, got train.data.name={self.data.name}",
            )


def make_datamodule(request: DataRequest) -> L.LightningDataModule:
    """The DataModule of the registered dataset ``request.data.name`` (its kind names the function)."""
    from archdsl.kinds import DATASETS

    module, _, function = DATASETS.get(request.data.name).datamodule.partition(":")
    factory: Callable[[DataRequest], L.LightningDataModule] = getattr(importlib.import_module(module), function)
    datamodule = factory(request)
    fraction = getattr(request.data, "fraction", 1.0)  # a third-party dataset's spec may not have the field
    if fraction < 1.0:  # ``train.data.fraction``, for every dataset at once
        if not isinstance(datamodule, TensorDataModule):
            raise SpecError.at(
                "train.data.fraction",
                f"needs a dataset whose splits archdsl holds (digits, mnist5k, synthetic, cifar10, image_folder); "
                f"train.data.name={request.data.name} hands over its own loaders, got {fraction}",
            )
        datamodule.fraction = fraction
    return datamodule


def check_classes(found: int, request: DataRequest, what: str) -> None:
    if found != request.num_classes:
        raise SpecError.at("head.num_classes", f"must equal the {found} classes of {what}, got {request.num_classes}")


def stratified_split(labels: np.ndarray, held_out: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Train/val/test indices: ``held_out`` test, then ``held_out`` validation images, each stratified by class
    and fixed by ``seed``; the rest train."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    rest, test = train_test_split(idx, test_size=held_out, stratify=labels, random_state=seed)
    train, val = train_test_split(rest, test_size=held_out, stratify=labels[rest], random_state=seed)
    return train, val, test


def dark_ground_preprocessing(mean: list[float], std: list[float], source: str) -> dict[str, object]:
    """What an exported model of light strokes on a dark ground expects (digits, MNIST): ``predict`` inverts an
    image drawn dark on light (``invert: auto``)."""
    return {
        "scale": f"pixel / 255 (digit strokes are high values on a dark background, as in {source})",
        "mean": mean,
        "std": std,
        "invert": "auto",
        "background": "dark",
    }


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


class WholeBatches:
    """A map-style dataset whose ``__getitems__(indices)`` returns the whole batch already stacked (the
    DataLoader calls it once per batch and must not collate again)."""


class BatchedTensorDataset(TensorDataset, WholeBatches):
    """A ``TensorDataset`` the DataLoader indexes once per batch (its ``__getitems__`` protocol): one gather per
    tensor instead of one indexing per sample and a stack. The batches are the same, in the same order."""

    def __getitems__(self, indices: list[int]) -> list[torch.Tensor]:
        index = torch.as_tensor(indices)
        return [t[index] for t in self.tensors]


class _WholeBatchSubset(Subset[Any], WholeBatches):
    """A :class:`Subset` of a :class:`WholeBatches` split: ``Subset.__getitems__`` hands it the mapped indices,
    so a batch stays one call, and the loader does not collate it again."""


def subset(split: Dataset[Any], indices: np.ndarray) -> Dataset[Any]:
    """The samples ``indices`` of ``split``: a tensor split stays a tensor split of those rows (one gather per
    batch), a :class:`WholeBatches` split keeps stacking its batches, any other is a :class:`Subset`."""
    if isinstance(split, TensorDataset):
        index = torch.from_numpy(indices)
        return BatchedTensorDataset(*(t[index] for t in split.tensors))
    if isinstance(split, WholeBatches):
        return _WholeBatchSubset(split, indices.tolist())
    return Subset(split, indices.tolist())


def _whole_batch(batch: Sequence[torch.Tensor]) -> Sequence[torch.Tensor]:
    """The collate step of a :class:`WholeBatches` split: its batch is already stacked."""
    return batch


class TensorDataModule(L.LightningDataModule):
    """Train/val/test splits (``load()``, once, in ``setup``); the model's inputs are made on the device from
    whole batches: ``prepare(splits)`` gives the :data:`PrepareBatch` of every batch (standardisation, resizing,
    augmentation in training), or ``augment`` alone runs on training batches that the splits hold ready.

    ``num_workers``: loader processes, or ``"auto"`` (:func:`~archdsl.train.data.workers.loader_workers`);
    workers persist across epochs and keep ``prefetch_factor`` batches each in flight. ``fraction`` below 1
    trains on a stratified subset of the training split, drawn with ``seed``
    (:mod:`~archdsl.train.data.fraction`), after ``prepare`` has seen the whole split.
    """

    def __init__(
        self,
        load: Callable[[], Splits],
        batch_size: int,
        seed: int,
        augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
        num_workers: Workers = 0,
        *,
        prepare: Callable[[Splits], PrepareBatch] | None = None,
        prefetch_factor: int | None = None,
    ) -> None:
        super().__init__()
        self._load = load
        self._prepare = prepare
        self.batch_size = batch_size
        self.seed = seed
        self.augment = augment
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.splits: Splits | None = None
        self.prepare_batch: PrepareBatch | None = None
        self.fraction = 1.0

    def setup(self, stage: str | None = None) -> None:
        if self.splits is None:
            self.splits = self._load()
            if self._prepare is not None:
                self.prepare_batch = self._prepare(self.splits)
            if self.fraction < 1.0:  # the device step keeps the whole split's statistics (the exported model's)
                train, val, test = self.splits
                self.splits = (subset(train, train_fraction(train, self.fraction, self.seed)), val, test)

    def _pin_memory(self) -> bool:
        """Page-locked batches when the trainer trains on CUDA: the copy to the device is then asynchronous."""
        trainer = self.trainer
        return trainer is not None and trainer.strategy.root_device.type == "cuda"

    def _loader(self, i: int, shuffle: bool) -> DataLoader[Any]:
        self.setup()
        assert self.splits is not None
        gen = torch.Generator().manual_seed(self.seed) if shuffle else None
        split = self.splits[i]
        workers = loader_workers(self.num_workers, len(split), self.batch_size)  # type: ignore[arg-type]
        return DataLoader(
            split,
            collate_fn=_whole_batch if isinstance(split, WholeBatches) else None,
            batch_size=self.batch_size,
            shuffle=shuffle,
            generator=gen,
            num_workers=workers,
            persistent_workers=workers > 0,
            prefetch_factor=self.prefetch_factor if workers > 0 else None,
            pin_memory=self._pin_memory(),
        )

    def train_dataloader(self) -> DataLoader[Any]:
        return self._loader(0, True)

    def val_dataloader(self) -> DataLoader[Any]:
        return self._loader(1, False)

    def test_dataloader(self) -> DataLoader[Any]:
        return self._loader(2, False)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        trainer = getattr(self, "trainer", None)
        training = trainer is not None and bool(trainer.training)
        if self.prepare_batch is not None:
            x, y = batch
            return self.prepare_batch(x, training), y
        if self.augment is not None and training:
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
