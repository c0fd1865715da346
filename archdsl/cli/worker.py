"""``archdsl worker SEARCH.yaml --storage URL``: join a study and run its trials until the budget is met."""

from __future__ import annotations

import argparse
from pathlib import Path

from archdsl.cli._command import at_least, command, minutes


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("search", metavar="SEARCH.yaml", help="search definition (the same file on every worker)")
    p.add_argument(
        "--storage",
        required=True,
        metavar="URL",
        help="the study's storage, shared by all workers: postgresql://USER@HOST/DB (the password from "
        "ARCHDSL_STORAGE_PASSWORD), mysql://..., sqlite:///PATH or journal:PATH on one shared filesystem",
    )
    p.add_argument("--study", metavar="NAME", help="study name (default: the search file's stem)")
    p.add_argument(
        "--out",
        metavar="DIR",
        help="trial directories, on a filesystem every worker can read (default: runs/search/NAME)",
    )
    p.add_argument(
        "--trials", type=at_least(1), metavar="N", help="finished trials of the whole study (default: budget.trials)"
    )
    p.add_argument("--timeout", type=minutes, metavar="MIN", help="stop starting trials after MIN minutes")
    p.add_argument("--device", metavar="DEV", help="cpu, cuda or cuda:N (default: the spec's train.accelerator)")
    p.add_argument("--threads", type=at_least(1), metavar="N", help="torch threads of this worker")
    p.add_argument("--label", metavar="NAME", help="this worker's name in the trials (default: HOST:PID)")
    p.add_argument("--allow-import", action="store_true", help="permit train.data.name=custom to import code")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--json", action="store_true", help="end with one JSON line summarising the study")


@command(
    "worker",
    "join a study (created once if missing) and run trials until its budget of finished trials is met",
    _args,
    description="Runs trials of one study until the study, across all its workers, holds the budget of finished "
    "trials; exits 0. SIGTERM (preemption) fails the running trial with reason 'preempted', queues its parameters "
    "again and exits 0. A storage unreachable for longer than workers.reconnect_seconds exits 1.",
    handles_interrupts=True,
)
def run(args: argparse.Namespace) -> int:
    from archdsl.cli.search import print_result
    from archdsl.search import WorkerOptions, run_worker
    from archdsl.search.space import load_search

    space = load_search(args.search)
    out = Path(args.out) if args.out else Path("runs") / "search" / space.name
    options = WorkerOptions(
        out=out,
        study_name=args.study,
        trials=args.trials,
        timeout_minutes=args.timeout,
        device=args.device,
        threads=args.threads,
        allow_import=args.allow_import,
        progress=not args.quiet,
        label=args.label,
    )
    result = run_worker(space, args.storage, options)
    return print_result(result, out, args.json)
