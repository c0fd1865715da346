"""A local image tree ``root/{train,val[,test]}/CLASS/*.png|jpg`` read with Pillow."""

from __future__ import annotations

import random
from functools import partial
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import Dataset

from archdsl.datasets.image_folder import EXTENSIONS, folder_classes, per_channel
from archdsl.errors import SpecError
from archdsl.train.data.base import DataRequest, TensorDataModule, check_classes

__all__ = ["ImageFolder", "list_image_folder"]


def list_image_folder(split_dir: Path, classes: list[str] | None = None) -> tuple[list[tuple[Path, int]], list[str]]:
    """Sorted (file, class index) pairs; classes are the sorted sub-directory names."""
    if classes is None:
        classes = folder_classes(split_dir)
    items = [
        (f, i)
        for i, c in enumerate(classes)
        if (split_dir / c).is_dir()
        for f in sorted((split_dir / c).iterdir())
        if f.suffix.lower() in EXTENSIONS
    ]
    return items, classes


class ImageFolder(Dataset[tuple[torch.Tensor, int]]):
    """Decode, resize/crop, flip and normalise images; ``train`` enables random crops and flips."""

    def __init__(
        self,
        items: list[tuple[Path, int]],
        size: int,
        channels: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        train: bool,
    ) -> None:
        self.items, self.size, self.channels, self.train = items, size, channels, train
        self.mean = torch.tensor(per_channel(mean, channels)).view(channels, 1, 1)
        self.std = torch.tensor(per_channel(std, channels)).view(channels, 1, 1)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        path, label = self.items[i]
        with Image.open(path) as file:
            img = file.convert("L" if self.channels == 1 else "RGB")
            img = self._random_resized_crop(img) if self.train else self._center_crop(img)
        arr = np.asarray(img, dtype=np.float32) / 255.0
        x = torch.from_numpy(arr).view(self.size, self.size, -1).permute(2, 0, 1)  # (H, W, C) -> (C, H, W)
        if self.train and random.random() < 0.5:
            x = x.flip(-1)
        return (x - self.mean) / self.std, label

    def _center_crop(self, img: Any) -> Any:
        from PIL import Image

        w, h = img.size
        scale = self.size / 0.875 / min(w, h)
        img = img.resize(
            (max(self.size, round(w * scale)), max(self.size, round(h * scale))), Image.Resampling.BILINEAR
        )
        w, h = img.size
        left, top = (w - self.size) // 2, (h - self.size) // 2
        return img.crop((left, top, left + self.size, top + self.size))

    def _random_resized_crop(self, img: Any) -> Any:
        from PIL import Image

        w, h = img.size
        area = w * h * random.uniform(0.35, 1.0)
        ratio = np.exp(random.uniform(np.log(3 / 4), np.log(4 / 3)))
        cw = min(w, max(1, round((area * ratio) ** 0.5)))
        ch = min(h, max(1, round((area / ratio) ** 0.5)))
        left, top = random.randint(0, w - cw), random.randint(0, h - ch)
        return img.resize((self.size, self.size), Image.Resampling.BILINEAR, box=(left, top, left + cw, top + ch))


def image_folder_datamodule(request: DataRequest) -> L.LightningDataModule:
    spec = request.data
    root = Path(spec.root).expanduser()
    if not (root / "train").is_dir() or not (root / "val").is_dir():
        raise SpecError.at("train.data.root", f"must hold train/CLASS/*.png|jpg and val/CLASS/..., got '{spec.root}'")
    train_items, classes = list_image_folder(root / "train")
    if not train_items:
        raise SpecError.at("train.data.root", f"no images under '{root / 'train'}'")
    check_classes(len(classes), request, f"the image folder '{spec.root}'")

    return TensorDataModule(
        partial(_load, request, root, train_items, classes), request.batch_size, request.seed, None, spec.num_workers
    )


def _load(request: DataRequest, root: Path, train_items: list[Any], classes: list[str]) -> tuple[Any, Any, Any]:
    spec = request.data
    val_items, _ = list_image_folder(root / "val", classes)
    test_dir = root / "test"
    test_items = list_image_folder(test_dir, classes)[0] if test_dir.is_dir() else val_items
    args = (request.size, request.channels, spec.mean, spec.std)
    return (
        ImageFolder(train_items, *args, train=spec.augment),
        ImageFolder(val_items, *args, train=False),
        ImageFolder(test_items, *args, train=False),
    )
