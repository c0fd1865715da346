"""A study's report: PNG plots and an HTML page a person would open.

The plots are drawn with matplotlib from the trials, parameters under short labels
(:mod:`archdsl.search.report.labels`): the history over trial numbers (complete trials, pruned ones at the
last value they reported, rejected ones marked at the bottom, the best so far), importances computed per
parameter over the trials where it was active (a parameter of a part that was not there is not sampled), and
parallel coordinates whose integer and categorical axes are labelled with their values (a parameter a trial
did not have is drawn at ``absent``); a multi-objective study adds Optuna's Pareto front. Titles are wrapped
until they fit the figure. The trial table is sorted best first, the best trial marked, values rounded, and
paged. For a search over ``conv_stages`` (HaloNet's trade-off study) the page and the returned text also hold
the trade-off table beside the paper's, labelled as digits, with a row for every stage count tried: one whose
trials were all pruned shows the best value they reported, one whose trials were all rejected says so. For a
search over ``components`` (HaloNet's table of training components) they hold that table beside the paper's:
per row and ``conv_stages`` family the mean val accuracy over the seeds, its gain over the family's baseline
row, and whether that gain is within the seed-to-seed spread.
"""

from __future__ import annotations

import html
import math
import re
import statistics
import textwrap
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from archdsl.atomic import atomic_write_text
from archdsl.plan.published import HALONET_COMPONENTS, HALONET_TRADEOFF
from archdsl.search.budget import tally
from archdsl.search.record import StudyRecord, TrialRecord
from archdsl.search.report.labels import short_labels
from archdsl.search.report.proxies import proxy_table
from archdsl.search.report.ranking import ranking_table, reported
from archdsl.search.study import best_trials

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["MIN_TRIALS", "PAGE_ROWS", "Report", "components_table", "importances", "tradeoff_table", "write_report"]

MIN_TRIALS = 10
"""Completed trials below which importances and parallel coordinates are marked as resting on too few."""
PAGE_ROWS = 25
"""Trial-table rows per page."""
ABSENT = -0.15
"""Where parallel coordinates draw a parameter a trial did not have (its axes span 0 to 1)."""


@dataclass(frozen=True)
class Report:
    directory: Path
    plots: list[str]
    tradeoff: str | None = None
    ranking: str | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    pages: list[str] = field(default_factory=list)
    components: str | None = None
    proxies: str | None = None
    """Each zero-cost proxy's rank correlation with the trained metric (:mod:`archdsl.search.report.proxies`)."""


def _maximise(study: optuna.Study) -> bool:
    return study.directions[0] == optuna.study.StudyDirection.MAXIMIZE


def _metrics(study: optuna.Study) -> list[str]:
    return StudyRecord.of(study).objective_names(len(study.directions))


def _reports_accuracy(study: optuna.Study) -> bool:
    """Whether the values its trials reported each epoch are ``val/acc`` (the metric the pruning callback
    monitors unless the objectives name ``val/loss`` and not ``val/acc``)."""
    names = _metrics(study)
    return next((m for m in names if m in ("val/acc", "val/loss")), "val/acc") == "val/acc"


# --- the trade-off table ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ours:
    """Our result for one trade-off row: the best complete trial, else the best pruned, else a rejected one."""

    outcome: Literal["complete", "pruned", "rejected"]
    acc: float | None = None
    """Val accuracy: of the complete trial, or the best a pruned one reported before it was stopped."""
    seconds: float | None = None
    epoch: int | None = None
    """The epoch of a pruned trial's value."""
    reason: str | None = None
    """Why a rejected trial was refused."""

    def key(self) -> tuple[int, float]:
        rank = ("rejected", "pruned", "complete").index(self.outcome)
        return rank, self.acc if self.acc is not None else -math.inf


def _ours(trial: FrozenTrial, accuracy_reported: bool) -> _Ours | None:
    record = TrialRecord.of(trial)
    if record.outcome == "complete" and record.seconds is not None and record.val_acc is not None:
        return _Ours("complete", record.val_acc, record.seconds)
    if record.outcome == "pruned":
        best = reported(trial, best=True) if accuracy_reported else None
        return _Ours("pruned", best.value if best else None, epoch=best.epoch if best else None)
    if record.outcome == "rejected":
        return _Ours("rejected", reason=record.reason)
    return None


def _tradeoff_rows(study: optuna.Study) -> dict[int, _Ours]:
    """Leading conv stages -> our row, for every stage count a finished trial tried."""
    accuracy_reported = _reports_accuracy(study)
    rows: dict[int, _Ours] = {}
    for t in study.get_trials(deepcopy=False):
        n, ours = t.params.get("conv_stages"), _ours(t, accuracy_reported)
        if n is not None and ours is not None and (int(n) not in rows or ours.key() > rows[int(n)].key()):
            rows[int(n)] = ours
    return dict(sorted(rows.items()))


