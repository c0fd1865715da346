"""Check an artifact against its manifest before anything in it runs.

``manifest.json`` lists the SHA-256 of every file ``archdsl export`` wrote. :func:`verify_artifact` reads the
manifest (bounded), then hashes ``model.py``, the weights and ``spec.yaml`` and compares: a file that changed,
went missing or was never listed is refused with the file's name, before ``model.py`` is imported or a tensor
is loaded. ``trust=True`` (``archdsl predict --trust``) skips the comparison for an artifact you edited on
purpose. The manifest is the anchor: keep artifacts where only their owner can write, or sign the manifest.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from archdsl.errors import Location, SpecError
from archdsl.limits import FILE_BYTES

__all__ = ["CHECKED", "MANIFEST", "read_manifest", "sha256_file", "verify_artifact"]

MANIFEST = "manifest.json"
CHECKED = ("model.py", "weights.safetensors", "spec.yaml")
"""Files that must match their manifest hash before the artifact is used (code, weights, spec)."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(directory: Path) -> dict[str, Any]:
    """The artifact's manifest, or a located error naming what is wrong with it."""
    path = directory / MANIFEST
    where = Location(str(path))
    if not path.is_file():
        raise SpecError.at("", f"no {MANIFEST}: give a directory written by archdsl export", Location(str(directory)))
    if path.stat().st_size > FILE_BYTES.value:
        raise SpecError.at("", f"the manifest has {FILE_BYTES.over(path.stat().st_size)}", where)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SpecError.at("", f"not a readable manifest ({exc}); export the model again", where) from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("sha256"), dict):
        raise SpecError.at(
            "sha256", "the manifest lists no file hashes; export the model again with this archdsl", where
        )
    return manifest


def verify_artifact(directory: str | Path, trust: bool = False) -> dict[str, Any]:
    """The manifest of ``directory`` once code, weights and spec match its hashes (see module docstring)."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    if trust:
        return manifest
    hashes = manifest["sha256"]
    for name in CHECKED:
        path = directory / name
        if name not in hashes:
            if path.exists():
                raise SpecError.at(
                    f"sha256.{name}",
                    f"{name} is in the directory but not in the manifest, so it "
                    "cannot be checked; refusing to use it (--trust to use it anyway)",
                    Location(str(directory / MANIFEST)),
                )
            continue
        if not path.is_file():
            raise SpecError.at(
                "", f"{name} is listed in the manifest but missing; export the model again", Location(str(path))
            )
        got = sha256_file(path)
        if got != hashes[name]:
            raise SpecError.at(
                "",
                f"its SHA-256 {got[:16]}... is not the manifest's {str(hashes[name])[:16]}...: the "
                "file changed after export (edited, truncated or replaced); refusing to use it "
                "(pass --trust to use it anyway)",
                Location(str(path)),
            )
    return manifest
