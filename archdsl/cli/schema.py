"""``archdsl schema``: JSON Schema of the spec format, for editor completion."""

from __future__ import annotations

import argparse
import json

from archdsl.cli._command import at_least, command


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--indent", type=at_least(0), default=2, help="JSON indentation (default 2; 0 for one line)")
    p.add_argument("--search", action="store_true", help="the schema of search files instead of model specs")


@command("schema", "print the JSON Schema of the spec format (or, with --search, of search files)", _args)
def run(args: argparse.Namespace) -> int:
    from archdsl.search.space import search_schema
    from archdsl.spec.schema import spec_schema

    print(json.dumps(search_schema() if args.search else spec_schema(), indent=args.indent or None))
    return 0
