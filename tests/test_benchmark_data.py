"""``benchmarks.data --quick`` runs (archdsl alone, a small JPEG tree) and writes the rows it documents, so the
data benchmark cannot rot. No timing is asserted: figures come from the full run (benchmarks/results/data.json)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from archdsl.train.data.file_index import CACHE_ENV
from benchmarks import data


def test_data_quick(tmp_path: Path) -> None:
    before = os.environ.get(CACHE_ENV)
    assert data.main(["--quick", "--json", str(tmp_path / "d.json")]) == 0
    assert os.environ.get(CACHE_ENV) == before  # its temporary tree's index cache is not left set
    got = json.loads((tmp_path / "d.json").read_text())
    machine = got["machine"]
    assert machine["threads"] == 2 and machine["quick"] is True and machine["images"] == 64
    assert machine["jpeg_kb"] > 0 and machine["size"] == 64
    rows = got["rows"]
    assert [(r["impl"], r["workers"]) for r in rows] == [("archdsl", 1)]
    for r in rows:
        assert set(r) == {"impl", "workers", "img_per_s", "img_per_s_per_worker"}
        assert r["img_per_s"] > 0 and r["img_per_s_per_worker"] == r["img_per_s"] / r["workers"]
