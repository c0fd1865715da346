"""HaloNet's training-component rows as a search parameter: ``components`` = one row of the paper's table.

A row is the base spec with some of four components switched on (:data:`COMPONENT_ROWS`, the rows of
:data:`archdsl.plan.published.HALONET_COMPONENTS`):

- ``LS``: ``train.label_smoothing`` 0.1 (the paper's); without it 0, whatever the base says.
- ``RA``: ``train.augment.randaugment`` as the base spec (after the search file's ``set:``) writes it, else
  2 operations at magnitude 9 (std 0.5), timm's ImageNet setting; without RA no RandAugment. A dataset whose
  images the ImageNet setting destroys says its own: ``search/components_digits.yaml`` sets magnitude 5 and
  leaves out ``invert``, ``solarize`` and ``solarize_add`` (solarizing blanks a white stroke; at 9 a shift
  moves a digit 40 % of its side, out of its frame).
- ``SE``: squeeze-and-excitation with reduction 16 on every block that takes attached attention (the
  bottlenecks, attention mixers included): the SE paper's r = 16, which timm's SE-HaloNet (``sehalonet33ts``)
  keeps (its ``SEModule`` default ``rd_ratio`` 1/16), and :class:`~archdsl.attention.se.SESpec`'s default.
  At the digits widths (64-128 channels) that is 4-8 gate units.
- ``SiLU``: every ReLU of the stem, the blocks, the transitions and the head becomes SiLU (timm's
  ``act_layer='silu'``); the SE module's inner ReLU stays (timm's too).

SE and SiLU are only ever added: a row without them keeps the base spec's blocks, so the base should be the
paper's baseline there (ReLU, no attached attention), as ``specs/digits_search_base.yaml`` is.
"""

from __future__ import annotations

import copy
from typing import Any, NamedTuple

from archdsl.kinds import BLOCKS, HEADS, STEMS, TRANSITIONS, KindRegistry, load_kinds

__all__ = [
    "COMPONENT_ROWS",
    "LABEL_SMOOTHING",
    "RANDAUGMENT",
    "SE_ATTENTION",
    "Components",
    "apply_components",
]

LABEL_SMOOTHING = 0.1
"""``train.label_smoothing`` of the rows with LS (the paper's)."""
RANDAUGMENT: dict[str, Any] = {"num_ops": 2, "magnitude": 9, "magnitude_std": 0.5}
"""``train.augment.randaugment`` of the rows with RA when the base spec writes none (timm's ``rand-m9-mstd0.5``)."""
SE_ATTENTION: dict[str, Any] = {"type": "se", "reduction": 16}
"""``attention`` of every block that takes one, in the rows with SE."""


class Components(NamedTuple):
    """Which components a row switches on."""

    label_smoothing: bool = False
    randaugment: bool = False
    se: bool = False
    silu: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        """The components as the paper names them, in :class:`Components` order."""
        flags = zip(("LS", "RA", "SE", "SiLU"), self, strict=True)
        return tuple(name for name, on in flags if on)


COMPONENT_ROWS: dict[str, Components] = {
    "baseline": Components(),
    "ls": Components(label_smoothing=True),
    "ls_ra": Components(label_smoothing=True, randaugment=True),
    "se": Components(se=True),
    "se_silu": Components(se=True, silu=True),
    "ls_se": Components(label_smoothing=True, se=True),
    "ls_se_silu": Components(label_smoothing=True, se=True, silu=True),
    "ls_se_silu_ra": Components(label_smoothing=True, randaugment=True, se=True, silu=True),
}
"""Row name -> its components, in the paper's order."""


def _kind_field(registry: KindRegistry[Any], part: Any, name: str) -> tuple[bool, Any]:
    """Whether the kind of ``part`` (a mapping with a ``type``) has the field ``name``, and its value there."""
    if not isinstance(part, dict) or not isinstance(part.get("type"), str) or part["type"] not in registry:
        return False, None
    field = registry.get(part["type"]).spec.model_fields.get(name)
    if field is None:
        return False, None
    return True, part.get(name, field.default)


def _parts(data: dict[str, Any]) -> list[tuple[KindRegistry[Any], Any]]:
    """The stem, every stage's transition and blocks, and the head, each with its registry."""
    stages = data.get("stages")
    stages = [s for s in stages if isinstance(s, dict)] if isinstance(stages, list) else []
    blocks = [b for s in stages if isinstance(s.get("blocks"), list) for b in s["blocks"]]
    return [
        (STEMS, data.get("stem")),
        *((TRANSITIONS, s.get("transition")) for s in stages),
        *((BLOCKS, b) for b in blocks),
        (HEADS, data.get("head")),
    ]


def apply_components(data: dict[str, Any], row: str) -> dict[str, Any]:
    """A copy of the spec data ``data`` with the components of the row named ``row`` switched on (the data
    given is left as it is). Raises ``KeyError`` for an unknown row (the search file is checked for them)."""
    components = COMPONENT_ROWS[row]
    load_kinds()
    out = copy.deepcopy(data)
    train = out.setdefault("train", {})
    train["label_smoothing"] = LABEL_SMOOTHING if components.label_smoothing else 0.0
    augment = train.get("augment")
    if components.randaugment:
        augment = train["augment"] = augment if isinstance(augment, dict) else {}
        if not isinstance(augment.get("randaugment"), dict):
            augment["randaugment"] = dict(RANDAUGMENT)
    elif isinstance(augment, dict) and augment.get("randaugment") is not None:
        augment["randaugment"] = None
    for registry, part in _parts(out):
        if components.se and registry is BLOCKS and _kind_field(registry, part, "attention")[0]:
            part["attention"] = dict(SE_ATTENTION)
        has_act, act = _kind_field(registry, part, "act")
        if components.silu and has_act and act == "relu":
            part["act"] = "silu"
    return out
