"""Registered blocks: one file per type (spec and shape rule, no torch); importing this package registers them."""

from archdsl.kinds import import_submodules

import_submodules(__name__)
