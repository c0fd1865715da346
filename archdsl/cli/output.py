"""What a command prints: with ``--json``, exactly one JSON document on stdout and everything else on stderr.

:func:`json_mode` sends ``sys.stdout`` to stderr while a ``--json`` command runs (progress bars, library
chatter, the text of any ``print``); :func:`emit_json` writes the one document to the real stdout.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any, TextIO

__all__ = ["emit_json", "json_mode"]

_document: list[TextIO] = []
"""The stdout the document goes to, while :func:`json_mode` is active."""


@contextlib.contextmanager
def json_mode(active: bool) -> Iterator[None]:
    """While active, whatever the command prints goes to stderr; only :func:`emit_json` reaches stdout."""
    if not active:
        yield
        return
    _document.append(sys.stdout)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        _document.pop()


def emit_json(document: Any) -> None:
    """Print ``document`` as one line of JSON on the command's stdout."""
    out = _document[-1] if _document else sys.stdout
    out.write(json.dumps(document, separators=(",", ":")) + "\n")
    out.flush()
