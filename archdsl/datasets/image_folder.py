"""A local image tree ``root/{train,val[,test]}/CLASS/*.jpg|png``: JPEGs by libjpeg-turbo, the rest by Pillow."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field

from archdsl.datasets.defaults import numbered_classes
from archdsl.kinds import DATASETS, DatasetKind
from archdsl.spec.base import DataSpecBase

__all__ = ["ImageFolderData", "folder_classes", "per_channel"]

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


class ImageFolderData(DataSpecBase):
    """A local tree ``root/{train,val[,test]}/CLASS/*.jpg|png``, decoded in loader workers, finished on the device."""

    name: Literal["image_folder"]
    root: str = Field(min_length=1)
    """Directory holding ``train/`` and ``val/`` (``test/`` optional; val is used when absent)."""
    mean: tuple[float, float, float] = Field((0.485, 0.456, 0.406), strict=False)
    """Per-channel mean after scaling to [0, 1]."""
    std: tuple[float, float, float] = Field((0.229, 0.224, 0.225), strict=False)
    """Per-channel standard deviation."""
    augment: bool = True
    """Random resized crop (35-100 % of the area, aspect 3:4 to 4:3) and horizontal flip during training."""
    num_workers: Annotated[int, Field(ge=0, le=1024)] | Literal["auto"] = "auto"
    """DataLoader worker processes; ``auto``: the CPUs this process may use (its share under ``search --workers``)."""


def folder_classes(split_dir: Path) -> list[str]:
    """The class names of a split: its sorted sub-directory names."""
    return sorted(d.name for d in split_dir.iterdir() if d.is_dir())


def _class_names(spec: ImageFolderData, n: int) -> list[str]:
    root = Path(spec.root).expanduser() / "train"
    return folder_classes(root) if root.is_dir() else numbered_classes(spec, n)


def per_channel(values: tuple[float, ...] | list[float], channels: int) -> list[float]:
    """One value per channel: the first ``channels`` of ``values``, cycled when there are fewer."""
    return list((tuple(values) * channels)[:channels])


def preprocessing(spec: ImageFolderData, channels: int, size: int) -> dict[str, Any]:
    return {
        "scale": "pixel / 255",
        "mean": per_channel(spec.mean, channels),
        "std": per_channel(spec.std, channels),
        "invert": "no",
    }


DATASETS.add(
    DatasetKind.of(
        ImageFolderData,
        "archdsl.train.data.image_folder:image_folder_datamodule",
        "archdsl.datasets.image_folder:preprocessing",
        _class_names,
    ),
)
