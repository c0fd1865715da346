"""Registered datasets: one file per dataset (spec, preprocessing, class names; no torch), each naming
the DataModule in ``archdsl.train.data`` that reads it; importing this package registers them."""

from archdsl.kinds import import_submodules

import_submodules(__name__)
