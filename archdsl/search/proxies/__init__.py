"""Zero-cost NAS proxies: a score of an untrained candidate that predicts its trained accuracy.

Proxies are kinds in a registry (:data:`PROXIES`), one file per kind: ``synflow`` (:mod:`.synflow`),
``naswot`` (:mod:`.naswot`), ``grad_norm`` and ``snip`` (:mod:`.gradients`), and the baselines ``params`` and
``flops`` (:mod:`.counts`); :mod:`.kinds` registers them all. A candidate is scored on one seeded batch of its
own training split (:func:`load_batch`, cached) by :func:`score`; for every proxy a higher score is predicted
better. ``archdsl rank`` ranks a search space's random samples with them (:mod:`.ranking`).

Loaded lazily: importing ``archdsl.search.proxies`` imports neither Optuna nor torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from archdsl.lazy import exported, lazy_exports

_EXPORTS = {
    "archdsl.search.proxies.batch": ("ProxyBatch", "load_batch"),
    "archdsl.search.proxies.inputs": ("ProxyInputs",),
    "archdsl.search.proxies.kinds": ("PROXIES", "proxy_names", "require"),
    "archdsl.search.proxies.ranking": ("Candidate", "Ranking", "Refusal", "rank", "sample"),
    "archdsl.search.proxies.registry": ("Proxy", "UnknownProxy"),
    "archdsl.search.proxies.scoring": ("score", "score_untrained"),
}
__all__ = exported(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from archdsl.search.proxies.batch import ProxyBatch, load_batch
    from archdsl.search.proxies.inputs import ProxyInputs
    from archdsl.search.proxies.kinds import PROXIES, proxy_names, require
    from archdsl.search.proxies.ranking import Candidate, Ranking, Refusal, rank, sample
    from archdsl.search.proxies.registry import Proxy, UnknownProxy
    from archdsl.search.proxies.scoring import score, score_untrained
