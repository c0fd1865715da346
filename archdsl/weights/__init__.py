"""Initial weights from a checkpoint file (``train.init``): read, match by name and shape, copy all or nothing.

``read`` reads safetensors or ``torch.save`` files; ``maps`` says how a checkpoint names each part's tensors
(archdsl's own names, timm's or torchvision's ResNet names, whose per-kind renaming is in ``rules``; the ``timm`` map
reads a file's family from its keys, ``families`` holds ByobNet's and VOLO's names); ``source`` is the record of a
tensor that needs a transform on its way in (timm's per-head kv, a channels-last position embedding); ``match``
pairs file and model tensors and locates every problem at the spec path of its part; ``apply`` copies.
``check`` holds the torch-free checks ``archdsl validate`` makes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from archdsl.lazy import exported, lazy_exports

_API = {
    "archdsl.weights.apply": ("LoadedInit", "init_weights", "load_init"),
    "archdsl.weights.check": ("check_init",),
    "archdsl.weights.match": ("InitMatch", "match_init"),
    "archdsl.weights.read": ("read_checkpoint",),
}
__all__ = exported(_API)
__getattr__ = lazy_exports(__name__, _API)

if TYPE_CHECKING:
    from archdsl.weights.apply import LoadedInit, init_weights, load_init
    from archdsl.weights.check import check_init
    from archdsl.weights.match import InitMatch, match_init
    from archdsl.weights.read import read_checkpoint
