"""``archdsl validate PATH...``: every file is read, checked and planned; all problems are printed."""

from __future__ import annotations

import argparse
import sys

from archdsl.cli._command import command
from archdsl.errors import ArchDSLError


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help="spec files (YAML)")
    p.add_argument("-q", "--quiet", action="store_true", help="print problems only")


@command("validate", "check spec files: syntax, types, and every shape rule", _args)
def run(args: argparse.Namespace) -> int:
    from archdsl.validate import validate_file

    failed = 0
    for path in args.paths:
        try:
            result = validate_file(path)
        except ArchDSLError as err:
            failed += 1
            for problem in err.problems:
                print(problem, file=sys.stderr)
            continue
        for warning in result.warnings:
            print(f"{path}: warning: {warning}", file=sys.stderr)
        if not args.quiet:
            print(f"ok  {path}: {result.summary}")
    return 2 if failed else 0
