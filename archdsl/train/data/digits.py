"""UCI handwritten digits (scikit-learn's ``load_digits``): the offline default dataset.

1,797 8x8 grey images of 10 classes, stratified 60/20/20 split with seed 0, so every run and every search
sees the same 360 validation and 360 test images. The loader hands over the 8x8 images as uint8
(``round(pixel * 255 / 16)``, repeated to the spec's channels); on the device they are shifted by up to a
pixel (training), resized (bilinear) to the spec's input size and standardised with the training split's
per-channel statistics at that size (:class:`~archdsl.train.data.device_batch.DeviceBatch`), where
``train.augment``'s image operations also run.
"""

from __future__ import annotations

from functools import partial

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from archdsl.train.data.base import (
    DataRequest,
    Splits,
    TensorDataModule,
    channel_stats,
    check_classes,
    dark_ground_preprocessing,
    random_shift_flip,
    stratified_split,
    tensor_splits,
)
from archdsl.train.data.device_batch import DeviceBatch

__all__ = ["digits_normalisation", "digits_preprocessing", "digits_split", "digits_uint8", "load_digits_splits"]

SPLIT_SEED = 0
HELD_OUT = 360


def digits_split(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified train/val/test indices (1077/360/360), fixed by seed 0."""
    return stratified_split(labels, HELD_OUT, SPLIT_SEED)


def digits_uint8(channels: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """All 1,797 images as the loader hands them over: uint8 ``(N, channels, 8, 8)``, ``round(pixel * 255 / 16)``
    (scikit-learn's pixels are 0-16), grey repeated to ``channels``; int64 labels; the labels as numpy."""
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    x = torch.from_numpy(np.rint(images * (255.0 / 16.0)).astype(np.uint8)).view(-1, 1, 8, 8)
    return x.expand(-1, channels, -1, -1).contiguous(), torch.from_numpy(labels.astype(np.int64)), labels


def digits_normalisation(channels: int, size: int) -> tuple[list[float], list[float]]:
    """The per-channel mean and std of ``pixel / 255`` the device step standardises with: the training split's,
    at the input size (bilinear)."""
    x, _, labels = digits_uint8(channels)
    train = x[torch.from_numpy(digits_split(labels)[0])].float() / 255.0
    if size != 8:
        train = F.interpolate(train, size=(size, size), mode="bilinear", align_corners=False)
    mean, std = channel_stats(train)
    return mean.flatten().tolist(), std.flatten().tolist()


def digits_preprocessing(spec: object, channels: int, size: int) -> dict[str, object]:
    """What an exported digits model expects (the ``preprocessing`` of the digits dataset kind)."""
    return dark_ground_preprocessing(*digits_normalisation(channels, size), "the UCI digits")


def load_digits_splits(channels: int, size: int) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """The train/val/test model inputs as evaluation sees them (the device step without augmentation), labels."""
    x, y, labels = digits_uint8(channels)
    mean, std = digits_normalisation(channels, size)
    prepare = DeviceBatch(mean, std, size)
    parts = [torch.from_numpy(p) for p in digits_split(labels)]
    return tuple(prepare(x[p], training=False) for p in parts), tuple(y[p] for p in parts)


def _load(request: DataRequest) -> tuple[TensorDataset, TensorDataset, TensorDataset]:
    """The splits as uint8 ``(N, channels, 8, 8)`` images and int64 labels."""
    x, y, labels = digits_uint8(request.channels)
    parts = [torch.from_numpy(p) for p in digits_split(labels)]
    return tensor_splits(tuple(x[p] for p in parts), tuple(y[p] for p in parts))  # type: ignore[arg-type]


def _prepare(request: DataRequest, splits: Splits) -> DeviceBatch:
    """The device step: shifts of up to a pixel at 8 px (training), the input size, the training statistics."""
    mean, std = digits_normalisation(request.channels, request.size)
    # partials of module functions, not closures: DDP-spawned ranks receive the DataModule pickled
    shift = partial(random_shift_flip, max_shift=1, flip=False) if request.data.augment else None
    return DeviceBatch(mean, std, request.size, augment=shift, recipe=request.image_recipe())


def digits_datamodule(request: DataRequest) -> L.LightningDataModule:
    check_classes(10, request, "the digits dataset")
    return TensorDataModule(
        partial(_load, request), request.batch_size, request.seed, prepare=partial(_prepare, request)
    )
