"""``archdsl rank``: random samples of a search space ranked by zero-cost proxies, run in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from archdsl.cli import main

ROOT = Path(__file__).resolve().parent.parent
DIGITS = str(ROOT / "search" / "digits.yaml")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["rank", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_rank_json_of_the_digits_space(capsys: pytest.CaptureFixture[str]) -> None:
    argv = (DIGITS, "--proxy", "naswot,synflow,params", "--candidates", "6", "--seed", "1", "--device", "cpu")
    code, out, _ = _run(capsys, *argv, "--json")
    assert code == 0
    doc = json.loads(out)  # one JSON document, nothing else on stdout
    assert doc["search"] == "digits" and doc["proxies"] == ["naswot", "synflow", "params"]
    assert doc["refused"] == 0 and doc["refusals"] == [] and doc["batch_size"] == 64
    candidates = doc["candidates"]
    assert [c["rank"] for c in candidates] == [1, 2, 3, 4, 5, 6]
    assert sorted(c["trial"] for c in candidates) == [0, 1, 2, 3, 4, 5]
    naswot = [c["scores"]["naswot"] for c in candidates]
    assert naswot == sorted(naswot, reverse=True)  # ranked by the first proxy
    for c in candidates:
        assert set(c["scores"]) == {"naswot", "synflow", "params"}
        assert c["scores"]["params"] == c["model_params"] > 10_000 and c["flops"] > c["model_params"]
        assert "conv_stages" in c["params"] and "train.optimizer.lr" in c["params"]
    assert doc["seconds_per_candidate"] > 0
    # the same seed draws and scores the same candidates
    code, again, _ = _run(capsys, *argv, "--json")
    same = json.loads(again)
    assert [(c["trial"], c["scores"]) for c in same["candidates"]] == [(c["trial"], c["scores"]) for c in candidates]


def test_rank_refuses_over_budget_and_impossible_shapes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    search = tmp_path / "tight.yaml"
    search.write_text(
        f"base: {ROOT / 'specs' / 'digits_search_base.yaml'}\n"
        "budget: {trials: 4, max_params: 80_000}\n"
        "params:\n"
        "  stages.2.channels: {choice: [64, 256]}\n"
        "  stages.*.blocks.*.mixer.block_size: {choice: [3, 4]}\n"
    )
    code, out, _ = _run(capsys, str(search), "--proxy", "grad_norm,snip", "--candidates", "8", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["refused"] + len(doc["candidates"]) == 8
    reasons = [r["reason"] for r in doc["refusals"]]
    shape = [r for r in doc["refusals"] if r["params"]["stages.*.blocks.*.mixer.block_size"] == 3]
    budget = [r for r in doc["refusals"] if r not in shape]
    assert shape and all("block_size" in r["reason"] for r in shape)
    assert budget and all(
        r["reason"].startswith("params ") and "> budget.max_params 80,000" in r["reason"] for r in budget
    )
    assert len(reasons) == len(shape) + len(budget)
    for c in doc["candidates"]:
        assert c["model_params"] <= 80_000 and c["params"]["stages.*.blocks.*.mixer.block_size"] == 4
        assert c["scores"]["grad_norm"] > 0 and c["scores"]["snip"] > 0
    # the text table: a row per scored candidate, the refused ones with their reasons, the time per candidate
    code, text, _ = _run(capsys, str(search), "--proxy", "grad_norm,snip", "--candidates", "8")
    lines = text.splitlines()
    assert lines[0].split()[:6] == ["rank", "trial", "grad_norm", "snip", "params", "flops"]
    assert f"refused {doc['refused']}:" in lines
    assert lines[-1].startswith(f"{len(doc['candidates'])} scored, {doc['refused']} refused; ")
    assert "s per candidate (mean, measured" in lines[-1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ("--proxy", "naswot,synflw", "--candidates", "2"),
            "--proxy: unknown proxy 'synflw' (did you mean 'synflow'?)",
        ),
        (("--proxy", ",", "--candidates", "2"), "--proxy: name at least one proxy of flops, grad_norm, naswot"),
        (("--proxy", "naswot", "--candidates", "2", "--device", "tpu"), "--device: a device is cpu, cuda or cuda:N"),
    ],
)
def test_rank_bad_input_exits_2(argv: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, DIGITS, *argv)
    assert code == 2 and out == "" and err.startswith(message)


def test_rank_candidates_below_one_and_bad_search_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["rank", DIGITS, "--proxy", "naswot", "--candidates", "0"])
    assert stop.value.code == 2
    assert "argument --candidates: must be at least 1, got 0" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        f"base: {ROOT / 'specs' / 'digits_search_base.yaml'}\nparams:\n  stages.9.channels: {{int: [8, 16]}}\n"
    )
    code, out, err = _run(capsys, str(bad), "--proxy", "naswot", "--candidates", "2")
    assert code == 2 and out == ""
    assert err.startswith(f"{bad}:3:3: params.stages.9.channels: ")