def _stage_list(n: int, first: int, last: int) -> str:
    return ", ".join(str(i) for i in range(first, last + 1)) if last >= first else "–"


def _our_cells(ours: _Ours, ref: float | None) -> tuple[str, str]:
    """The val acc and train time cells of our row."""
    if ours.outcome == "rejected":
        return "rejected before training", "–"
    if ours.outcome == "pruned" or ours.acc is None or ours.seconds is None:
        value = f"{ours.acc:.4f} at epoch {ours.epoch}" if ours.acc is not None else "no epoch reported"
        return f"pruned: {value}", "–"
    time = f"{ours.seconds / ref:.2f} ({ours.seconds:.1f} s)" if ref else f"{ours.seconds:.1f} s"
    return f"{ours.acc:.4f}", time


def tradeoff_table(study: optuna.Study, stages: int = 4) -> str | None:
    """Markdown table: conv stages, attention stages (numbered 1-4 as in the paper; ``stages.0``-``stages.3``
    in spec paths), val accuracy on digits, train time / the "conv 1,2" row, and the paper's ImageNet row.

    A row for every stage count a finished trial tried: the best complete trial's; where none completed,
    ``pruned:`` with the best val accuracy its pruned trials reported and the epoch; where all were refused
    before training, ``rejected before training``."""
    rows = _tradeoff_rows(study)
    if not rows:
        return None
    conv_1_2 = rows.get(2)
    ref = conv_1_2.seconds if conv_1_2 is not None else None  # no ratio without the row they are relative to
    lines = [
        "| conv stages | attention stages | val acc (ours, digits) | train time (ours, / conv 1,2; indicative) "
        "| top-1 (paper, ImageNet) | train time (paper) |",
        "|---|---|---|---|---|---|",
    ]
    for n, ours in rows.items():
        paper = HALONET_TRADEOFF.get(n)
        # the paper has no all-conv row (its table is conv 1..3 of 4 stages): a dash, not a number
        top1, time = (str(paper.top1), str(paper.train_time)) if paper else ("–", "–")
        acc, sec = _our_cells(ours, ref)
        lines.append(
            f"| {_stage_list(n, 1, n)} | {_stage_list(stages, n + 1, stages)} | {acc} | {sec} | {top1} | {time} |"
        )
    return "\n".join(lines)


def _tradeoff_notes(study: optuna.Study) -> list[str]:
    """What the rows without a complete trial mean, one sentence per row."""
    notes = []
    for n, ours in _tradeoff_rows(study).items():
        row = f"The row with {n} leading conv stage{'' if n == 1 else 's'}"
        if ours.outcome == "pruned":
            notes.append(
                f"{row} has no complete trial: its value is the best val acc its pruned trials reported before "
                "the pruner stopped them, not that of a finished training."
            )
        elif ours.outcome == "rejected":
            why = f" ({ours.reason})" if ours.reason else ""
            notes.append(f"{row} was never trained: its trials were rejected before training{why}.")
    return notes


# --- the training-component table ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Seeds:
    """The val accuracies (%) of one row's complete trials in one family, one per seed."""

    accs: tuple[float, ...]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accs)

    @property
    def std(self) -> float | None:
        """Sample standard deviation over the seeds (none from a single seed)."""
        return statistics.stdev(self.accs) if len(self.accs) > 1 else None

    def cell(self) -> str:
        spread = f" ± {self.std:.1f}" if self.std is not None else ""
        return f"{self.mean:.1f}{spread} (n={len(self.accs)})"


def _components_rows(study: optuna.Study) -> tuple[list[str], list[int], dict[tuple[str, int], _Seeds]]:
    """The rows finished trials tried (the paper's order), the ``conv_stages`` families (0 when the search has
    no such parameter) and the complete trials' val accuracies per (row, family)."""
    tried: set[str] = set()
    families: set[int] = set()
    accs: dict[tuple[str, int], list[float]] = {}
    for t in study.get_trials(deepcopy=False):
        row, record = t.params.get("components"), TrialRecord.of(t)
        if not isinstance(row, str) or record.outcome not in ("complete", "pruned", "rejected"):
            continue
        family = int(t.params.get("conv_stages", 0))
        tried.add(row)
        families.add(family)
        if record.outcome == "complete" and record.val_acc is not None:
            accs.setdefault((row, family), []).append(100.0 * record.val_acc)
    rows = [r for r in HALONET_COMPONENTS if r in tried] + sorted(tried - set(HALONET_COMPONENTS))
    return rows, sorted(families), {k: _Seeds(tuple(v)) for k, v in accs.items()}


