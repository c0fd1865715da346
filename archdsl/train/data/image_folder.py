"""A local image tree ``root/{train,val[,test]}/CLASS/*.jpg|png``: decoded in loader workers, finished on the device.

A worker reads a file, picks the crop from the header's size alone (training: a random resized crop,
:func:`~archdsl.train.data.crops.random_resized_box`; evaluation: the centred 87.5 % square), decodes the image
no larger than that crop needs (:mod:`archdsl.train.data.decode`: libjpeg-turbo scales JPEGs in the DCT),
resizes the crop once to the input size (bilinear, antialiased, on uint8) and writes it into the batch, which
it hands over as uint8. Flips and standardisation then run on the device, per batch
(:class:`~archdsl.train.data.device_batch.DeviceBatch`). The file list comes from the cached index
(:mod:`archdsl.train.data.file_index`), so only the first trial on a tree lists it.
"""

from __future__ import annotations

import math
import os
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, get_worker_info

from archdsl.datasets.image_folder import per_channel
from archdsl.errors import SpecError
from archdsl.train.data.base import (
    DataRequest,
    PrepareBatch,
    Splits,
    TensorDataModule,
    WholeBatches,
    check_classes,
    random_shift_flip,
)
from archdsl.train.data.crops import center_box, random_resized_box, snap
from archdsl.train.data.decode import Encoded, reduction
from archdsl.train.data.device_batch import DeviceBatch
from archdsl.train.data.file_index import FileIndex, split_index

__all__ = ["PREFETCH_BATCHES", "ImageFolder", "image_folder_datamodule"]

PREFETCH_BATCHES = 4
"""Batches each loader worker keeps in flight."""


class ImageFolder(Dataset[tuple[torch.Tensor, int]], WholeBatches):
    """The files of ``classes`` in one split, as uint8 ``(channels, size, size)`` crops; ``train`` picks random
    resized crops, otherwise the centred square. A batch (``__getitems__``) is one uint8 tensor and the labels."""

    def __init__(self, index: FileIndex, classes: list[str], size: int, channels: int, train: bool) -> None:
        self.index, self.classes, self.size, self.channels, self.train = index, classes, size, channels, train
        self.files, self.labels = index.files_of(classes)

    def __len__(self) -> int:
        return len(self.files)

    def path(self, i: int) -> str:
        """The file of sample ``i``."""
        return os.path.join(
            self.index.split_dir, self.classes[int(self.labels[i])], self.index.name(int(self.files[i]))
        )

    def image(self, i: int) -> torch.Tensor:
        """Sample ``i`` as uint8 ``(channels, size, size)``."""
        path = self.path(i)
        with open(path, "rb") as f:
            encoded = Encoded(f.read(), path)
        width, height = encoded.width, encoded.height
        box = random_resized_box(width, height) if self.train else center_box(width, height)
        step = reduction(box[2], box[3], self.size)
        left, top, w, h = snap(box, step, width, height)
        pixels = encoded.decode(self.channels == 1, step)  # (H', W', C): reduced by step where the format allows
        k = _decoded_scale(pixels.shape[:2], width, height, step, path)  # the box is a multiple of it
        kept = pixels[top // k : (top + h) // k, left // k : (left + w) // k]
        crop = torch.from_numpy(kept).permute(2, 0, 1)[None]  # (1, C, h, w), a view
        if crop.shape[-2:] != (self.size, self.size):
            crop = F.interpolate(crop, size=(self.size, self.size), mode="bilinear", antialias=True)
        return crop[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.image(i), int(self.labels[i])

    def __getitems__(self, indices: list[int]) -> list[torch.Tensor]:
        out = torch.empty(len(indices), self.channels, self.size, self.size, dtype=torch.uint8)
        if get_worker_info() is not None:  # in a loader worker: the batch leaves through shared memory
            out.share_memory_()
        for k, i in enumerate(indices):
            out[k] = self.image(i)
        return [out, torch.from_numpy(self.labels[np.asarray(indices, dtype=np.int64)])]


def _decoded_scale(shape: tuple[int, ...], width: int, height: int, step: int, path: str) -> int:
    """1 when the image was decoded whole, ``step`` when the decoder scaled it (a JPEG), else an error."""
    if tuple(shape) == (height, width):
        return 1
    if tuple(shape) == (math.ceil(height / step), math.ceil(width / step)):
        return step
    raise ValueError(f"{path}: decoded {shape[1]}x{shape[0]}, but its header says {width}x{height}")


def _fixed(prepare: PrepareBatch, splits: Splits) -> PrepareBatch:
    return prepare


def image_folder_datamodule(request: DataRequest) -> L.LightningDataModule:
    spec = request.data
    root = Path(spec.root).expanduser()
    if not (root / "train").is_dir() or not (root / "val").is_dir():
        raise SpecError.at("train.data.root", f"must hold train/CLASS/*.png|jpg and val/CLASS/..., got '{spec.root}'")
    if request.channels not in (1, 3):
        raise SpecError.at("input.channels", f"image folders are read as RGB (3) or grey (1), got {request.channels}")
    train = split_index(root / "train")
    if not len(train):
        raise SpecError.at("train.data.root", f"no images under '{root / 'train'}'")
    classes = list(train.classes)
    check_classes(len(classes), request, f"the image folder '{spec.root}'")
    c = request.channels
    # partials of module functions, not closures: DDP-spawned ranks receive the DataModule pickled
    flip = partial(random_shift_flip, max_shift=0, flip=True) if spec.augment else None
    prepare = DeviceBatch(
        per_channel(spec.mean, c), per_channel(spec.std, c), request.size, augment=flip, recipe=request.image_recipe()
    )
    return TensorDataModule(
        partial(_load, request, root, train, classes),
        request.batch_size,
        request.seed,
        num_workers=spec.num_workers,
        prepare=partial(_fixed, prepare),
        prefetch_factor=PREFETCH_BATCHES,
    )


def _load(request: DataRequest, root: Path, train: FileIndex, classes: list[str]) -> tuple[Any, Any, Any]:
    spec = request.data
    val = split_index(root / "val")
    test = split_index(root / "test") if (root / "test").is_dir() else val
    args = (classes, request.size, request.channels)
    return (
        ImageFolder(train, *args, train=spec.augment),
        ImageFolder(val, *args, False),
        ImageFolder(test, *args, False),
    )
