"""The HTML report as a person reads it: a small study built in-process (trials made with
``optuna.trial.create_trial``, no training), written by ``archdsl report`` and rendered by headless Chromium.

The study has HaloNet's four ``conv_stages`` rows, one of them with pruned trials only; a named choice
(``outlook``) whose trials were all pruned; integer, float and categorical parameters, one of them absent
from some trials; rejected trials; and trials finished out of order. Chromium is Debian's ``chromium``
package (``.ci/run`` installs it); without it the page test is skipped, unless ``ARCHDSL_REQUIRE_SERVICES=1``
(CI), where it fails.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from archdsl.cli import main
from archdsl.search.record import Attr, write_study
from archdsl.search.space.load import load_search

ROOT = Path(__file__).resolve().parents[1]
CONV = "conv_stages"
BLOCK = "stages.*.blocks.1"
HALO = "stages.*.blocks.*.mixer.halo_size"
DISTS = {
    CONV: IntDistribution(0, 3),
    BLOCK: CategoricalDistribution(["bottleneck", "nonlocal", "outlook"]),
    "stages.2.channels": CategoricalDistribution([96, 128, 192]),
    "stages.1.blocks.0.repeat": IntDistribution(1, 2),
    HALO: IntDistribution(1, 2),
    "train.optimizer.lr": FloatDistribution(1.5e-3, 6e-3, log=True),
}
# (conv stages, block, channels, repeat, lr, outcome, val acc or the values reported each epoch, seconds)
TRIALS: list[tuple[int, str, int, int, float, str, object, float]] = [
    (2, "bottleneck", 96, 1, 2.0e-3, "complete", 0.962, 20.0),
    (0, "nonlocal", 128, 2, 3.0e-3, "complete", 0.951, 34.0),
    (3, "outlook", 192, 1, 4.0e-3, "pruned", [0.41, 0.52, 0.50], 0.0),
    (1, "bottleneck", 128, 2, 1.8e-3, "complete", 0.973, 27.0),
    (2, "nonlocal", 192, 2, 5.0e-3, "rejected", "params 2,345,678 > budget.max_params 2,000,000", 0.0),
    (3, "bottleneck", 96, 1, 2.5e-3, "pruned", [0.48, 0.55], 0.0),
    (1, "outlook", 96, 1, 5.5e-3, "pruned", [0.39], 0.0),
    (2, "nonlocal", 128, 1, 2.2e-3, "complete", 0.958, 21.0),
    (0, "outlook", 128, 2, 3.5e-3, "pruned", [0.44, 0.47, 0.46], 0.0),
    (2, "bottleneck", 192, 2, 1.6e-3, "rejected", "stages.2.channels: not divisible by heads", 0.0),
    (1, "nonlocal", 96, 2, 4.5e-3, "complete", 0.944, 25.0),
]


def _trial(number: int, row: tuple[int, str, int, int, float, str, object, float]) -> optuna.trial.FrozenTrial:
    conv, block, channels, repeat, lr, outcome, result, seconds = row
    params: dict[str, object] = {
        CONV: conv,
        BLOCK: block,
        "stages.2.channels": channels,
        "stages.1.blocks.0.repeat": repeat,
        "train.optimizer.lr": lr,
    }
    if conv < 2:  # halo mixers are left in the first stages only: the parameter is absent from the rest
        params[HALO] = 1 + number % 2
    attrs: dict[str, object] = {Attr.PARAMS.value: 50_000 + 1_000 * number, Attr.FLOPS.value: 3_000_000 + number}
    dists = {k: DISTS[k] for k in params}
    if outcome == "complete":
        assert isinstance(result, float)
        attrs |= {Attr.VAL_ACC.value: result, Attr.SECONDS.value: seconds, Attr.EPOCHS.value: 4}
        attrs[Attr.TEST_ACC.value] = result - 0.01
        return optuna.trial.create_trial(params=params, distributions=dists, value=result, user_attrs=attrs)
    if outcome == "pruned":
        assert isinstance(result, list)
        steps = dict(enumerate((float(v) for v in result), start=1))  # step: epochs trained
        attrs[Attr.EPOCHS.value] = len(result)
        return optuna.trial.create_trial(  # Optuna keeps the last value reported as a pruned trial's value
            params=params,
            distributions=dists,
            value=steps[len(steps)],
            state=TrialState.PRUNED,
            intermediate_values=steps,
            user_attrs=attrs,
        )
    attrs |= {Attr.REJECTED.value: True, Attr.REASON.value: str(result), Attr.REJECT_MS.value: 3.0}
    return optuna.trial.create_trial(params=params, distributions=dists, state=TrialState.PRUNED, user_attrs=attrs)


def build_study(directory: Path) -> optuna.Study:
    """The study of this file, in SQLite under ``directory`` (``study.db``, as ``archdsl search`` writes)."""
    directory.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{directory / 'study.db'}"
    study = optuna.create_study(storage=storage, study_name="report", direction="maximize")
    space = load_search(ROOT / "search" / "digits.yaml")
    write_study(study, search=space.to_data(), out=directory, versions={"archdsl": "test"}, fingerprint="test")
    for number, row in enumerate(TRIALS):
        study.add_trial(_trial(number, row))
    study.add_trial(  # a failed trial is no row of any table
        optuna.trial.create_trial(
            params={CONV: 3, BLOCK: "outlook"},
            distributions={CONV: DISTS[CONV], BLOCK: DISTS[BLOCK]},
            state=TrialState.FAIL,
            user_attrs={Attr.ERROR.value: "RuntimeError: out of memory"},
        )
    )
    return study


class _Page(HTMLParser):
    """The visible text of a page, its tables (rows of cell texts) and its images' sources."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tables: list[list[list[str]]] = []
        self.images: list[str] = []
        self._hidden = 0
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script", "title"):
            self._hidden += 1
        elif tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(dict(attrs).get("src") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "title"):
            self._hidden -= 1
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._hidden:
            return
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("ARCHDSL_REQUIRE_SERVICES") == "1":
        pytest.fail("ARCHDSL_REQUIRE_SERVICES=1 but chromium is not on PATH (apt-get install chromium)")
    pytest.skip("chromium is not on PATH (Debian: apt-get install chromium)")


