"""``archdsl best [DIR | --storage URL --study NAME]``: the best trial (or Pareto front) and its spec."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from archdsl.cli._command import command
from archdsl.cli.output import emit_json


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", nargs="?", metavar="DIR", help="the --out directory of `archdsl search`")
    p.add_argument("--storage", metavar="URL", help="Optuna storage URL (instead of DIR)")
    p.add_argument("--study", metavar="NAME", help="study name")
    p.add_argument("--json", action="store_true", help="print one JSON line")


@command("best", "show the best trial(s) of a search and write the winner's spec to best.yaml", _args)
def run(args: argparse.Namespace) -> int:
    from archdsl.atomic import atomic_write_text
    from archdsl.search import (
        StudyRecord,
        TrialRecord,
        load_study,
        study_out_dir,
        trial_checkpoint,
        trial_spec,
        winners,
    )
    from archdsl.spec.load import dump_spec

    study = load_study(args.dir, args.storage, args.study)
    best = winners(study)
    target = Path(args.dir) if args.dir else Path(".")
    metrics = StudyRecord.of(study).objective_names(len(study.directions))
    rows: list[dict[str, Any]] = []
    base = Path(args.dir) if args.dir else study_out_dir(study)
    for i, t in enumerate(best):
        spec = trial_spec(t)
        values = ", ".join(f"{m}={v:.6g}" for m, v in zip(metrics, t.values, strict=True))
        header = f"# best trial {t.number} of study '{study.study_name}': {values}\n"
        path = target / ("best.yaml" if i == 0 else f"best_trial_{t.number}.yaml")
        atomic_write_text(path, header + dump_spec(spec))
        rows.append(
            {
                "number": t.number,
                "values": list(t.values),
                "params": dict(t.params),
                "spec": str(path.resolve()),
                "checkpoint": str(ckpt) if (ckpt := trial_checkpoint(t, base)) else None,
                "test/acc": TrialRecord.of(t).test_acc,
            }
        )
    if args.json:
        emit_json({"study": study.study_name, "objectives": metrics, "best": rows})
    else:
        for r in rows:
            values = ", ".join(f"{m}={v:.4f}" for m, v in zip(metrics, r["values"], strict=True))
            test = f", test/acc={r['test/acc']:.4f}" if isinstance(r["test/acc"], float) else ""
            print(f"trial {r['number']}: {values}{test}\n  params: {json.dumps(r['params'])}\n  spec: {r['spec']}")
    return 0
