"""DataModules of the registered datasets (``archdsl/datasets``): one file per dataset, imported only to train."""

from __future__ import annotations

from archdsl.train.data.base import DataRequest, make_datamodule

__all__ = ["DataRequest", "make_datamodule"]
