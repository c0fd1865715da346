"""Top-k predictions of an exported model for image files, with the manifest's preprocessing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from archdsl.errors import UsageError
from archdsl.export.artifact import load_model
from archdsl.export.verify import read_manifest

__all__ = ["Prediction", "inverts", "predict_images", "preprocess"]


@dataclass(frozen=True)
class Prediction:
    image: str
    top: list[tuple[str, float]]


FILTERS = {"bilinear": "BILINEAR", "bicubic": "BICUBIC", "nearest": "NEAREST", "lanczos": "LANCZOS"}


def manifest_invert(prep: dict) -> str:
    """The manifest's ``invert`` as ``auto``/``yes``/``no`` (earlier artifacts wrote a bool)."""
    value = prep.get("invert", "no")
    return ("yes" if value else "no") if isinstance(value, bool) else str(value)


def inverts(arr: np.ndarray, prep: dict, invert: str) -> bool:
    """Whether to invert an image scaled to [0, 1]: ``auto`` when its border (the background) is light and the
    training images' background is dark, or the other way round."""
    if invert != "auto":
        return invert == "yes"
    background = prep.get("background")
    if background not in ("dark", "light"):
        return False
    border = np.concatenate([arr[0].ravel(), arr[-1].ravel(), arr[:, 0].ravel(), arr[:, -1].ravel()])
    return bool((float(border.mean()) > 0.5) == (background == "dark"))


def preprocess(path: str | Path, prep: dict, invert: str | None = None) -> torch.Tensor:
    """Image file -> normalised (C, H, W) tensor as the manifest says; ``invert`` overrides the manifest's."""
    from PIL import Image

    height, width = prep["resize"]
    resample = getattr(Image.Resampling, FILTERS[prep.get("resize_filter", "bilinear")])
    try:
        with Image.open(path) as file:
            img = file.convert("L" if prep["channels"] == 1 else "RGB").resize((width, height), resample)
            arr = np.asarray(img, dtype=np.float32) / 255.0
    except OSError as err:  # missing, unreadable, or not an image
        raise UsageError.option("IMAGE", f"cannot read {path}: {err.strerror or err}") from None
    if inverts(arr, prep, invert or manifest_invert(prep)):
        arr = 1.0 - arr
    x = torch.from_numpy(arr).reshape(prep["resize"][0], prep["resize"][1], -1).permute(2, 0, 1)  # (C, H, W)
    x = x.expand(prep["channels"], -1, -1)
    mean = torch.tensor(prep["mean"]).view(-1, 1, 1)
    std = torch.tensor(prep["std"]).view(-1, 1, 1)
    return (x - mean) / std


@torch.no_grad()
def predict_images(
    directory: str | Path, images: list[str], k: int = 5, invert: str | None = None, trust: bool = False
) -> list[Prediction]:
    """Top-``k`` classes per image; ``invert`` (``auto``/``yes``/``no``) overrides the manifest's. The artifact
    is checked against its manifest first (``trust=True`` skips the check)."""
    model = load_model(directory, trust)
    manifest = read_manifest(Path(directory))
    batch = torch.stack([preprocess(p, manifest["preprocessing"], invert) for p in images])
    probs = model(batch).softmax(dim=1)
    k = min(k, probs.shape[1])
    values, indices = probs.topk(k, dim=1)
    names = manifest["class_names"]
    return [
        Prediction(img, [(names[i], float(v)) for v, i in zip(vals.tolist(), idx.tolist(), strict=True)])
        for img, vals, idx in zip(images, values, indices, strict=True)
    ]
