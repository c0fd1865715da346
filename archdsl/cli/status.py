"""``archdsl status [DIR | --storage URL --study NAME] [--json]``: a running study at a glance."""

from __future__ import annotations

import argparse

from archdsl.cli._command import command
from archdsl.cli.output import emit_json


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", nargs="?", metavar="DIR", help="the --out directory of `archdsl search`")
    p.add_argument("--storage", metavar="URL", help="the study's storage URL (instead of DIR)")
    p.add_argument("--study", metavar="NAME", help="study name")
    p.add_argument("--json", action="store_true", help="print one JSON line")


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "no heartbeat"
    return f"heartbeat {seconds:.0f} s ago"


@command("status", "trials by state, running trials (worker, device, epoch, heartbeat), best so far, rate, ETA", _args)
def run(args: argparse.Namespace) -> int:
    from archdsl.search import open_existing
    from archdsl.search.report import clock, study_status

    opened = open_existing(args.dir, args.storage, args.study)
    status = study_status(opened.study, opened.storage, opened.ref.display)
    if args.json:
        emit_json(status.to_json())
        return 0
    t = status.tally
    print(f"study {status.study} ({status.storage}): {t.finished}/{status.budget} finished")
    print(
        f"  {t.complete} complete, {t.pruned} pruned, {t.rejected} rejected, {t.running} running, "
        f"{t.waiting} queued, {t.fail} failed, {t.retried} retried, {t.over_budget} over budget"
        + (f"; {t.screened} proposals screened by the prescreen (not counted)" if t.screened else "")
    )
    for r in status.running:
        stale = ""
        if r.heartbeat_age_s is not None and status.grace_s and r.heartbeat_age_s > status.grace_s:
            stale = "  STALE (failed and retried when a worker next starts a trial)"
        retry = f" (retry of #{r.retry_of})" if r.retry_of is not None else ""
        print(
            f"  running #{r.number}{retry} on {r.worker or '?'} (host {r.host}, pid {r.pid}, {r.device}): "
            f"epoch {r.epoch}/{r.epochs}, {clock(r.running_s)}, {_ago(r.heartbeat_age_s)}{stale}"
        )
    for b in status.best:
        values = ", ".join(f"{n}={v:.4f}" for n, v in zip(status.objectives, b.values, strict=False))
        print(f"  best #{b.number}: {values}")
    if status.trials_per_hour is not None:
        eta = f", ETA {clock(status.eta_s)}" if status.eta_s is not None else ""
        print(f"  {status.trials_per_hour:.1f} finished trials per hour{eta}")
    return 0
