"""The benchmarks run (``--quick``: archdsl alone, small inputs) and write the rows they document, so they
cannot rot. No timing is asserted: figures come from the full runs (README "Performance")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import kernels, models, search


def rows(path: Path) -> list[dict[str, object]]:
    data = json.loads(path.read_text())
    assert data["machine"]["threads"] == 2 and data["machine"]["quick"] is True
    return data["rows"]


def test_kernels_quick(tmp_path: Path) -> None:
    assert kernels.main(["--quick", "--json", str(tmp_path / "k.json")]) == 0
    got = rows(tmp_path / "k.json")
    ops = ("halo", "outlook", "global")
    assert {(r["op"], r["mode"]) for r in got} == {(op, m) for op in ops for m in ("fwd", "fwd+bwd")}
    assert all(r["impl"] == "archdsl" and r["ms"] > 0 and r["peak_mb"] > 0 for r in got)
    # forward and backward allocate more than the forward alone
    peak = {(r["op"], r["mode"]): r["peak_mb"] for r in got}
    assert all(peak[(op, "fwd+bwd")] > peak[(op, "fwd")] for op in ops)


def test_models_quick(tmp_path: Path) -> None:
    assert models.main(["--quick", "--json", str(tmp_path / "m.json")]) == 0
    got = rows(tmp_path / "m.json")
    assert {(r["model"], r["mode"]) for r in got} == {(m, mode) for m in models.QUICK for mode in ("train", "eval")}
    for r in got:
        assert r["img_per_s"] == pytest.approx(r["batch"] / (r["ms"] * 1e-3), rel=0.01)
        assert r["mm_fraction"] > 0 and r["gflops_per_s"] > 0


def test_search_quick(tmp_path: Path) -> None:
    assert search.main(["--quick", "--json", str(tmp_path / "s.json")]) == 0
    got = {r["what"]: r for r in rows(tmp_path / "s.json")}
    overhead = got["per-trial overhead (digits search)"]
    assert overhead["trials"] == 1 and 0 < overhead["median_fraction"] < 1
    assert got["reject: over budget"]["trials"] == got["reject: impossible shape"]["trials"] == 2
    assert got["plan volo_d5"]["median_ms"] > 0
