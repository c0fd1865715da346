"""Seeded random tensors of the spec's input shape (smoke tests, benchmarks)."""

from __future__ import annotations

import lightning as L
import torch

from archdsl.train.data.base import DATASETS, DataRequest, TensorDataModule, check_classes, tensor_splits


def _synthetic(request: DataRequest) -> L.LightningDataModule:
    classes = request.data.num_classes or request.num_classes
    check_classes(classes, request, "the synthetic dataset")
    n = request.data.num_samples

    def load():  # type: ignore[no-untyped-def]
        gen = torch.Generator().manual_seed(request.seed)
        sizes = (n, max(1, n // 4), max(1, n // 4))
        xs = tuple(torch.randn(k, request.channels, request.size, request.size, generator=gen) for k in sizes)
        ys = tuple(torch.randint(0, classes, (k,), generator=gen) for k in sizes)
        return tensor_splits(xs, ys)  # type: ignore[arg-type]

    return TensorDataModule(load, request.batch_size, request.seed)


DATASETS.register("synthetic", _synthetic)
