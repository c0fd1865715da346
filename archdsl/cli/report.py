"""``archdsl report [DIR | --storage URL --study NAME] --out REPORT_DIR``: plots and an HTML page."""

from __future__ import annotations

import argparse
from pathlib import Path

from archdsl.cli._command import command


def _args(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", nargs="?", metavar="DIR", help="the --out directory of `archdsl search`")
    p.add_argument("--storage", metavar="URL", help="Optuna storage URL (instead of DIR)")
    p.add_argument("--study", metavar="NAME", help="study name")
    p.add_argument(
        "--out",
        metavar="REPORT_DIR",
        help="where to write the PNGs and index.html (default: DIR/report, or ./report-STUDY)",
    )


@command("report", "plots (history, importances, Pareto front, parallel coordinates) and an HTML page", _args)
def run(args: argparse.Namespace) -> int:
    from archdsl.search import load_study
    from archdsl.search.report import write_report

    study = load_study(args.dir, args.storage, args.study)
    out = args.out or (Path(args.dir) / "report" if args.dir else Path(f"report-{study.study_name}"))
    report = write_report(study, out)
    print(f"report: {report.directory / 'index.html'} ({', '.join(report.plots) or 'no plots yet'})")
    for name, why in report.skipped.items():
        print(f"  skipped {name}: {why}")
    if report.tradeoff:
        print(report.tradeoff)
    if report.components:
        print(report.components)
    if report.ranking:
        print(report.ranking)
    if report.proxies:
        print(report.proxies)
    return 0
