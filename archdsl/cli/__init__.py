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
from archdsl.cli.output import json_mode
from archdsl.train.preempt import STARTUP

__all__ = ["COMMANDS", "Command", "main"]

_MODULES = (
    "validate",
    "summary",
    "schema",
    "train",
    "search",
    "worker",
    "status",
    "cluster",
    "best",
    "report",
    "export",
    "predict",
    "rank",
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="archdsl",
        description="Declarative YAML specs of vision backbones: validate, summarise, train, search, export.",
    )
    from archdsl.versions import __version__

    parser.add_argument("--version", action="version", version=f"archdsl {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _MODULES:
        importlib.import_module(f"archdsl.cli.{name}")
    for name, command in COMMANDS.items():
        p = sub.add_parser(name, help=command.help, description=command.description or command.help)
        command.add_arguments(p)
        p.set_defaults(_command=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code. A Ctrl-C at any moment ends it with 130 (see
    :class:`~archdsl.train.preempt.StartupInterrupts`)."""
    STARTUP.install()
    try:
        return _main(argv)
    finally:
        STARTUP.uninstall()


def _main(argv: Sequence[str] | None) -> int:
    from archdsl.errors import ArchDSLError

    args = _parser().parse_args(argv)
    try:
        command: Command = args._command
        if not command.handles_interrupts:
            STARTUP.release()  # interrupted while starting: stop before running; from here on Python's handler
        with json_mode(bool(getattr(args, "json", False))):
            code = int(command.run(args))
        STARTUP.release()  # a Ctrl-C recorded after the command's guard was gone
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's last flush
        return code
    except BrokenPipeError:  # the reader (`| head`) went away: stop quietly, as a C tool on SIGPIPE does
        _silence_stdout()
        return 141
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


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's final flush does not fail on the closed pipe again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a file descriptor (captured in tests)
        pass
    finally:
        os.close(devnull)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
