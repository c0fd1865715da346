"""Seeded random tensors of the spec's input shape (smoke tests, benchmarks)."""

from __future__ import annotations

from functools import partial

import lightning as L
import torch
from torch.utils.data import TensorDataset

from archdsl.train.data.base import DataRequest, TensorDataModule, check_classes, tensor_splits


def _load(request: DataRequest, classes: int) -> tuple[TensorDataset, TensorDataset, TensorDataset]:
    n = request.data.num_samples
    gen = torch.Generator().manual_seed(request.seed)
    sizes = (n, max(1, n // 4), max(1, n // 4))
    xs = tuple(torch.randn(k, request.channels, request.size, request.size, generator=gen) for k in sizes)
    ys = tuple(torch.randint(0, classes, (k,), generator=gen) for k in sizes)
    return tensor_splits(xs, ys)  # type: ignore[arg-type]


def synthetic_datamodule(request: DataRequest) -> L.LightningDataModule:
    classes = request.data.num_classes or request.num_classes
    check_classes(classes, request, "the synthetic dataset")
    request.refuse_image_ops("the synthetic dataset (random float tensors)")
    return TensorDataModule(partial(_load, request, classes), request.batch_size, request.seed)
