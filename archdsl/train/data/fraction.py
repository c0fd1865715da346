"""``train.data.fraction``: train on a stratified, seeded subset of the training split.

Every class keeps its share of the subset (largest-remainder rounding of ``count x fraction``, at least one
image per class), the first of each class's images in an order drawn by a generator seeded with
``train.seed``: the same seed always trains on the same images, and a larger fraction holds every image of a
smaller one (the rungs of ``pruner.fidelity: data`` add data, they do not swap it). Validation
and test splits stay whole, and the device step keeps the statistics of the whole training split (what an
exported model's ``preprocessing`` says). Applied once, by :class:`~archdsl.train.data.base.TensorDataModule`
(:func:`~archdsl.train.data.base.subset`), to any split that knows its labels: a tensor split (its last
tensor) or one with a ``labels`` array.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch.utils.data import Dataset, TensorDataset

from archdsl.errors import SpecError

__all__ = ["fraction_indices", "split_labels", "train_fraction"]

FIELD = "train.data.fraction"


def fraction_indices(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of a stratified ``fraction`` of ``labels``: ``round(len(labels) x fraction)`` of them (at
    least one per class), each class's share by largest remainder, drawn with ``seed``."""
    labels = np.asarray(labels)
    classes, counts = np.unique(labels, return_counts=True)
    total = max(len(classes), min(len(labels), round(len(labels) * fraction)))
    quotas = counts * (total / len(labels))
    take = np.maximum(np.floor(quotas).astype(np.int64), 1)
    short = total - int(take.sum())
    if short > 0:  # the largest remainders get one more image (ties: the first classes)
        order = np.argsort(-(quotas - np.floor(quotas)), kind="stable")
        order = order[take[order] < counts[order]]
        take[order[:short]] += 1
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take, strict=True)]
    return np.sort(np.concatenate(picked))


def split_labels(split: Dataset[Any]) -> np.ndarray | None:
    """The class labels of a split: a tensor split's last tensor when it holds integers, else its ``labels``
    array; None when it has neither."""
    if isinstance(split, TensorDataset):
        last = split.tensors[-1]
        if last.ndim == 1 and not last.is_floating_point() and not last.is_complex():
            return np.asarray(last.numpy())
        return None
    labels = getattr(split, "labels", None)
    return np.asarray(labels) if labels is not None and len(labels) == len(split) else None  # type: ignore[arg-type]


def train_fraction(split: Dataset[Any], fraction: float, seed: int) -> np.ndarray:
    """The indices of the stratified ``fraction`` of a training split (:func:`fraction_indices` of its labels);
    a located error when the split has no labels."""
    labels = split_labels(split)
    if labels is None:
        raise SpecError.at(
            FIELD, f"needs class labels in the training split, and this one ({type(split).__name__}) has none"
        )
    return fraction_indices(labels, fraction, seed)
