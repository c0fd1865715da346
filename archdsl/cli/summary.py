"""``archdsl summary PATH [--json] [--blocks]``: per-stage output shapes, parameters and FLOPs."""

from __future__ import annotations

import argparse

from archdsl.cli._command import command
from archdsl.cli.output import emit_json


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="PATH", help="spec file (YAML)")
    p.add_argument("--json", action="store_true", help="print one JSON object on one line")
    p.add_argument("--blocks", action="store_true", help="list every block and its nested parts, not only stages")
    p.add_argument(
        "--tree", action="store_true", help="with --json: the whole plan tree (every node's shapes, cost and recipe)"
    )


@command("summary", "per-stage output shape, parameters and FLOPs of a spec (batch 1)", _args)
def run(args: argparse.Namespace) -> int:
    from archdsl.plan.table import plan_table
    from archdsl.planner import plan_model
    from archdsl.spec.load import load_spec

    plan = plan_model(load_spec(args.path))
    if args.json:
        emit_json(plan.to_data() if args.tree else plan.to_json(blocks=args.blocks))
    else:
        print(plan_table(plan, blocks=args.blocks))
    return 0
