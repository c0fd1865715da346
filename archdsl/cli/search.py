"""``archdsl search SEARCH.yaml``: run (or resume) an architecture search."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from archdsl.cli._command import at_least, command, minutes
from archdsl.cli.output import emit_json

if TYPE_CHECKING:
    from archdsl.search import SearchResult


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("search", metavar="SEARCH.yaml", help="search definition")
    p.add_argument("--out", metavar="DIR", help="output directory (default: runs/search/NAME)")
    p.add_argument(
        "--storage",
        metavar="URL",
        help="sqlite:///PATH (default: DIR/study.db), postgresql://USER@HOST/DB, mysql://USER@HOST/DB or "
        "journal:PATH; the password from the URL or ARCHDSL_STORAGE_PASSWORD",
    )
    p.add_argument("--study", metavar="NAME", help="study name (default: the search file's stem)")
    p.add_argument("--trials", type=at_least(1), metavar="N", help="trial budget (default: budget.trials)")
    p.add_argument("--timeout", type=minutes, metavar="MIN", help="stop starting trials after MIN minutes")
    p.add_argument(
        "--workers",
        type=at_least(1),
        metavar="N",
        help="local worker processes on the study (threads split between them, one GPU each)",
    )
    p.add_argument("--device", metavar="DEV", help="cpu, cuda or cuda:N (default: the spec's train.accelerator)")
    p.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run the workers as Ray tasks: a cluster address, auto, or "
        "local (start Ray on this machine); --workers tasks (default: one per GPU, or one)",
    )
    p.add_argument("--new-study", action="store_true", help="replace an existing study of the same name")
    p.add_argument("--allow-import", action="store_true", help="permit train.data.name=custom to import code")
    p.add_argument("--json", action="store_true", help="end with one JSON line summarising the study")


def print_result(result: SearchResult, out: Path, as_json: bool) -> int:
    """Print the summary (one JSON line with ``--json``); the reason of an early stop goes to stderr.
    Returns the exit code."""
    from archdsl.search import TrialRecord

    if result.stopped != "budget":
        print(f"search stopped ({result.stopped}): {result.reason}", file=sys.stderr)
    if as_json:
        emit_json(result.to_json())
        return _finish(result)
    c = result.trials
    print(
        f"study {result.study} ({result.storage}): {c['complete']} complete, {c['pruned']} pruned, "
        f"{c['rejected']} rejected, {c['fail']} failed"
        + ("" if result.stopped == "budget" else f"; stopped: {result.stopped}")
    )
    for t in result.best:
        values = ", ".join(f"{n}={v:.4f}" for n, v in zip(result.objectives, t.values, strict=True))
        test = TrialRecord.of(t).test_acc
        extra = f", test/acc={test:.4f}" if test is not None else ""
        print(f"best trial {t.number}: {values}{extra}  params {json.dumps(t.params)}")
    print(f"next: archdsl best {out}   (writes {out}/best.yaml)")
    return _finish(result)


def _finish(result: SearchResult) -> int:
    if result.stopped == "interrupted":
        print("interrupted", file=sys.stderr)  # the last line, as for any command stopped by Ctrl-C
    return result.exit_code


@command(
    "search", "search architectures with Optuna (resumable; embedded SQLite by default)", _args, handles_interrupts=True
)
def run(args: argparse.Namespace) -> int:
    from archdsl.launch.run import run_search
    from archdsl.search.space import load_search

    space = load_search(args.search)
    out = Path(args.out) if args.out else Path("runs") / "search" / space.name
    result = run_search(
        space,
        out,
        storage=args.storage,
        study_name=args.study,
        trials=args.trials,
        timeout_minutes=args.timeout,
        new_study=args.new_study,
        allow_import=args.allow_import,
        workers=args.workers,
        device=args.device,
        ray=args.ray,
    )
    return print_result(result, out, args.json)
