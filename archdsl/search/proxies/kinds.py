"""Every proxy kind, registered: the table as the rest of archdsl reads it (importing this imports torch)."""

from __future__ import annotations

from archdsl.search.proxies import counts, gradients, naswot, synflow  # noqa: F401  (each registers its kinds)
from archdsl.search.proxies.registry import PROXIES, proxy_names, require

__all__ = ["PROXIES", "proxy_names", "require"]
