"""The benchmarks run (``--quick``: archdsl alone, small inputs) and write the rows they document, so they
cannot rot. No timing is asserted: figures come from the full runs (docs/performance.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import gpu, kernels, latency_runtimes, models, proxies, recipe, search


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


def test_recipe_quick(tmp_path: Path) -> None:
    assert recipe.main(["--quick", "--json", str(tmp_path / "r.json")]) == 0
    got = rows(tmp_path / "r.json")
    assert [(r["model"], r["recipe"]) for r in got] == [(m, k) for m in recipe.QUICK for k in recipe.RECIPES]
    plain = {r["model"]: r["ms"] for r in got if r["recipe"] == "plain"}
    for r in got:
        assert r["ms"] > 0 and r["overhead"] == pytest.approx(r["ms"] / plain[r["model"]] - 1, abs=1e-3)


def test_latency_runtimes_quick(tmp_path: Path) -> None:
    """One digits architecture in every runtime, one thread, its outputs checked against eager's first."""
    assert latency_runtimes.main(["--quick", "--json", str(tmp_path / "l.json")]) == 0
    data = json.loads((tmp_path / "l.json").read_text())
    assert data["machine"]["threads"] == 1 and data["machine"]["quick"] is True
    got = data["rows"]
    assert [(r["model"], r["runtime"]) for r in got] == [
        (m, r) for m in latency_runtimes.QUICK for r in latency_runtimes.RUNTIME_ORDER
    ]
    assert all(r["ms"] > 0 and r["input"] == "1x16x16" for r in got)
    assert all(float(r["max_diff"]) <= 1e-4 for r in got)


def test_gpu_quick(tmp_path: Path) -> None:
    """The device check's CPU half: every zoo spec builds, the small ones take a bf16-autocast CPU training step,
    the CUDA branch of halo/global attention hands SDPA 4-D contiguous operands (forced onto CPU tensors), and
    every CUDA row is there, skipped with the reason."""
    assert gpu.main(["--quick", "--json", str(tmp_path / "g.json")]) == 0
    got = {r["check"]: r for r in rows(tmp_path / "g.json")}
    assert all(r["status"] in ("ok", "skipped") and r["seconds"] >= 0 for r in got.values())
    assert got["zoo build"]["status"] == "ok" and f"{len(gpu.SPECS)} specs" in got["zoo build"]["figure"]
    stepped = [c for c, r in got.items() if c.startswith("zoo cpu ") and r["status"] == "ok"]
    assert {"zoo cpu digits_hybrid", "zoo cpu digits_search_base", "zoo cpu hybrid_tiny"} <= set(stepped)
    (larger,) = [c for c in got if c.startswith("zoo cpu: ")]
    assert got[larger]["status"] == "skipped" and len(stepped) + int(larger.split()[2]) == len(gpu.SPECS)
    fused = got["fused arguments"]
    assert fused["status"] == "ok" and "CUDA branch forced" in str(fused["figure"])
    cuda_rows = [f"zoo cuda: {len(gpu.SPECS)} specs", "fused halo", "fused global", "sync-free steps"]
    cuda_rows += [f"layout {name}" for name in gpu.LAYOUT_SPECS]
    cuda_rows += ["recipe on the device", "kernels vs timm", "models vs timm", "search 2 workers"]
    assert all(got[c]["status"] == "skipped" and got[c]["figure"] == "--quick" for c in cuda_rows)


def test_gpu_search_is_the_digits_search_cut_short(tmp_path: Path) -> None:
    from archdsl.search.space import load_search

    space = load_search(gpu.search_files(tmp_path, trials=4, epochs=2))
    assert space.name == "digits" and space.definition.budget.trials == 4
    assert space.base_doc.data["train"]["epochs"] == 2


def test_proxies_quick(tmp_path: Path) -> None:
    """Three architectures trained one epoch: every proxy gets a correlation row (values not asserted)."""
    out = tmp_path / "p.json"
    assert proxies.main(["--quick", "--out", str(tmp_path / "runs"), "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["machine"]["quick"] is True and len(data["archs"]) == 3
    assert {r["proxy"] for r in data["rows"]} == {"synflow", "naswot", "grad_norm", "snip", "params", "flops"}
