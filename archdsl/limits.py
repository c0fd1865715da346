"""Ceilings on what a file may make archdsl read, expand or count before anything proportional to it happens.

Each ceiling has a default that is far above any real spec or search file and can be raised (or lowered)
through the environment: ``ARCHDSL_MAX_<NAME>=N``. A value over its ceiling is refused with a located error
that names the value, the ceiling and the variable that raises it, before the work it would cost is done.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from archdsl.errors import UsageError

__all__ = [
    "ACTIVATION_BYTES",
    "FILE_BYTES",
    "GRID_POINTS",
    "INT_DIGITS",
    "PARAMS",
    "YAML_DEPTH",
    "YAML_NODES",
    "Limit",
]


@dataclass(frozen=True)
class Limit:
    """One ceiling: its name (``ARCHDSL_MAX_<NAME>``), default and unit."""

    name: str
    default: int
    unit: str

    @property
    def env(self) -> str:
        return f"ARCHDSL_MAX_{self.name.upper()}"

    @property
    def value(self) -> int:
        """The ceiling in force: the environment's value, else the default."""
        raw = os.environ.get(self.env)
        if raw is None or raw.strip() == "":
            return self.default
        try:
            value = int(raw.replace("_", ""))
        except ValueError:
            value = 0
        if value < 1:
            raise UsageError.at(self.env, f"must be a positive integer ({self.unit}), got {raw[:40]!r}")
        return value

    def over(self, given: int) -> str:
        """``"20,971,520 bytes, over the ceiling of 1,048,576 (raise it with ARCHDSL_MAX_FILE_BYTES=N)"``."""
        return f"{given:,} {self.unit}, over the ceiling of {self.value:,} (raise it with {self.env}=N)"


FILE_BYTES = Limit("file_bytes", 1 << 20, "bytes")
"""Size of one YAML file (a spec or search file, a search's base spec); the zoo's largest is under 3 KB."""
YAML_NODES = Limit("yaml_nodes", 200_000, "YAML nodes")
"""Nodes of one document once aliases and merge keys are expanded (each expansion counts again)."""
YAML_DEPTH = Limit("yaml_depth", 64, "levels")
"""Nesting of mappings and lists in one document."""
INT_DIGITS = Limit("int_digits", 24, "digits")
"""Digits of one integer written in YAML (10^24 is far beyond any count, seed or budget)."""

GRID_POINTS = Limit("grid_points", 1_000_000, "grid points")
"""Points of a grid sampler's Cartesian product (Optuna's grid sampler holds them all in memory)."""
PARAMS = Limit("params", 5_000_000_000, "parameters")
"""Parameters of one planned model (20 GB of float32 weights; VOLO-D5, the zoo's largest, has 0.3 billion)."""

ACTIVATION_BYTES = Limit("activation_bytes", 1 << 40, "bytes")
"""A lower bound of the activations one training step keeps: every part's float32 output at the spec's batch
size (HaloNet-H7 at 640 px and batch 64 keeps 16 GiB by this count)."""
