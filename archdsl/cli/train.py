"""``archdsl train SPEC``: train with Lightning; checkpoints at ``DIR/best.ckpt`` and ``DIR/last.ckpt``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from archdsl.cli._command import at_least, command
from archdsl.cli.output import emit_json

if TYPE_CHECKING:
    from archdsl.spec.model import ModelSpec


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", metavar="SPEC", help="spec file (YAML) with a train section (defaults otherwise)")
    p.add_argument("--out", metavar="DIR", help="output directory (default: runs/NAME)")
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override a spec value, e.g. --set train.optimizer.lr=3e-3 (repeatable)",
    )
    p.add_argument("--epochs", type=at_least(1), metavar="N", help="shorthand for --set train.epochs=N")
    p.add_argument("--resume", action="store_true", help="continue from DIR/last.ckpt")
    p.add_argument("--force", action="store_true", help="start over in a DIR that holds an earlier run")
    p.add_argument("--allow-import", action="store_true", help="permit train.data.name=custom to import code")
    p.add_argument("--json", action="store_true", help="end with one JSON line of the best checkpoint's metrics")


def _require_device(spec: ModelSpec) -> None:
    from archdsl.errors import SpecError
    from archdsl.train.loggers import require_extras
    from archdsl.train.placement import require_device

    try:
        require_device(None, spec.train.accelerator)
        require_extras(spec.train)
    except SpecError as err:
        raise err.located(spec.source.locate) if spec.source is not None else err from None


def _logs(logs: dict[str, str]) -> str:
    """Where the trackers beyond ``metrics.csv`` put the run, or nothing."""
    parts = []
    if "tensorboard" in logs:
        parts.append(f"tensorboard: {logs['tensorboard']}")
    if "mlflow" in logs:
        run = f" (run {logs['mlflow_run']})" if "mlflow_run" in logs else ""
        parts.append(f"mlflow: {logs['mlflow']}{run}")
    return f"  {'  '.join(parts)}" if parts else ""


@command("train", "train a spec on its dataset (digits by default)", _args)
def run(args: argparse.Namespace) -> int:
    from archdsl.planner import plan_spec
    from archdsl.spec.load import load_spec

    sets = list(args.sets) + ([f"train.epochs={args.epochs}"] if args.epochs is not None else [])
    spec = load_spec(args.spec, sets)
    planned = plan_spec(spec)  # a spec the planner refuses is refused here, before torch and Lightning load
    _require_device(spec)  # and the extras of its loggers, before torch loads
    out = Path(args.out) if args.out else Path("runs") / spec.name

    from archdsl.train.fit import fit

    result = fit(planned, out, resume=args.resume, force=args.force, allow_import=args.allow_import)
    if args.json:
        emit_json(result.to_json())
    else:
        print(
            f"{spec.name}: val/acc {result.val_acc:.4f}  val/loss {result.val_loss:.4f}  "
            f"test/acc {result.test_acc:.4f}  {result.epochs} epochs in {result.seconds:.1f} s  "
            f"{result.params:,} params  best: {result.checkpoint}{_logs(dict(result.logs))}"
        )
    return 0
