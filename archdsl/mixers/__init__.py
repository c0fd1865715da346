"""Registered mixers: one file per type; importing this package registers them all."""

from archdsl.plan.kind import import_submodules

import_submodules(__name__)
