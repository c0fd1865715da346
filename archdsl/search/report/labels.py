"""Short names of search parameters for plots and tables: the part of the path that tells them apart.

``stages.*.blocks.*.mixer.halo_size`` -> ``halo_size``; ``stem.kernel_size`` and
``stages.*.blocks.*.mixer.kernel_size`` -> ``stem.kernel_size`` and ``mixer.kernel_size``;
``stages.2.channels`` -> ``stage 2 channels`` (stages numbered as in spec paths, from 0);
``stages.*.blocks.1`` (a block chosen by name) -> ``blocks.1``.
"""

from __future__ import annotations

import re

__all__ = ["short_labels"]

_STAGE = re.compile(r"^stages\.(\d+)\.")


def _parts(name: str) -> list[str]:
    """Dotted parts without wildcards and list indices (``0[bottleneck]`` keeps ``[bottleneck]``), except a
    last index, which stays with the part it picks from (``stages.*.blocks.1`` -> ``stages``, ``blocks.1``)."""
    parts = re.split(r"\.(?![^\[]*\])", name)
    if len(parts) > 1 and parts[-1].isdigit():
        parts = [*parts[:-2], f"{parts[-2]}.{parts[-1]}"]
    return [q for q in (re.sub(r"^\d+", "", p) for p in parts if p != "*") if q]


def _label(name: str, k: int) -> str:
    stage = _STAGE.match(name)
    suffix = ".".join(_parts(name)[-k:])
    return f"stage {stage.group(1)} {suffix}" if stage else suffix


def short_labels(names: list[str]) -> dict[str, str]:
    """Each name -> its shortest label that no other name shares: the last dotted parts (wildcards and
    indices left out), led by ``stage N`` for a name that picks one stage; the full name where none is."""
    labels: dict[str, str] = {}
    for name in names:
        labels[name] = name
        for k in range(1, len(_parts(name)) + 1):
            label = _label(name, k)
            if all(_label(other, k) != label for other in names if other != name):
                labels[name] = label
                break
    if len(set(labels.values())) < len(labels):
        return {n: n for n in names}
    return labels
