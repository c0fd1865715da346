"""The one batch every candidate of a ranking is scored on: seeded images of the spec's own training split.

The images are what the model sees in training, without augmentation: the dataset's DataModule
(:func:`~archdsl.train.data.make_datamodule`, with the data spec's ``augment`` off and no ``train.augment``)
loads its splits, ``size`` training images are drawn without replacement by ``seed``, moved to the device and
made into model inputs by the dataset's device step
(:class:`~archdsl.train.data.device_batch.DeviceBatch`: float, resized, standardised) in evaluation mode.
A user DataModule (``custom``) gives the first ``size`` images of its first training batch instead.
Batches are cached per (data spec, input, size, seed, device): scoring 200 candidates loads the data once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import default_collate

from archdsl.errors import ArchDSLError
from archdsl.spec.model import ModelSpec

__all__ = ["DEFAULT_SIZE", "ProxyBatch", "load_batch"]

DEFAULT_SIZE = 64
"""The default batch: the spec's ``train.batch_size``, at most this many images."""


@dataclass(frozen=True)
class ProxyBatch:
    """Model inputs and labels on the device, as the model sees them in training (float, standardised)."""

    images: torch.Tensor
    """``(B, channels, size, size)`` float."""
    labels: torch.Tensor
    """``(B,)`` int64 class indices."""


_CACHE: dict[tuple[Any, ...], ProxyBatch] = {}


def load_batch(
    spec: ModelSpec, *, seed: int, device: str = "cpu", size: int | None = None, allow_import: bool = False
) -> ProxyBatch:
    """One seeded batch of ``spec``'s training split (``size`` images, default ``min(train.batch_size, 64)``,
    at most the split's size); ``allow_import`` permits ``train.data.name=custom``. Problems with the data
    (a missing directory, a class count that does not match the head) are located in the spec's file."""
    t = spec.train
    n = size if size is not None else min(t.batch_size, DEFAULT_SIZE)
    if n < 1:
        raise ValueError(f"a proxy batch needs at least one image, got size={n}")
    data = t.data.model_copy(update={"augment": False}) if "augment" in type(t.data).model_fields else t.data
    key = (
        json.dumps(data.model_dump(mode="json"), sort_keys=True),
        spec.input.channels,
        spec.input.size,
        spec.head.num_classes,
        t.seed,
        n,
        seed,
        str(torch.device(device)),
    )
    if key not in _CACHE:
        try:
            _CACHE[key] = _load(spec, data, n, seed, torch.device(device), allow_import)
        except ArchDSLError as err:
            if spec.source is None:
                raise
            raise err.located(spec.source.locate) from None
    return _CACHE[key]


def _load(spec: ModelSpec, data: Any, n: int, seed: int, device: torch.device, allow_import: bool) -> ProxyBatch:
    from archdsl.train.data import DataRequest, make_datamodule
    from archdsl.train.data.base import TensorDataModule, WholeBatches

    t = spec.train
    request = DataRequest(
        data, spec.input.channels, spec.input.size, t.batch_size, t.seed, spec.head.num_classes, allow_import
    )
    module = make_datamodule(request)
    if not isinstance(module, TensorDataModule):  # a user DataModule: its own first training batch
        module.setup("fit")
        x, y = next(iter(module.train_dataloader()))[:2]
        return ProxyBatch(x[:n].to(device).float(), y[:n].to(device))
    module.setup("fit")
    assert module.splits is not None
    split = module.splits[0]
    count = len(split)  # type: ignore[arg-type]
    gen = torch.Generator().manual_seed(seed)
    index = torch.randperm(count, generator=gen)[: min(n, count)].tolist()
    if isinstance(split, WholeBatches):
        x, y = split.__getitems__(index)  # type: ignore[attr-defined]
    else:
        x, y = default_collate([split[i] for i in index])
    x, y = x.to(device), y.to(device)
    images = module.prepare_batch(x, False) if module.prepare_batch is not None else x.float()
    return ProxyBatch(images.contiguous(), y.long())
