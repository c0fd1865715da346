"""A user's own LightningDataModule, ``module:Class``: imports user code, so only with ``--allow-import``."""

from __future__ import annotations

import importlib

import lightning as L

from archdsl.errors import SpecError
from archdsl.train.data.base import DataRequest


def custom_datamodule(request: DataRequest) -> L.LightningDataModule:
    spec = request.data
    if not request.allow_import:
        raise SpecError.at(
            "train.data.target",
            f"custom data imports user code ('{spec.target}'); a spec alone never executes code: "
            "pass --allow-import on the command line to permit it",
        )
    request.refuse_image_ops("a custom LightningDataModule")
    module_name, _, class_name = spec.target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise SpecError.at("train.data.target", f"cannot import '{spec.target}': {exc}") from None
    module = cls(batch_size=request.batch_size, **spec.kwargs)
    if not isinstance(module, L.LightningDataModule):
        raise SpecError.at("train.data.target", f"'{spec.target}' must be a LightningDataModule subclass")
    return module
