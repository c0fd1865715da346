"""The sub-command table."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["COMMANDS", "Command", "at_least", "command", "minutes"]


@dataclass(frozen=True)
class Command:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str = ""
    handles_interrupts: bool = False
    """The command takes over a Ctrl-C recorded while it started (its ``PreemptionGuard`` hands the running
    trial back); the others are interrupted before they run."""


COMMANDS: dict[str, Command] = {}


def command(
    name: str,
    help: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    description: str = "",
    *,
    handles_interrupts: bool = False,
) -> Callable[[Callable[[argparse.Namespace], int]], Callable[[argparse.Namespace], int]]:
    """Register ``run`` as sub-command ``name``."""

    def register(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        if name in COMMANDS:
            raise ValueError(f"command '{name}' is already registered")
        COMMANDS[name] = Command(help, add_arguments, run, description, handles_interrupts)
        return run

    return register


def at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``low`` (``--trials 0`` is refused, not read as "no limit")."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text[:40]!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


def minutes(text: str) -> float:
    """An argparse type: a finite number of minutes > 0 (``--timeout -1`` is refused, not a search that runs
    nothing and exits 0)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of minutes, got {text[:40]!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of minutes > 0, got {text[:40]}")
    return value
