"""A study's report: PNG plots (Optuna's matplotlib visualisations) and an HTML page with the trial table.

For a search over ``conv_stages`` alone (HaloNet's trade-off study) the page and the returned text also
hold the trade-off table side by side with the paper's.
"""

from __future__ import annotations

import html
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from archdsl.atomic import atomic_write_text
from archdsl.search.budget import tally

__all__ = ["PAPER_TRADEOFF", "Report", "tradeoff_table", "write_report"]

PAPER_TRADEOFF = {  # conv stages -> (attention stages, top-1 %, normalised train time), HaloNet Table
    0: ("1, 2, 3, 4", 84.9, 1.9),
    1: ("2, 3, 4", 84.6, 1.4),
    2: ("3, 4", 84.7, 1.0),
    3: ("4", 83.8, 0.5),
}


@dataclass(frozen=True)
class Report:
    directory: Path
    plots: list[str]
    tradeoff: str | None = None
    skipped: dict[str, str] = field(default_factory=dict)


def _stage_list(n: int, first: int, last: int) -> str:
    return ", ".join(str(i) for i in range(first, last + 1)) if last >= first else "–"


def tradeoff_table(study: optuna.Study, stages: int = 4) -> str | None:
    """Markdown table: conv stages, attention stages, val accuracy, train time / the "conv 1,2" row, paper."""
    rows = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        n = t.params.get("conv_stages")
        if n is not None and "seconds" in t.user_attrs:
            rows[int(n)] = (float(t.user_attrs["val/acc"]), float(t.user_attrs["seconds"]))
    if not rows:
        return None
    ref = rows.get(2, next(iter(rows.values())))[1]
    lines = [
        "| conv stages | attention stages | val acc (ours) | train time (ours, / conv 1,2) "
        "| top-1 (paper) | train time (paper) |",
        "|---|---|---|---|---|---|",
    ]
    for n in sorted(rows):
        acc, sec = rows[n]
        paper = PAPER_TRADEOFF.get(n, ("", float("nan"), float("nan")))
        lines.append(
            f"| {_stage_list(n, 1, n)} | {_stage_list(stages, n + 1, stages)} | {acc:.4f} | "
            f"{sec / ref:.2f} ({sec:.1f} s) | {paper[1]} | {paper[2]} |"
        )
    return "\n".join(lines)


def _plots(study: optuna.Study, out: Path) -> tuple[list[str], dict[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as vis

    multi = len(study.directions) > 1
    target = (lambda t: t.values[0]) if multi else None
    names = study.user_attrs.get("archdsl_search", {}).get("definition", {}).get("objectives", [])
    label = names[0]["metric"] if names else "objective"
    makers: dict[str, Any] = {
        "history": lambda: vis.plot_optimization_history(study, target=target, target_name=label),
        "importances": lambda: vis.plot_param_importances(study, target=target, target_name=label),
        "parallel_coordinates": lambda: vis.plot_parallel_coordinate(study, target=target, target_name=label),
    }
    if multi:
        makers["pareto_front"] = lambda: vis.plot_pareto_front(study, target_names=[n["metric"] for n in names] or None)
    made, skipped = [], {}
    for name, make in makers.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax = make()
            fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            fig.set_size_inches(8, 5)
            fig.tight_layout()
            path = out / f"{name}.png"
            tmp = out / f".{name}.png.tmp"
            fig.savefig(tmp, dpi=100, format="png")
            tmp.replace(path)
            plt.close(fig)
            made.append(path.name)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:  # too few trials for this plot
            skipped[name] = str(exc)
    return made, skipped


def write_report(study: optuna.Study, out: str | Path) -> Report:
    """Write the plots and ``index.html`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plots, skipped = _plots(study, out)
    table = tradeoff_table(study)
    trials = study.get_trials(deepcopy=False)
    param_names = sorted({k for t in trials for k in t.params})
    head = ["#", "state", "values", *param_names, "params", "epochs", "test/acc", "note"]
    body = []
    for t in trials:
        state = "rejected" if t.user_attrs.get("rejected") else t.state.name.lower()
        note = t.user_attrs.get("reason") or t.user_attrs.get("error") or ""
        cells = [
            t.number,
            state,
            ", ".join(f"{v:.4g}" for v in (t.values or [])),
            *(t.params.get(k, "") for k in param_names),
            t.user_attrs.get("params", ""),
            t.user_attrs.get("epochs", ""),
            f"{t.user_attrs['test/acc']:.4f}" if isinstance(t.user_attrs.get("test/acc"), float) else "",
            note,
        ]
        body.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    counts = tally(study.get_trials(deepcopy=False)).counts()
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>archdsl study {html.escape(study.study_name)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}img{max-width:48%;margin:4px}</style>",
        "</head><body>",
        f"<h1>Study {html.escape(study.study_name)}</h1>",
        "<p>" + ", ".join(f"{v} {k}" for k, v in counts.items()) + "</p>",
        *(f"<img src='{p}' alt='{p}'>" for p in plots),
    ]
    if table:
        parts += ["<h2>Conv/attention trade-off (HaloNet)</h2>", _markdown_to_html(table)]
    parts += [
        "<h2>Trials</h2><table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>",
        *body,
        "</table></body></html>",
    ]
    atomic_write_text(out / "index.html", "\n".join(parts) + "\n")
    return Report(out, plots, table, skipped)


def _markdown_to_html(table: str) -> str:
    rows = [r.strip("|").split("|") for r in table.splitlines() if not r.startswith("|---")]
    out = ["<table>"]
    for i, row in enumerate(rows):
        tag = "th" if i == 0 else "td"
        out.append("<tr>" + "".join(f"<{tag}>{html.escape(c.strip())}</{tag}>" for c in row) + "</tr>")
    return "".join([*out, "</table>"])