def _family_name(family: int, families: list[int]) -> str:
    if family == 0:
        return "attention"
    return "conv" if family == families[-1] else f"{family} conv stages"


def _gain(row: _Seeds | None, base: _Seeds | None) -> tuple[float | None, float | None]:
    """The row's gain over the baseline (points) and the seed spread it is read against: the larger of the two
    rows' standard deviations (none where either has a single seed)."""
    if row is None or base is None:
        return None, None
    spreads = [s for s in (row.std, base.std) if s is not None]
    return row.mean - base.mean, max(spreads) if len(spreads) == 2 else None


def components_table(study: optuna.Study) -> str | None:
    """Markdown table of HaloNet's training-component rows: the paper's ImageNet top-1 of the HaloNet and the
    ResNet with each row's gain over the baseline row, then per ``conv_stages`` family of the search (the
    attention model, ``conv_stages`` 0, read beside the HaloNet; the most conv one beside the ResNet) the mean val
    accuracy on digits ± its standard deviation over the seeds (n: complete trials), and the gain of the mean
    over the family's baseline. A row whose gain is smaller than the seed spread (the larger standard deviation
    of the row and the baseline) says so in the last column."""
    rows, families, seeds = _components_rows(study)
    if not rows:
        return None
    names = {f: _family_name(f, families) for f in families}
    head = ["row", "components", "HaloNet top-1 (paper)", "gain", "ResNet top-1 (paper)", "gain"]
    for f in families:
        head += [f"{names[f]} val acc (ours, conv_stages={f}, digits)", "gain"]
    lines = ["| " + " | ".join([*head, "note"]) + " |", "|" + "---|" * (len(head) + 1)]
    base_paper = HALONET_COMPONENTS["baseline"]
    for row in rows:
        paper = HALONET_COMPONENTS.get(row)
        cells = [row, (", ".join(paper.components) or "–") if paper else "not in the paper"]
        if paper:
            for top1, base in (
                (paper.halonet_top1, base_paper.halonet_top1),
                (paper.resnet_top1, base_paper.resnet_top1),
            ):
                cells += [f"{top1:.1f}", "–" if row == "baseline" else f"{top1 - base:+.1f}"]
        else:
            cells += ["–"] * 4
        notes = []
        for f in families:
            ours = seeds.get((row, f))
            gain, spread = _gain(ours, seeds.get(("baseline", f)))
            cells.append(ours.cell() if ours else "no complete trial")
            cells.append("–" if gain is None or row == "baseline" else f"{gain:+.1f}")
            if row != "baseline" and gain is not None and spread is not None and abs(gain) < spread:
                notes.append(f"{names[f]}: within seed spread ({gain:+.1f} vs ± {spread:.1f})")
        lines.append("| " + " | ".join([*cells, "; ".join(notes)]) + " |")
    return "\n".join(lines)


def _components_notes() -> list[str]:
    return [
        "Accuracies are in %, on the digits validation split (360 images: one image is 0.28 points), not "
        "ImageNet; gains are points over the same family's `baseline` row. The seed spread of a gain is the larger "
        "seed-to-seed standard deviation of the row and the baseline; a gain smaller than it is marked "
        "**within seed spread**: the seeds do not tell it from no effect."
    ]


# --- values and tables -----------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    """A table cell: floats to 4 significant digits (scientific when small or large), the rest as text."""
    if isinstance(value, bool) or not isinstance(value, float):
        return "" if value is None else str(value)
    if not math.isfinite(value):
        return str(value)
    if value != 0 and not 1e-3 <= abs(value) < 1e5:
        return f"{value:.3e}"
    return f"{value:.4g}"


def _choice(value: Any) -> str:
    """A categorical choice as a label: YAML's ``null`` for None (no ``None`` on the page)."""
    return "null" if value is None else str(value)


def _inline(text: str) -> str:
    """Escaped HTML of a line of Markdown: ```code``` as <code>, ``**bold**`` as <b>, no stray backtick."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    return out.replace("`", "")


def _markdown_to_html(table: str) -> str:
    rows = [r.strip("|").split("|") for r in table.splitlines() if not r.startswith("|---")]
    out = ["<table>"]
    for i, row in enumerate(rows):
        tag = "th" if i == 0 else "td"
        out.append("<tr>" + "".join(f"<{tag}>{_inline(c.strip())}</{tag}>" for c in row) + "</tr>")
    return "".join([*out, "</table>"])


# --- plots -----------------------------------------------------------------------------------------------


def _labelled(study: optuna.Study, labels: dict[str, str]) -> optuna.Study:
    """An in-memory copy of the finished trials with short parameter names, for Optuna's plots."""
    copy = optuna.create_study(directions=study.directions, study_name=study.study_name)
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        copy.add_trial(
            optuna.trial.create_trial(
                params={labels[k]: v for k, v in t.params.items()},
                distributions={labels[k]: d for k, d in t.distributions.items()},
                values=t.values,
                user_attrs=t.user_attrs,
            )
        )
    return copy


