"""Record the constructor arguments of every module built, so the model can be written back as source."""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
from collections.abc import Iterator
from typing import Any

from torch import nn

__all__ = ["INIT_ATTR", "TORCH_CLASSES", "recording"]

INIT_ATTR = "_archdsl_init"
"""Instance attribute holding ``(class, bound keyword arguments)`` of its outermost constructor call."""
TORCH_CLASSES: tuple[type[nn.Module], ...] = (
    nn.Conv2d,
    nn.Linear,
    nn.Identity,
    nn.AvgPool2d,
    nn.MaxPool2d,
    nn.BatchNorm2d,
    nn.LayerNorm,
    nn.Dropout,
)
"""torch layers a builder may return directly (their arguments are recorded too)."""


def _archdsl_module_classes() -> list[type[nn.Module]]:
    found: list[type[nn.Module]] = []
    for name, module in list(sys.modules.items()):
        if not name.startswith("archdsl.") or module is None:
            continue
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, nn.Module) and obj.__module__ == name and obj not in found:
                found.append(obj)
    return found


def _wrap(cls: type[nn.Module]) -> Any:
    original = cls.__dict__["__init__"]
    signature = inspect.signature(original)

    @functools.wraps(original)
    def init(self: nn.Module, *args: Any, **kwargs: Any) -> None:
        if INIT_ATTR not in self.__dict__:
            bound = signature.bind(self, *args, **kwargs)
            arguments = dict(bound.arguments)
            arguments.pop("self", None)
            for pname, param in signature.parameters.items():
                if param.kind is inspect.Parameter.VAR_KEYWORD and pname in arguments:
                    arguments.update(arguments.pop(pname))
            self.__dict__[INIT_ATTR] = (type(self), arguments)
        original(self, *args, **kwargs)

    return original, init


@contextlib.contextmanager
def recording() -> Iterator[None]:
    """While active, every archdsl module (and the torch layers in :data:`TORCH_CLASSES`) remembers how it
    was constructed, in ``module._archdsl_init``."""
    classes = [c for c in (*_archdsl_module_classes(), *TORCH_CLASSES) if "__init__" in c.__dict__]
    saved = []
    try:
        for cls in classes:
            original, init = _wrap(cls)
            saved.append((cls, original))
            cls.__init__ = init  # type: ignore[method-assign]
        yield
    finally:
        for cls, original in saved:
            cls.__init__ = original  # type: ignore[method-assign]
