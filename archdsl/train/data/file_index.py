"""The file index of an image split ``SPLIT/CLASS/FILE``: listed once per tree, cached, reused everywhere.

Listing and sorting 1.28 M files on a shared filesystem takes minutes; every trial of a search and every
rank and worker process needs the same list. The first to need it lists the split (``os.scandir``, no
``stat`` per file) and writes the index to the cache directory; the others read it back, after checking
the split directory's and each class directory's modification time (a file added, removed or renamed in a
class directory changes that directory's time; a class directory added or removed changes the split's),
so a hit lists no directory at all and reads one file.

Cache directory: ``ARCHDSL_CACHE_DIR``, else ``$XDG_CACHE_HOME/archdsl``, else ``~/.cache/archdsl``; one
file per split directory (``image-index/<hash of its resolved path>.npz``), written atomically, so
processes starting together read an old index or a whole new one; the ``KEEP`` most recently written stay,
older ones are removed when a new one is written. A cache directory that cannot be written only costs the
listing the next time. Caveat: a filesystem whose modification times are coarser
than the edits (a file added within the same tick as the listing) can keep a stale index; remove the
cache file (or the directory) after editing a tree in place that fast.

In memory the names are one NUL-separated byte array and the labels one integer array: no Python object
per file, so forked loader workers share the pages instead of copying them on first touch.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from archdsl.atomic import atomic_write_bytes
from archdsl.datasets.image_folder import EXTENSIONS

__all__ = ["CACHE_ENV", "FileIndex", "cache_dir", "split_index"]

CACHE_ENV = "ARCHDSL_CACHE_DIR"
FORMAT = 1
KEEP = 128
"""Indexes kept in the cache directory (one per split directory)."""
_EXTENSIONS = tuple(sorted(EXTENSIONS))


@dataclass(frozen=True)
class FileIndex:
    """The image files of one split: for each class directory (sorted names), its sorted file names."""

    split_dir: str
    classes: tuple[str, ...]
    """Every class directory of the split, sorted."""
    counts: np.ndarray
    """Files per class, in ``classes`` order."""
    names: np.ndarray
    """uint8: every file name (UTF-8, surrogate escapes kept), each followed by a NUL, class after class."""
    starts: np.ndarray
    """int64: where each name starts in ``names``; one more entry, the end."""

    def __len__(self) -> int:
        return len(self.starts) - 1

    def name(self, i: int) -> str:
        return bytes(self.names[self.starts[i] : self.starts[i + 1] - 1]).decode("utf-8", "surrogateescape")

    def files_of(self, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(file indices, labels)`` of the files of ``classes`` (label = position in ``classes``); classes
        this split lacks contribute nothing, directories that are not in ``classes`` are left out."""
        first = np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)
        where = {c: k for k, c in enumerate(self.classes)}
        files, labels = [], []
        for label, c in enumerate(classes):
            k = where.get(c)
            if k is not None and self.counts[k]:
                files.append(np.arange(first[k], first[k + 1], dtype=np.int64))
                labels.append(np.full(int(self.counts[k]), label, dtype=np.int64))
        if not files:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(files), np.concatenate(labels)


def cache_dir() -> Path:
    """Where indexes are cached (see the module's docstring)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "archdsl"


def _cache_file(split_dir: str) -> Path:
    key = hashlib.sha256(os.fsencode(split_dir)).hexdigest()[:32]
    return cache_dir() / "image-index" / f"{key}.npz"


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in EXTENSIONS


def _list(split_dir: str) -> tuple[dict[str, object], list[bytes]]:
    """List the split: its modification times (taken before the listing, so an edit during it invalidates the
    index next time) and the NUL-terminated names, class after class."""
    meta: dict[str, object] = {
        "format": FORMAT,
        "split": split_dir,
        "extensions": list(_EXTENSIONS),
        "mtime_ns": os.stat(split_dir).st_mtime_ns,
    }
    with os.scandir(split_dir) as entries:
        classes = sorted(e.name for e in entries if e.is_dir())
    chunks: list[bytes] = []
    listed: list[list[object]] = []
    for c in classes:
        path = os.path.join(split_dir, c)
        mtime = os.stat(path).st_mtime_ns
        with os.scandir(path) as entries:
            files = sorted(e.name for e in entries if _is_image(e.name))
        chunks += [f.encode("utf-8", "surrogateescape") + b"\0" for f in files]
        listed.append([c, mtime, len(files)])
    meta["classes"] = listed
    return meta, chunks


def _from_parts(split_dir: str, meta: dict[str, object], names: np.ndarray) -> FileIndex:
    """The index of a listing; ``ValueError`` when its counts do not add up to its names."""
    classes = meta["classes"]
    if not isinstance(classes, list):
        raise ValueError("classes must be a list")
    starts = np.concatenate([[0], np.flatnonzero(names == 0) + 1]).astype(np.int64)
    counts = np.array([int(c[2]) for c in classes], dtype=np.int64)
    if int(counts.sum()) != len(starts) - 1 or (len(names) and names[-1] != 0):
        raise ValueError(f"{int(counts.sum())} files counted, {len(starts) - 1} names")
    return FileIndex(split_dir, tuple(str(c[0]) for c in classes), counts, names, starts)


def _fresh(split_dir: str, meta: dict[str, object]) -> bool:
    """The cached listing still describes the tree: same format and extensions, same modification times."""
    if meta.get("format") != FORMAT or meta.get("split") != split_dir or meta.get("extensions") != list(_EXTENSIONS):
        return False
    try:
        if os.stat(split_dir).st_mtime_ns != meta.get("mtime_ns"):
            return False
        classes = meta.get("classes")
        return isinstance(classes, list) and all(
            os.stat(os.path.join(split_dir, str(c))).st_mtime_ns == m for c, m, _ in classes
        )
    except (OSError, TypeError, ValueError):
        return False


def _read(path: Path, split_dir: str) -> FileIndex | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(bytes(data["meta"]).decode("utf-8"))
            names = np.asarray(data["names"], dtype=np.uint8)
    except (OSError, ValueError, KeyError, EOFError):  # absent, unreadable or not an index: list again
        return None
    if not isinstance(meta, dict) or not _fresh(split_dir, meta):
        return None
    try:
        return _from_parts(split_dir, meta, names)
    except (TypeError, ValueError, IndexError):  # a damaged index: list again
        return None


def _write(path: Path, meta: dict[str, object], names: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8), names=names)
    with contextlib.suppress(OSError):  # a read-only cache costs the listing next time, nothing else
        atomic_write_bytes(path, buffer.getvalue())
        _prune(path.parent)


def _prune(folder: Path) -> None:
    """Remove all but the ``KEEP`` most recently written indexes (trees that are gone, temporary trees)."""
    files = []
    for f in folder.glob("*.npz"):
        with contextlib.suppress(OSError):
            files.append((f.stat().st_mtime_ns, f))
    for _, f in sorted(files, reverse=True)[KEEP:]:
        f.unlink(missing_ok=True)


def split_index(split_dir: str | Path) -> FileIndex:
    """The index of ``split_dir`` (see the module's docstring): from the cache when it is still fresh, else
    listed now and cached."""
    split = os.path.realpath(os.path.expanduser(split_dir))
    path = _cache_file(split)
    cached = _read(path, split)
    if cached is not None:
        return cached
    meta, chunks = _list(split)
    names = np.frombuffer(b"".join(chunks), dtype=np.uint8)
    _write(path, meta, names)
    return _from_parts(split, meta, names)
