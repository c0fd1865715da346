"""DataModules chosen by ``train.data.name``; one file per dataset, each registers a factory."""

from __future__ import annotations

from archdsl.plan.kind import import_submodules
from archdsl.train.data.base import DATASETS, DataRequest, make_datamodule

__all__ = ["DATASETS", "DataRequest", "make_datamodule"]

import_submodules(__name__)