def _render(chromium: str, page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args, page.as_uri()]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


def _table_after(page: _Page, dom: str, heading: str) -> list[list[str]]:
    """The rows of the first table after the ``<h2>`` that starts with ``heading``."""
    before = dom.split(f"<h2>{heading}")[0]
    return page.tables[before.count("<table")]


def test_the_report_reads_as_a_person_reads_it_in_chromium(tmp_path: Path) -> None:
    from PIL import Image

    chromium = _chromium()
    started = time.perf_counter()
    build_study(tmp_path / "run")
    assert main(["report", str(tmp_path / "run")]) == 0
    index = tmp_path / "run" / "report" / "index.html"
    dom = _render(chromium, index, "--dump-dom").stdout
    page = _Page()
    page.feed(dom)
    text = " ".join(page.text)
    assert "Conv/attention trade-off" in text and "Modules ranked" in text
    # no Markdown, no Python None, anywhere a person reads
    assert "`" not in text and "**" not in text and not re.search(r"\bNone\b", text)
    assert "<code>stages.*.blocks.1</code>" in dom
    # every trade-off row, the one whose trials were all pruned at the best value they reported
    tradeoff = _table_after(page, dom, "Conv/attention trade-off")
    rows = {r[0]: r for r in tradeoff[1:]}
    assert list(rows) == ["–", "1", "1, 2", "1, 2, 3"]
    assert rows["1, 2, 3"][2] == "pruned: 0.5500 at epoch 2" and rows["1, 2, 3"][3] == "–"
    assert rows["1"][2] == "0.9730" and rows["1, 2"][2] == "0.9620"
    assert "The row with 3 leading conv stages has no complete trial" in text
    # the module ranking counts pruned and rejected trials; outlook's values are its pruned trials'
    ranking = {(r[0], r[1]): r for r in _table_after(page, dom, "Modules ranked")[1:]}
    outlook = ranking[("stages.*.blocks.1", "outlook")]
    assert outlook[3] == "3 (3 pruned)" and outlook[4] == "0.5000 (pruned)" and outlook[2] == "3"
    assert ranking[("stages.*.blocks.1", "nonlocal")][3] == "4 (1 rejected)"
    assert ranking[("stages.*.blocks.1", "bottleneck")][3:5] == ["4 (1 pruned, 1 rejected)", "0.9730"]
    # every image a PNG that opens; the page as Chromium draws it is no blank page
    assert {"history.png", "importances.png", "parallel_coordinates.png"} <= set(page.images)
    for src in page.images:
        with Image.open(index.parent / src) as image:
            assert image.format == "PNG" and image.width > 300 and image.height > 200
    shot = tmp_path / "page.png"
    _render(chromium, index, f"--screenshot={shot}", "--window-size=1280,2400")
    with Image.open(shot) as image:
        assert image.size == (1280, 2400)
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 50
    print(f"report and two Chromium renderings: {time.perf_counter() - started:.1f} s")


