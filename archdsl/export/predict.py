"""Top-k predictions of an exported model for image files, with the manifest's preprocessing."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from archdsl.export.artifact import MANIFEST, load_model

__all__ = ["Prediction", "predict_images", "preprocess"]


@dataclass(frozen=True)
class Prediction:
    image: str
    top: list[tuple[str, float]]


def preprocess(path: str | Path, prep: dict) -> torch.Tensor:
    """Image file -> normalised (C, H, W) tensor as the manifest says."""
    from PIL import Image

    height, width = prep["resize"]
    with Image.open(path) as file:
        img = file.convert("L" if prep["channels"] == 1 else "RGB").resize((width, height), Image.Resampling.BILINEAR)
        arr = np.asarray(img, dtype=np.float32) / 255.0
    if prep.get("invert"):
        arr = 1.0 - arr
    x = torch.from_numpy(arr).reshape(prep["resize"][0], prep["resize"][1], -1).permute(2, 0, 1)  # (C, H, W)
    x = x.expand(prep["channels"], -1, -1)
    mean = torch.tensor(prep["mean"]).view(-1, 1, 1)
    std = torch.tensor(prep["std"]).view(-1, 1, 1)
    return (x - mean) / std


@torch.no_grad()
def predict_images(directory: str | Path, images: list[str], k: int = 5) -> list[Prediction]:
    manifest = json.loads((Path(directory) / MANIFEST).read_text())
    model = load_model(directory)
    batch = torch.stack([preprocess(p, manifest["preprocessing"]) for p in images])
    probs = model(batch).softmax(dim=1)
    k = min(k, probs.shape[1])
    values, indices = probs.topk(k, dim=1)
    names = manifest["class_names"]
    return [
        Prediction(img, [(names[i], float(v)) for v, i in zip(vals.tolist(), idx.tolist(), strict=True)])
        for img, vals, idx in zip(images, values, indices, strict=True)
    ]
