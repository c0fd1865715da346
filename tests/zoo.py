"""The zoo's specs, and one representative per combination of kinds and options.

Two specs that use the same kinds with the same string and boolean options (``type``, ``norm``, ``act``,
``pos``...) run the same code: they differ only in sizes and depths. Checks whose cost grows with a model's
size but whose outcome depends on its code (graph breaks under ``torch.compile``, the exported source's
outputs) run on the cheapest spec of each combination; checks of sizes (counts, shapes) run on every spec.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import archdsl
from archdsl.spec.load import spec_to_data

SPECS = sorted((Path(__file__).resolve().parent.parent / "specs").glob("*.yaml"))


def code_signature(data: Any, out: set[tuple[str, object]] | None = None) -> frozenset[tuple[str, object]]:
    """The (key, value) pairs of every string, boolean or null option of a spec's model (not its name or
    training settings): what selects code, as opposed to sizes."""
    out = set() if out is None else out
    if isinstance(data, dict):
        for key, value in data.items():
            if key in ("name", "train"):
                continue
            if isinstance(value, str | bool) or value is None:
                out.add((key, value))
            else:
                code_signature(value, out)
    elif isinstance(data, list):
        for value in data:
            code_signature(value, out)
    return frozenset(out)


@cache
def representatives() -> tuple[Path, ...]:
    """The spec with the fewest FLOPs of each code signature, in file order."""
    best: dict[frozenset[tuple[str, object]], tuple[int, Path]] = {}
    for path in SPECS:
        spec = archdsl.load_spec(path)
        key, flops = code_signature(spec_to_data(spec)), archdsl.plan_model(spec).flops
        if key not in best or flops < best[key][0]:
            best[key] = (flops, path)
    return tuple(sorted(path for _, path in best.values()))