def test_the_plots_label_integer_and_categorical_axes_with_their_values(tmp_path: Path) -> None:
    from archdsl.search.report import html

    study = build_study(tmp_path)
    names = sorted(DISTS)
    labels = html.short_labels(names)
    complete = [t for t in study.get_trials() if t.state == TrialState.COMPLETE]
    axes = {a.label: a for a in (html._param_axis(n, labels[n], complete) for n in names)}
    assert [t for _, t in axes["conv_stages"].ticks] == ["0", "1", "2", "3"]
    assert [t for _, t in axes["stage 1 repeat"].ticks] == ["1", "2"]
    assert [t for _, t in axes["stage 2 channels"].ticks] == ["96", "128", "192"]
    assert [t for _, t in axes["blocks.1"].ticks] == ["bottleneck", "nonlocal", "outlook"]
    halo = axes["halo_size"]  # absent where conv_stages >= 2: drawn at "absent", never "None"
    assert [t for _, t in halo.ticks] == ["1", "2", "absent"] and html.ABSENT in halo.positions
    fig = html._parallel_plot(study, labels, "val/acc", few=True)
    shown = {t.get_text() for ax in fig.axes for t in ax.texts}
    assert {"0", "3", "96", "outlook", "absent"} <= shown and not any("None" in s for s in shown)
    # titles fit: a long one is wrapped until nothing lies outside the figure
    rows = html.importances(study)
    fig = html._importance_plot(rows, {n: n + " of a very long path" for n, _, _ in rows}, "val/acc", few=True)
    html._fit(fig)
    assert html._outside(fig) == []
    history = html._history_plot(study, "val/acc")
    ax = history.axes[0]
    legend = {t.get_text() for t in ax.get_legend().get_texts()}
    assert legend == {
        "complete",
        "pruned (last value reported)",
        "rejected (not trained; no value)",
        "best so far (complete trials)",
    }
    xs = [int(x) for x in ax.collections[0].get_offsets()[:, 0]]  # complete trials at their trial numbers
    assert xs == [i for i, row in enumerate(TRIALS) if row[5] == "complete"]


def test_a_tradeoff_row_whose_trials_were_all_rejected_is_listed(tmp_path: Path) -> None:
    from archdsl.search.report.html import tradeoff_table

    study = build_study(tmp_path)
    study.add_trial(
        optuna.trial.create_trial(
            params={CONV: 3},
            distributions={CONV: DISTS[CONV]},
            state=TrialState.PRUNED,
            user_attrs={Attr.REJECTED.value: True, Attr.REASON.value: "too big"},
        )
    )
    only_rejected = optuna.create_study(direction="maximize")
    for trial in study.get_trials():
        if trial.params.get(CONV) != 3 or not trial.intermediate_values:
            only_rejected.add_trial(trial)
    table = tradeoff_table(only_rejected)
    assert table is not None
    lines = table.splitlines()
    assert len(lines) == 2 + 4
    assert lines[-1] == "| 1, 2, 3 | 4 | rejected before training | – | 83.8 | 0.5 |"
    assert lines[2].startswith("| – | 1, 2, 3, 4 | 0.9510 | 1.70 (34.0 s) |")  # relative to conv 1, 2: 20 s


def test_progress_counters_never_repeat_when_trials_finish_out_of_order(tmp_path: Path) -> None:
    from archdsl.search.report.progress import Progress

    space = load_search(ROOT / "search" / "digits.yaml")
    study = optuna.create_study(direction="maximize")
    stream = io.StringIO()
    progress = Progress(space, 8, study, stream)
    dist = {CONV: DISTS[CONV]}
    running = [study.ask(dist) for _ in range(4)]  # four workers' trials, 0-3
    study.tell(running[2], 0.5)  # trial 2 finishes first
    progress.update(study)
    study.tell(running[0], 0.6)
    study.tell(running[3], 0.4)  # two finish between polls
    progress.update(study)
    study.tell(running[1], state=TrialState.FAIL)  # a failure is printed, not counted
    progress.update(study)
    lines = stream.getvalue().splitlines()
    heads = [re.match(r"\[(\d+)/8\] trial (\d+)", line).groups() for line in lines]  # type: ignore[union-attr]
    assert heads == [("1", "2"), ("2", "0"), ("3", "3"), ("3", "1")]
    assert "complete 3 pruned 0 rejected 0 failed 1" in lines[-1]
