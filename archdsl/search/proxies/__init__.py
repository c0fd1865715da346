"""Zero-cost NAS proxies: a score of an untrained candidate that predicts its trained accuracy.

Proxies are kinds in a registry (:data:`PROXIES`), one file per kind: ``synflow`` (:mod:`.synflow`),
``naswot`` (:mod:`.naswot`), ``grad_norm`` and ``snip`` (:mod:`.gradients`), and the baselines ``params`` and
``flops`` (:mod:`.counts`). A candidate is scored on one seeded batch of its own training split
(:func:`load_batch`, cached) by :func:`score`; for every proxy a higher score is predicted better.
``archdsl rank`` ranks a search space's random samples with them.
"""

from __future__ import annotations

from archdsl.search.proxies import counts, gradients, naswot, synflow
from archdsl.search.proxies.batch import ProxyBatch, load_batch
from archdsl.search.proxies.inputs import ProxyInputs
from archdsl.search.proxies.ranking import Candidate, Ranking, Refusal, rank, sample
from archdsl.search.proxies.registry import PROXIES, Proxy, UnknownProxy, proxy_names, require
from archdsl.search.proxies.score import score

__all__ = [
    "PROXIES",
    "Candidate",
    "Proxy",
    "ProxyBatch",
    "ProxyInputs",
    "Ranking",
    "Refusal",
    "UnknownProxy",
    "load_batch",
    "proxy_names",
    "rank",
    "require",
    "sample",
    "score",
]
