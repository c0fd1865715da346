"""The proxy table: name -> :class:`Proxy`. A proxy kind registers itself when its module is imported.

Every proxy maps a planned spec (and, for the ones that need weights, one freshly initialised model and one
batch) to a float where *higher means predicted better*. Unknown names are refused with the names known
(:class:`UnknownProxy`), never as a ``KeyError``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from archdsl.errors import Problem, UsageError
from archdsl.registry import suggest

if TYPE_CHECKING:
    from archdsl.search.proxies.inputs import ProxyInputs

__all__ = ["PROXIES", "Proxy", "UnknownProxy", "proxy_names", "register", "require"]


@dataclass(frozen=True)
class Proxy:
    """One zero-cost proxy kind."""

    name: str
    compute: Callable[[ProxyInputs], float]
    """The score of one candidate; higher is predicted better."""
    summary: str
    """One line: what it measures and where it comes from."""
    needs_model: bool = True
    """False for the plan's counts (``params``, ``flops``): no weights are made for them."""


class UnknownProxy(UsageError):
    """A proxy name that is not registered (exit code 2), named by the option or argument that gave it."""


_TABLE: dict[str, Proxy] = {}
PROXIES: Mapping[str, Proxy] = MappingProxyType(_TABLE)
"""The registry, read-only; kinds add themselves with :func:`register`."""


def register(proxy: Proxy) -> Proxy:
    """Add ``proxy`` under its name; a name registered twice is a programming error."""
    if proxy.name in _TABLE:
        raise ValueError(f"proxy '{proxy.name}' is already registered")
    _TABLE[proxy.name] = proxy
    return proxy


def proxy_names() -> list[str]:
    """The registered names, sorted."""
    return sorted(_TABLE)


def require(names: Sequence[str], where: str = "proxy") -> list[Proxy]:
    """The proxies of ``names``, in order; an empty list or an unknown name is an :class:`UnknownProxy` at
    ``where`` (``--proxy`` on the command line), one problem per unknown name."""
    if not names:
        raise UnknownProxy(Problem(where, f"name at least one proxy of {', '.join(proxy_names())}"))
    unknown = [n for n in names if n not in _TABLE]
    if unknown:
        known = proxy_names()
        raise UnknownProxy(
            [Problem(where, f"unknown proxy '{n[:60]}'{suggest(n, known)}; known: {', '.join(known)}") for n in unknown]
        )
    return [_TABLE[n] for n in names]
