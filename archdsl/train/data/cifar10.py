"""CIFAR-10 from a local directory in the standard python pickle format; nothing is downloaded.

The pickles are read with an unpickler that only rebuilds numpy arrays, lists, dicts and bytes, so a
tampered file cannot execute code. The images stay as they are stored, uint8 at 32 px (184 MB for the
60,000; float32 at 224 px would be 36 GB per trial and per rank): each batch is gathered in memory, sent to
the device as uint8, and there shifted and flipped (training, at 32 px), resized to the input size and
standardised with the training split's per-channel statistics
(:class:`~archdsl.train.data.device_batch.DeviceBatch`).
"""

from __future__ import annotations

import pickle
from functools import partial
from pathlib import Path
from typing import Any

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
    random_shift_flip,
    tensor_splits,
)
from archdsl.train.data.device_batch import DeviceBatch

__all__ = ["PAD", "cifar10_datamodule", "cifar10_preprocessing", "pixel_stats", "read_cifar10"]

PAD = 4
"""Training shift: up to this many pixels each way at 32 px (edges replicated)."""
STATS_CHUNK = 1024

TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with path.open("rb") as f:
        d = _SafeUnpickler(f, encoding="bytes").load()
    data = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return data, np.asarray(d[b"labels"], dtype=np.int64)


def _root(root: str) -> Path:
    base = Path(root).expanduser()
    for cand in (base, base / "cifar-10-batches-py"):
        if all((cand / f).is_file() for f in (*TRAIN_FILES, TEST_FILE)):
            return cand
    raise SpecError.at(
        "train.data.root",
        f"must be a directory holding the CIFAR-10 python batches ({', '.join(TRAIN_FILES)}, {TEST_FILE}) "
        f"directly or in cifar-10-batches-py/; nothing is downloaded, got '{root}'",
    )


def read_cifar10(root: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train images, train labels, test images, test labels) as uint8 NCHW / int64."""
    base = _root(root)
    try:
        parts = [_batch(base / f) for f in TRAIN_FILES]
        test_x, test_y = _batch(base / TEST_FILE)
    except (pickle.UnpicklingError, KeyError, ValueError, EOFError) as exc:
        raise SpecError.at("train.data.root", f"is not in the CIFAR-10 python format: {exc}") from None
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), test_x, test_y


def pixel_stats(images: torch.Tensor, grey: bool) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of ``pixel / 255`` over uint8 ``(N, 3, H, W)`` images (their RGB
    average when ``grey``), accumulated in float64 a chunk at a time: never a float copy of the whole set."""
    total = squares = torch.zeros(1 if grey else images.shape[1], dtype=torch.float64)
    count = 0
    for chunk in images.split(STATS_CHUNK):
        x = chunk.float().div_(255.0)
        if grey:
            x = x.mean(1, keepdim=True)
        total = total + x.sum((2, 3)).double().sum(0)  # per image in float32, across images in float64
        squares = squares + x.square_().sum((2, 3)).double().sum(0)
        count += x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / max(count, 1)
    var = (squares - count * mean.square()) / max(count - 1, 1)
    return mean.tolist(), var.clamp_min(1e-12).sqrt().clamp_min(1e-6).tolist()


def _split(y: np.ndarray, val_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation indices of the 50,000 training images (stratified, seed 0)."""
    from sklearn.model_selection import train_test_split

    val_size = min(val_size, len(y) // 2)
    stratify = y if len(np.unique(y)) * 2 <= val_size else None
    tr, va = train_test_split(np.arange(len(y)), test_size=val_size, stratify=stratify, random_state=0)
    return tr, va


def cifar10_preprocessing(spec: Any, channels: int, size: int) -> dict[str, object]:
    """What an exported CIFAR-10 model expects: the statistics the DataModule standardised with (its training
    split's, read again from ``spec.root``)."""
    x, y, _, _ = read_cifar10(spec.root)
    tr, _ = _split(y, spec.val_size)
    mean, std = pixel_stats(torch.from_numpy(x[tr]), grey=channels == 1)
    return {"scale": "pixel / 255", "mean": mean, "std": std, "invert": "no"}


def _load(request: DataRequest) -> tuple[TensorDataset, TensorDataset, TensorDataset]:
    """The splits as uint8 ``(N, 3, 32, 32)`` images (numpy's memory, shared, not copied) and int64 labels."""
    x, y, tx, ty = read_cifar10(request.data.root)
    tr, va = _split(y, request.data.val_size)
    xs = (torch.from_numpy(x[tr]), torch.from_numpy(x[va]), torch.from_numpy(tx))
    ys = (torch.from_numpy(y[tr]), torch.from_numpy(y[va]), torch.from_numpy(ty))
    return tensor_splits(xs, ys)  # type: ignore[arg-type]


def _prepare(request: DataRequest, splits: Splits) -> DeviceBatch:
    """The device step: the training split's statistics, the input size, the 32-px shift and flip."""
    grey = request.channels == 1
    train = splits[0]
    assert isinstance(train, TensorDataset)
    mean, std = pixel_stats(train.tensors[0], grey)
    augment = partial(random_shift_flip, max_shift=PAD, flip=True) if request.data.augment else None
    return DeviceBatch(mean, std, request.size, grey=grey, augment=augment, recipe=request.image_recipe())


def cifar10_datamodule(request: DataRequest) -> L.LightningDataModule:
    check_classes(10, request, "CIFAR-10")
    spec = request.data
    _root(spec.root)  # fail early, before training starts
    if request.channels not in (1, 3):
        raise SpecError.at("input.channels", f"CIFAR-10 images have 3 channels (or 1 as grey), got {request.channels}")
    workers = 0 if spec.num_workers == "auto" else spec.num_workers
    return TensorDataModule(
        partial(_load, request), request.batch_size, request.seed, None, workers, prepare=partial(_prepare, request)
    )
