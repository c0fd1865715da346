"""Every file archdsl writes goes through one helper: a temporary file beside the target, fsync, rename."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch

from archdsl.atomic import atomic_path, atomic_write_text
from archdsl.train.checkpoint_io import AtomicCheckpointIO

PACKAGE = Path(__file__).resolve().parents[1] / "archdsl"


def test_a_write_replaces_the_file_whole_and_leaves_nothing_beside_it(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "result.json"
    atomic_write_text(target, "old\n")
    atomic_write_text(target, "new\n")
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["result.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # what a plain open() gives: readable by workers


def test_a_write_that_fails_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "best.yaml"
    target.write_text("kept\n")
    with pytest.raises(RuntimeError, match="disk on fire"), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk on fire")
    assert target.read_text() == "kept\n" and [p.name for p in tmp_path.iterdir()] == ["best.yaml"]


def test_a_checkpoint_that_fails_to_save_keeps_the_previous_one(tmp_path: Path) -> None:
    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)
    with pytest.raises(Exception):  # noqa: B017  # a lambda cannot be pickled: torch.save fails part-way
        io.save_checkpoint({"epoch": 2, "w": torch.zeros(3), "bad": lambda: 0}, path)
    data = io.load_checkpoint(path)
    assert data["epoch"] == 1 and torch.equal(data["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_no_module_renames_files_by_itself() -> None:
    """The rename that makes a write atomic lives in archdsl/atomic.py; the only other one swaps a whole
    export directory (written into a temporary directory beside it)."""
    renames = {
        str(p.relative_to(PACKAGE)): len(re.findall(r"os\.replace\(|os\.rename\(|\.rename\(", p.read_text()))
        for p in PACKAGE.rglob("*.py")
    }
    assert {k: v for k, v in renames.items() if v} == {"atomic.py": 1, "export/artifact.py": 3}