def importances(
    study: optuna.Study, target: Callable[[FrozenTrial], float] | None = None
) -> list[tuple[str, float, int]]:
    """``(parameter, importance, trials)`` per parameter, most important first.

    Each parameter is weighed over the completed trials where it was active, against the parameters
    active in all of those trials (fANOVA, normalised over them): a parameter of a part that exists in a
    few trials only is neither credited with the rest's variance nor diluted by trials it played no part in.
    Parameters active in fewer than 2 trials, or never varied there, are left out."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))

    def varied(name: str, trials: list[FrozenTrial]) -> bool:
        return len({repr(t.params[name]) for t in trials}) > 1

    out = []
    for name in sorted({k for t in complete for k in t.params}):
        active = [t for t in complete if name in t.params]
        if len(active) < 2 or not varied(name, active):
            continue
        common = set.intersection(*(set(t.params) for t in active))
        params = sorted(k for k in common if varied(k, active))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0), params=params, target=target
            )[name]
        out.append((name, float(value), len(active)))
    return sorted(out, key=lambda r: -r[1])


def _figure(width: float, height: float) -> tuple[Figure, Axes]:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), layout="constrained")
    return fig, ax


def _indicative(title: str, few: bool) -> str:
    return f"{title} — indicative: fewer than {MIN_TRIALS} completed trials" if few else title


def _importance_plot(rows: list[tuple[str, float, int]], labels: dict[str, str], metric: str, few: bool) -> Figure:
    if not rows:
        raise ValueError("no parameter varied over two or more completed trials")
    fig, ax = _figure(8, max(3.5, 1.6 + 0.35 * len(rows)))
    shown = rows[::-1]
    ax.barh([f"{labels[n]} (n={k})" for n, _, k in shown], [v for _, v, _ in shown], color="#4c72b0")
    ax.set_xlabel(f"importance for {metric} (fANOVA; n: trials where it was active)")
    fig.suptitle(_indicative("Parameter importances", few))
    return fig


def _history_points(study: optuna.Study) -> dict[str, list[tuple[int, float]]]:
    """``complete``, ``pruned`` (at the last value reported) and ``no value`` points (trial number, value):
    the rejected trials and pruned ones that reported nothing (value NaN, drawn at the bottom)."""
    points: dict[str, list[tuple[int, float]]] = {"complete": [], "pruned": [], "rejected": [], "no value": []}
    for t in study.get_trials(deepcopy=False):
        kind = TrialRecord.of(t).outcome
        if kind == "complete" and t.values:
            points["complete"].append((t.number, float(t.values[0])))
        elif kind == "pruned":
            last = reported(t)
            points["pruned" if last else "no value"].append((t.number, last.value if last else math.nan))
        elif kind == "rejected":
            points["rejected"].append((t.number, math.nan))
    return points


def _best_so_far(points: list[tuple[int, float]], maximise: bool, last: int) -> tuple[list[int], list[float]]:
    """A step line through the best value reached by each complete trial, held up to trial ``last``."""
    xs: list[int] = []
    ys: list[float] = []
    for n, v in sorted(points):
        best = v if not ys else (max if maximise else min)(ys[-1], v)
        xs.append(n)
        ys.append(best)
    if xs and last > xs[-1]:
        xs.append(last)
        ys.append(ys[-1])
    return xs, ys


def _history_plot(study: optuna.Study, metric: str) -> Figure:
    from matplotlib.ticker import MaxNLocator

    points = _history_points(study)
    if not any(points.values()):
        raise ValueError("no finished trial yet")
    fig, ax = _figure(8, 5)
    style: dict[str, dict[str, Any]] = {
        "complete": {"marker": "o", "color": "#4c72b0", "label": "complete"},
        "pruned": {"marker": "v", "color": "#dd8452", "label": "pruned (last value reported)"},
    }
    for kind, kw in style.items():
        if points[kind]:
            ax.scatter([n for n, _ in points[kind]], [v for _, v in points[kind]], s=28, zorder=3, **kw)
    last = max(n for pts in points.values() for n, _ in pts)
    xs, ys = _best_so_far(points["complete"], _maximise(study), last)
    if xs:
        ax.plot(xs, ys, drawstyle="steps-post", color="#c44e52", lw=1.5, label="best so far (complete trials)")
    low, high = ax.get_ylim()
    ax.set_ylim(low - 0.12 * (high - low), high)  # room for the trials without a value
    bottom = ax.get_xaxis_transform()  # x: trial number, y: 0-1 of the axes
    marks = {"rejected": ("x", "#8c1c13", "rejected (not trained; no value)"), "no value": ("x", "#dd8452", "")}
    for kind, (marker, color, label) in marks.items():
        if points[kind]:
            numbers = [n for n, _ in points[kind]]
            text = label or "pruned (no value reported)"
            ax.plot(numbers, [0.04] * len(numbers), marker, color=color, transform=bottom, ms=7, mew=2, label=text)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial number")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.suptitle("Optimisation history")
    return fig


@dataclass(frozen=True)
class _Axis:
    """One vertical axis of the parallel coordinates: where each trial lies on it (0-1, or ``ABSENT``)."""

    label: str
    ticks: list[tuple[float, str]]
    positions: list[float]


def _scale(low: float, high: float, log: bool) -> Callable[[float], float]:
    """Value -> 0-1 between ``low`` and ``high`` (0.5 where they are equal)."""
    f = math.log if log else float
    a, b = f(low), f(high)
    if b <= a:
        return lambda v: 0.5
    return lambda v: (f(v) - a) / (b - a)


def _numeric_ticks(low: float, high: float, log: bool, integer: bool) -> list[float]:
    """Tick values between ``low`` and ``high``: whole numbers only on an integer axis."""
    from matplotlib.ticker import LogLocator, MaxNLocator

    if integer and high - low <= 8 and not log:
        return [float(v) for v in range(int(low), int(high) + 1)]
    if log and low > 0:
        locator: Any = LogLocator(base=2) if integer else LogLocator(base=10, subs=(1.0, 2.0, 5.0))
    else:
        locator = MaxNLocator(nbins=5, integer=integer)
    ticks = [float(v) for v in locator.tick_values(low, high) if low - 1e-12 <= v <= high + 1e-12]
    ticks = [v for v in ticks if not integer or v == round(v)]
    return sorted({low, high} | set(ticks)) if len(ticks) < 2 else ticks


def _tick_text(value: float, integer: bool) -> str:
    return str(round(value)) if integer else _fmt(float(value))


def _param_axis(name: str, label: str, trials: Sequence[FrozenTrial]) -> _Axis:
    """The axis of one parameter over ``trials``, ticks at its values: every choice of a categorical one,
    whole numbers on an integer one, and ``absent`` below where some trial did not have it."""
    dists: list[BaseDistribution] = [t.distributions[name] for t in trials if name in t.params]
    first = dists[0]
    if isinstance(first, CategoricalDistribution):
        choices: list[Any] = []
        for d in dists:
            choices += [c for c in getattr(d, "choices", ()) if c not in choices]
        where = {i: i / (len(choices) - 1) if len(choices) > 1 else 0.5 for i in range(len(choices))}
        ticks = [(where[i], _choice(c)) for i, c in enumerate(choices)]
        positions = [where[choices.index(t.params[name])] if name in t.params else ABSENT for t in trials]
    else:
        numeric = [d for d in dists if isinstance(d, IntDistribution | FloatDistribution)]
        low, high = min(float(d.low) for d in numeric), max(float(d.high) for d in numeric)
        log, integer = any(d.log for d in numeric), isinstance(first, IntDistribution)
        scale = _scale(low, high, log)
        ticks = [(scale(v), _tick_text(v, integer)) for v in _numeric_ticks(low, high, log, integer)]
        positions = [scale(float(t.params[name])) if name in t.params else ABSENT for t in trials]
    if ABSENT in positions:
        ticks.append((ABSENT, "absent"))
    return _Axis(label, ticks, positions)


def _objective_axis(values: Sequence[float], metric: str) -> _Axis:
    low, high = min(values), max(values)
    scale = _scale(low, high, False)
    ticks = _numeric_ticks(low, high, False, False) if high > low else [low]
    return _Axis(metric, [(scale(v), _fmt(float(v))) for v in ticks], [scale(v) for v in values])


_TICK: dict[str, Any] = {
    "fontsize": 8,
    "zorder": 5,
    "bbox": {"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 0.6},
}
"""The tick labels of the parallel coordinates: on white, over the lines."""


def _parallel_plot(study: optuna.Study, labels: dict[str, str], metric: str, few: bool) -> Figure:
    """Parallel coordinates of the complete trials: the objective, then each parameter; lines coloured by
    the objective, the best trial drawn thick on top."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import Normalize

    trials = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.values]
    if not trials:
        raise ValueError("no completed trial yet")
    values = [float(t.values[0]) for t in trials]
    names = sorted({k for t in trials for k in t.params})
    axes = [_objective_axis(values, metric), *(_param_axis(n, labels[n], trials) for n in names)]
    fig, ax = _figure(max(8.0, 1.3 * len(axes) + 2), 5.5)
    norm, cmap = Normalize(min(values), max(values)), plt.get_cmap("viridis")
    best = (max if _maximise(study) else min)(range(len(trials)), key=lambda i: values[i])
    for i in sorted(range(len(trials)), key=lambda i: i == best):
        line = [a.positions[i] for a in axes]
        kw: dict[str, Any] = {"lw": 1.2, "alpha": 0.75, "color": cmap(norm(values[i]))}
        if i == best:
            kw = {"lw": 3.0, "zorder": 4, "color": "#c44e52"}
        ax.plot(range(len(axes)), line, **kw)
    for j, axis in enumerate(axes):
        ax.axvline(j, color="#333333", lw=0.8, zorder=2)
        for y, text in axis.ticks:
            ax.plot([j - 0.03, j], [y, y], color="#333333", lw=0.8, zorder=2)
            ax.annotate(text, (j, y), (-5, 0), textcoords="offset points", ha="right", va="center", **_TICK)
    ax.set_xticks(range(len(axes)), [a.label for a in axes], rotation=30, ha="right")
    ax.set_yticks([])
    ax.set_xlim(-0.6, len(axes) - 0.8)
    ax.set_ylim(ABSENT - 0.08 if any(ABSENT in a.positions for a in axes) else -0.05, 1.05)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=metric, pad=0.01)
    title = f"Parallel coordinates of the {len(trials)} completed trials (best in red)"
    fig.suptitle(_indicative(title, few))
    return fig


