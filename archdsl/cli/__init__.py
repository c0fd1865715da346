"""The ``archdsl`` command: a thin shell over library functions.

Exit codes: 0 success, 1 failure while running, 2 bad input (located, one line per problem, no traceback).
Each sub-command lives in its own module and registers itself in :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from archdsl.cli._command import COMMANDS, Command

__all__ = ["COMMANDS", "Command", "main"]

_MODULES = (
    "validate", "summary", "schema", "train", "search", "worker", "status", "cluster", "best", "report", "export",
    "predict",
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="archdsl",
        description="Declarative YAML specs of vision backbones: validate, summarise, train, search, export.",
    )
    parser.add_argument("--version", action="version", version=f"archdsl {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _MODULES:
        importlib.import_module(f"archdsl.cli.{name}")
    for name, command in COMMANDS.items():
        p = sub.add_parser(name, help=command.help, description=command.description or command.help)
        command.add_arguments(p)
        p.set_defaults(_command=command)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("archdsl")
    except PackageNotFoundError:
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code."""
    from archdsl.errors import ArchDSLError

    args = _parser().parse_args(argv)
    try:
        return int(args._command.run(args))
    except ArchDSLError as err:
        for problem in err.problems:
            print(problem, file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # an internal failure: say what, keep the traceback for debugging only
        if os.environ.get("ARCHDSL_DEBUG"):
            raise
        print(f"error: {type(exc).__name__}: {exc} (set ARCHDSL_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
