"""CIFAR-10 from a local directory in the standard python pickle format; nothing is downloaded.

The pickles are read with an unpickler that only rebuilds numpy arrays, lists, dicts and bytes, so a
tampered file cannot execute code.
"""

from __future__ import annotations

import pickle
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from archdsl.errors import SpecError
from archdsl.train.data.base import (
    DataRequest,
    TensorDataModule,
    channel_stats,
    check_classes,
    normalise_split,
    random_shift_flip,
    tensor_splits,
)

__all__ = ["cifar10_datamodule", "cifar10_preprocessing", "read_cifar10"]

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


def _prep(images: np.ndarray, channels: int, size: int) -> torch.Tensor:
    t = torch.from_numpy(images).float() / 255.0
    if size != 32:
        t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    if channels == 1:
        t = t.mean(1, keepdim=True)
    return t


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
    mean, std = channel_stats(_prep(x[tr], channels, size))
    return {"scale": "pixel / 255", "mean": mean.flatten().tolist(), "std": std.flatten().tolist(), "invert": "no"}


def _load(request: DataRequest) -> tuple[TensorDataset, TensorDataset, TensorDataset]:
    x, y, tx, ty = read_cifar10(request.data.root)
    tr, va = _split(y, request.data.val_size)
    c, n = request.channels, request.size
    xs = normalise_split(_prep(x[tr], c, n), _prep(x[va], c, n), _prep(tx, c, n))
    ys = (torch.from_numpy(y[tr]), torch.from_numpy(y[va]), torch.from_numpy(ty))
    return tensor_splits(xs, ys)  # type: ignore[arg-type]


def cifar10_datamodule(request: DataRequest) -> L.LightningDataModule:
    check_classes(10, request, "CIFAR-10")
    spec = request.data
    _root(spec.root)  # fail early, before training starts
    if request.channels not in (1, 3):
        raise SpecError.at("input.channels", f"CIFAR-10 images have 3 channels (or 1 as grey), got {request.channels}")
    pad = max(1, request.size // 8)
    augment = partial(random_shift_flip, max_shift=pad, flip=True) if spec.augment else None
    return TensorDataModule(partial(_load, request), request.batch_size, request.seed, augment, spec.num_workers)