def _texts(fig: Figure) -> list[Any]:
    """The titles and axis labels of a figure: what :func:`_fit` wraps."""
    out = [ax.title for ax in fig.axes] + [a.label for ax in fig.axes for a in (ax.xaxis, ax.yaxis)]
    title = fig.get_suptitle()
    return out + ([t for t in fig.texts if t.get_text() == title] if title else [])


def _outside(fig: Figure) -> list[str]:
    """The titles and labels of a drawn figure that do not lie wholly inside it (cut off in the PNG)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    box = fig.bbox
    out = []
    for text in _texts(fig):
        if not text.get_text() or not text.get_visible():
            continue
        b = text.get_window_extent(renderer)
        if b.x0 < box.x0 - 1 or b.x1 > box.x1 + 1 or b.y0 < box.y0 - 1 or b.y1 > box.y1 + 1:
            out.append(text.get_text())
    return out


def _fit(fig: Figure) -> None:
    """Wrap the titles and labels that do not fit the figure until they do, then lay it out again."""
    for _ in range(6):
        cut = set(_outside(fig))
        if not cut:
            return
        for text in _texts(fig):
            words = text.get_text()
            if words in cut:
                flat = " ".join(words.split())
                longest = max(len(line) for line in words.splitlines())
                text.set_text(textwrap.fill(flat, max(12, int(longest * 0.8))))
        if fig.get_layout_engine() is None:
            fig.tight_layout()


def _pareto_plot(study: optuna.Study, labels: dict[str, str]) -> Figure:
    from optuna.visualization import matplotlib as vis

    ax = vis.plot_pareto_front(_labelled(study, labels), target_names=_metrics(study))
    fig = cast("Figure", ax.figure)
    fig.set_size_inches(8, 5)
    fig.tight_layout()
    return fig


def _save(fig: Figure, out: Path, name: str) -> str:
    import matplotlib.pyplot as plt

    _fit(fig)
    path = out / f"{name}.png"
    tmp = out / f".{name}.png.tmp"
    fig.savefig(tmp, dpi=100, format="png")
    tmp.replace(path)
    plt.close(fig)
    return path.name


def _plots(study: optuna.Study, out: Path, labels: dict[str, str], few: bool) -> tuple[list[str], dict[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    multi = len(study.directions) > 1
    target = (lambda t: t.values[0]) if multi else None
    metric = _metrics(study)[0]
    makers: dict[str, Callable[[], Figure]] = {
        "history": lambda: _history_plot(study, metric),
        "importances": lambda: _importance_plot(importances(study, target), labels, metric, few),
        "parallel_coordinates": lambda: _parallel_plot(study, labels, metric, few),
    }
    if multi:
        makers["pareto_front"] = lambda: _pareto_plot(study, labels)
    made, skipped = [], {}
    for name, make in makers.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                made.append(_save(make(), out, name))
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:  # too few trials for this plot
            plt.close("all")
            skipped[name] = str(exc)
    return made, skipped


# --- the page --------------------------------------------------------------------------------------------


def _ranked(study: optuna.Study) -> list[FrozenTrial]:
    """Completed trials best first (by the first objective), then the rest by number; a prescreen's screened
    proposals are counted at the top of the page, not listed."""
    trials = [t for t in study.get_trials(deepcopy=False) if not TrialRecord.of(t).screened]
    sign = 1.0 if study.directions[0] == optuna.study.StudyDirection.MINIMIZE else -1.0
    done = sorted(
        (t for t in trials if t.state == TrialState.COMPLETE and t.values), key=lambda t: (sign * t.values[0], t.number)
    )
    return [*done, *sorted((t for t in trials if t not in done), key=lambda t: t.number)]


def _values_cell(t: FrozenTrial, record: TrialRecord) -> str:
    """The objective values; for a pruned trial the last value it reported (Optuna's value of a pruned trial)
    and when."""
    last = reported(t) if record.outcome == "pruned" else None
    if last is not None:
        return f"{_fmt(last.value)} (last reported, epoch {last.epoch})"
    return ", ".join(_fmt(v) for v in t.values or [])


def _param_cell(t: FrozenTrial, name: str) -> str:
    """A parameter's value in the trial table: empty where the trial did not have it."""
    if name not in t.params:
        return ""
    value = t.params[name]
    return _choice(value) if value is None else _fmt(value)


def _table(rows: Sequence[FrozenTrial], names: list[str], labels: dict[str, str], best: set[int]) -> str:
    head = ["#", "state", "values", *(labels[n] for n in names), "params", "epochs", "test/acc", "note"]
    titles = ["trial number", "", "", *names, "model parameters", "epochs trained", "", ""]
    out = [
        "<div class='scroll'><table><tr>"
        + "".join(f"<th title='{html.escape(t)}'>{html.escape(h)}</th>" for h, t in zip(head, titles, strict=True))
        + "</tr>"
    ]
    for t in rows:
        record = TrialRecord.of(t)
        state = "rejected" if record.outcome == "rejected" else t.state.name.lower()
        note = record.reason or record.error or ""
        cells = [
            f"{t.number} ★" if t.number in best else str(t.number),
            state,
            _values_cell(t, record),
            *(_param_cell(t, k) for k in names),
            f"{record.params:,}" if record.params is not None else "",
            _fmt(record.epochs),
            _fmt(record.test_acc),
            note if len(note) <= 80 else note[:77] + "...",
        ]
        css = " class='best'" if t.number in best else ""
        out.append(f"<tr{css}>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    return "".join([*out, "</table></div>"])


_STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px;white-space:nowrap}th{background:#f3f3f3}"
    ".scroll{overflow-x:auto}tr.best td{background:#fff3c4;font-weight:bold}"
    "img{max-width:48%;margin:4px;vertical-align:top}img.wide{max-width:98%}"
    ".warn{background:#fdecea;border-left:4px solid #d9534f;padding:6px 10px}nav a{margin-right:1em}"
    ".note{color:#555;font-size:13px;max-width:60em}code{background:#f3f3f3;padding:0 3px}"
)


def _page(title: str, body: list[str]) -> str:
    return (
        "\n".join(
            [
                "<!doctype html><html><head><meta charset='utf-8'>",
                f"<title>{html.escape(title)}</title>",
                f"<style>{_STYLE}</style></head><body>",
                *body,
                "</body></html>",
            ]
        )
        + "\n"
    )


def _notes(lines: Sequence[str]) -> list[str]:
    return [f"<p class='note'>{_inline(line)}</p>" for line in lines]


def _ranking_notes(metric: str) -> list[str]:
    return [
        "`trials` counts the finished trials that took the value: complete, pruned (stopped by the pruner in "
        "training) and rejected (refused before training). Values marked (pruned) are those of a value none "
        f"of whose trials completed: the last {metric} its pruned trials reported, ranked after the complete "
        "ones; a value without a rank was never trained."
    ]


def _said(complete: int, table: str | None) -> list[str]:
    """The warnings at the top of the page."""
    said = []
    if 0 < complete < MIN_TRIALS:
        said.append(
            f"Importances and parallel coordinates rest on {complete} completed trial{'' if complete == 1 else 's'} "
            f"(fewer than {MIN_TRIALS}): read them as indicative."
        )
    if table:
        said.append(
            "The trade-off table's accuracies are on the digits data (16 px), not ImageNet, and its "
            "train times are single trials timed during the search under whatever else ran: "
            "indicative only."
        )
    return said


def _nav(files: list[str], total: int) -> str:
    if len(files) < 2:
        return ""
    links = "".join(
        f"<a href='{f}'>{k * PAGE_ROWS + 1}–{min((k + 1) * PAGE_ROWS, total)}</a>" for k, f in enumerate(files)
    )
    return f"<nav>trials: {links}</nav>"


def _budget_line(study: optuna.Study, finished: int) -> str:
    """``10 of 12 trials finished: `` against the budget the latest run was given (nothing when none is known)."""
    budget = StudyRecord.of(study).budget()
    return f"{finished} of {budget} trials finished: " if budget is not None else ""


def write_report(study: optuna.Study, out: str | Path) -> Report:
    """Write the plots, ``index.html`` (with the first page of trials) and ``trials-K.html`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    names = sorted({k for t in trials for k in t.params})
    labels = short_labels(names)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    few = len(complete) < MIN_TRIALS
    plots, skipped = _plots(study, out, labels, few)
    metric = _metrics(study)[0]
    table = tradeoff_table(study)
    components = components_table(study)
    ranking = ranking_table(study, metric)
    proxies = proxy_table(study, metric)
    said = _said(len(complete), table)
    best = {t.number for t in best_trials(study)}
    ranked = _ranked(study)
    pages = [ranked[i : i + PAGE_ROWS] for i in range(0, len(ranked), PAGE_ROWS)] or [[]]
    files = ["index.html", *(f"trials-{k}.html" for k in range(2, len(pages) + 1))]
    nav = _nav(files, len(ranked))
    counts = tally(trials).counts()
    head = [
        f"<h1>Study {html.escape(study.study_name)}</h1>",
        "<p>" + _budget_line(study, tally(trials).finished) + ", ".join(f"{v} {k}" for k, v in counts.items()) + "</p>",
        *(f"<p class='warn'>{html.escape(w)}</p>" for w in said),
    ]
    if best:
        b = min(best)
        top = next(t for t in trials if t.number == b)
        head.append(f"<p>Best: trial {b} ★, {html.escape(metric)} = {_fmt(top.values[0])}</p>")
    glossary = "".join(
        f"<li><b>{html.escape(labels[n])}</b>: <code>{html.escape(n)}</code></li>" for n in names if labels[n] != n
    )
    first = [
        *head,
        *(f"<img src='{p}' alt='{p}'{' class=wide' if p.startswith('parallel') else ''}>" for p in plots),
        *(
            f"<p class='note'>{html.escape(name)} plot not drawn: {html.escape(why)}</p>"
            for name, why in skipped.items()
        ),
        *(["<h2>Conv/attention trade-off (HaloNet)</h2>", _markdown_to_html(table)] if table else []),
        *(_notes(_tradeoff_notes(study)) if table else []),
        *(["<h2>Training components (HaloNet)</h2>", _markdown_to_html(components)] if components else []),
        *(_notes(_components_notes()) if components else []),
        *(["<h2>Modules ranked (per named choice)</h2>", _markdown_to_html(ranking)] if ranking else []),
        *(_notes(_ranking_notes(metric)) if ranking else []),
        *(["<h2>Zero-cost proxies against training</h2>", _markdown_to_html(proxies)] if proxies else []),
        *(_notes(_proxy_notes(metric)) if proxies else []),
        f"<h2>Trials (best first by {html.escape(metric)})</h2>",
        nav,
        _table(pages[0], names, labels, best),
        nav,
        *([f"<h3>Parameter labels</h3><ul>{glossary}</ul>"] if glossary else []),
    ]
    atomic_write_text(out / "index.html", _page(f"archdsl study {study.study_name}", first))
    for k, rows in enumerate(pages[1:], start=2):
        body = [
            f"<h1>Study {html.escape(study.study_name)}: trials, page {k}</h1>",
            nav,
            _table(rows, names, labels, best),
            nav,
        ]
        atomic_write_text(out / f"trials-{k}.html", _page(f"archdsl study {study.study_name}, page {k}", body))
    return Report(out, plots, table, ranking, skipped, said, files, components, proxies)


def _proxy_notes(metric: str) -> list[str]:
    return [
        f"Rank correlations over the completed trials between each proxy's score of the untrained network (one "
        f"batch of the training data) and {metric}, signed so that positive means the proxy agrees with training. "
        "A proxy is worth prescreening with (prescreen.proxy) only where it beats the parameter count here."
    ]
