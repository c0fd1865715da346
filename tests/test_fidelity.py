"""Fidelities beyond epochs: ``train.data.fraction``, and successive halving over epochs, data and resolution."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from optuna.trial import FixedTrial, TrialState

from archdsl.errors import SearchError, SpecError
from archdsl.launch.run import run_search
from archdsl.planner import PlannedSpec, plan_spec
from archdsl.search.fidelity import climb, cost_epochs, first_rung, rung_spec, rung_step, rungs
from archdsl.search.sampler import make_pruner
from archdsl.search.space.definition import PrunerSpec
from archdsl.search.space.load import load_search, search_from_text
from archdsl.search.space.resolution import resolve
from archdsl.spec.load import spec_from_text
from archdsl.train.data import DataRequest, make_datamodule
from archdsl.train.data.digits import digits_split, digits_uint8
from archdsl.train.data.fraction import fraction_indices
from archdsl.train.fit import FitResult, fit

TINY = """\
name: tiny
input: {{channels: 1, size: {size}}}
stem: {{type: conv, channels: 8}}
stages:
  - {{channels: 16, stride: 2, blocks: [{{type: bottleneck, width: 8}}]}}
head: {{type: classifier, num_classes: 10}}
train:
  epochs: 1
  batch_size: 32
  optimizer: {{lr: 3.0e-3}}
  data: {data}
"""

HALO = """\
name: halo
input: {channels: 1, size: 8}
stem: {type: conv, channels: 8}
stages:
  - channels: 16
    stride: 1
    blocks: [{type: bottleneck, width: 8, mixer: {type: halo, block_size: 4, halo_size: 1, num_heads: 2}}]
head: {type: classifier, num_classes: 10}
train: {epochs: 1, batch_size: 32, data: {name: digits}}
"""


def tiny(data: str = "{name: digits, augment: false}", size: int = 8) -> str:
    return TINY.format(data=data, size=size)


def _digits_train_labels() -> np.ndarray:
    _, _, labels = digits_uint8(1)
    return labels[digits_split(labels)[0]]


# --- train.data.fraction ----------------------------------------------------------------------------------


def test_a_fraction_keeps_every_class_its_share_and_is_fixed_by_the_seed() -> None:
    labels = _digits_train_labels()
    keep = fraction_indices(labels, 0.25, seed=0)
    assert len(keep) == round(len(labels) * 0.25) == 269
    assert len(set(keep.tolist())) == len(keep)
    counts, full = np.bincount(labels[keep], minlength=10), np.bincount(labels, minlength=10)
    assert np.all(np.abs(counts - full * 0.25) < 1)  # largest remainder: each class within one image of its share
    assert np.array_equal(fraction_indices(labels, 0.25, seed=0), keep)
    assert not np.array_equal(fraction_indices(labels, 0.25, seed=1), keep)
    assert set(keep.tolist()) <= set(fraction_indices(labels, 0.5, seed=0).tolist())  # nested: rungs add data
    assert np.bincount(labels[fraction_indices(labels, 0.001, seed=0)], minlength=10).min() == 1  # one per class


def test_the_datamodule_trains_on_the_fraction_and_leaves_val_and_test_whole() -> None:
    spec = spec_from_text(tiny("{name: digits, fraction: 0.25}"), "tiny.yaml")
    t = spec.train
    request = DataRequest(t.data, 1, 8, t.batch_size, t.seed, 10)
    data = make_datamodule(request)
    data.setup("fit")
    train, val, test = data.splits  # type: ignore[attr-defined]
    assert (len(train), len(val), len(test)) == (269, 360, 360)
    x, y, labels = digits_uint8(1)
    tr, va, te = digits_split(labels)
    keep = tr[fraction_indices(labels[tr], 0.25, seed=t.seed)]
    assert torch.equal(train.tensors[0], x[torch.from_numpy(keep)])  # the chosen training images, in order
    assert torch.equal(train.tensors[1], y[torch.from_numpy(keep)])
    assert not set(keep.tolist()) & (set(va.tolist()) | set(te.tolist()))
    assert torch.equal(val.tensors[0], x[torch.from_numpy(va)]) and torch.equal(
        test.tensors[0], x[torch.from_numpy(te)]
    )


def test_a_split_that_stacks_its_own_batches_keeps_doing_so_in_a_fraction(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in range(2):
            (tmp_path / split / f"c{c}").mkdir(parents=True)
            for i in range(8):
                Image.fromarray(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8)).save(
                    tmp_path / split / f"c{c}" / f"{i}.png"
                )
    spec = spec_from_text(tiny(f"{{name: image_folder, root: '{tmp_path}', num_workers: 0, fraction: 0.25}}"), "t.yaml")
    data = make_datamodule(DataRequest(spec.train.data, 3, 8, 4, 0, 2))
    data.setup("fit")
    train = data.splits[0]  # type: ignore[attr-defined]
    assert len(train) == 4 and sorted(train.dataset.labels[train.indices].tolist()) == [0, 0, 1, 1]
    x, y = next(iter(data.train_dataloader()))
    assert x.shape == (4, 3, 8, 8) and x.dtype == torch.uint8 and sorted(y.tolist()) == [0, 0, 1, 1]


class _Batches(Callback):
    def __init__(self) -> None:
        self.batches = 0
        self.shapes: set[tuple[int, ...]] = set()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        self.batches += 1
        self.shapes.add(tuple(batch[0].shape[1:]))


def test_a_digits_run_with_a_quarter_of_the_data_trains_a_quarter_of_the_batches(tmp_path: Path) -> None:
    seen = _Batches()
    spec = spec_from_text(tiny("{name: digits, augment: false, fraction: 0.25}"), "tiny.yaml")
    result = fit(plan_spec(spec), tmp_path / "run", progress=False, callbacks=[seen], test=False)
    assert result.epochs == 1
    assert seen.batches == math.ceil(269 / 32) == 9  # the whole split: ceil(1077 / 32) = 34
    assert math.ceil(1077 / 32) / seen.batches == pytest.approx(4, rel=0.06)


def test_a_custom_datamodule_refuses_a_fraction_where_it_is_written() -> None:
    text = tiny("{name: custom, target: 'pkg.mod:Data',\n         fraction: 0.5}")
    with pytest.raises(SpecError) as err:
        spec_from_text(text, "c.yaml")
    assert str(err.value.problems[0]) == (
        "c.yaml:12:20: train.data.fraction: a custom LightningDataModule picks its own training samples, so archdsl "
        "cannot take a stratified subset of them; fraction needs a dataset archdsl reads (digits, mnist5k, "
        "synthetic, cifar10, image_folder), got 0.5"
    )


def test_a_fraction_out_of_range_is_located() -> None:
    with pytest.raises(SpecError) as err:
        spec_from_text(tiny("{name: digits, fraction: 0}"), "tiny.yaml")
    assert str(err.value.problems[0]) == "tiny.yaml:11:34: train.data.fraction: must be greater than 0, got 0"


def test_the_fraction_is_a_parameter_path_like_any_other(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(tiny())
    (tmp_path / "search.yaml").write_text(
        "base: base.yaml\nparams:\n  train.data.fraction: {choice: [0.25, 0.5, 1.0]}\n"
    )
    space = load_search(tmp_path / "search.yaml")
    spec = resolve(space, FixedTrial({"train.data.fraction": 0.5}))  # type: ignore[arg-type]
    assert spec.train.data.fraction == 0.5 and spec.train.data.augment is False


# --- rungs: schedule, cost, pruners -----------------------------------------------------------------------


def test_the_rung_schedule_grows_by_eta_up_to_the_whole() -> None:
    def sh(**kw: Any) -> PrunerSpec:
        return PrunerSpec(name="successive_halving", **kw)

    assert rungs(sh(fidelity="data", min_fidelity=0.25, reduction_factor=2)) == (0.25, 0.5, 1.0)
    assert rungs(sh(fidelity="data", min_fidelity=0.25)) == (0.25, 0.75, 1.0)
    assert rungs(sh(fidelity="data")) == pytest.approx((1 / 9, 1 / 3, 1.0))  # default 1/eta^2
    assert rungs(sh(fidelity="data", min_fidelity=1 / 3)) == pytest.approx((1 / 3, 1.0))  # 1/3 x 3 is the whole
    assert rungs(sh(fidelity="resolution")) == pytest.approx((1 / 3, 1.0))  # default 1/eta of the side
    assert first_rung(sh()) == 2 and first_rung(sh(warmup_epochs=0)) == 1 and first_rung(sh(min_fidelity=3)) == 3
    assert [rung_step(r, 3) for r in range(3)] == [1, 3, 9]


def test_rung_specs_and_their_cost_in_whole_epochs() -> None:
    spec = spec_from_text(tiny("{name: digits, fraction: 0.5}", size=16), "tiny.yaml")
    data = rung_spec(spec, "data", 0.25)
    assert data.train.data.fraction == 0.125 and data.input.size == 16 and data.source is spec.source
    small = rung_spec(spec, "resolution", 0.5)
    assert small.input.size == 8 and small.train.data.fraction == 0.5
    assert rung_spec(spec, "data", 1.0) is spec
    assert cost_epochs(4, spec, spec) == 2.0  # 4 epochs over half the split
    assert cost_epochs(4, data, spec) == 0.5
    assert cost_epochs(4, small, spec) == 0.5  # a quarter of the pixels


def _space(pruner: str, objectives: str = "[{metric: val/acc}]") -> str:
    """A search file whose line 3 is ``pruner: ...``."""
    params = "params:\n  train.optimizer.lr: {choice: [0.001]}\n"
    return f"base: base.yaml\nobjectives: {objectives}\npruner: {pruner}\n{params}"


def test_the_pruners_are_optunas(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(tiny())

    def pruner(text: str, objectives: str = "[{metric: val/acc}]") -> optuna.pruners.BasePruner:
        return make_pruner(search_from_text(_space(text, objectives), "s.yaml", tmp_path))

    sh = pruner("{name: successive_halving, min_fidelity: 2, reduction_factor: 4}")
    assert isinstance(sh, optuna.pruners.SuccessiveHalvingPruner)
    assert (sh._min_resource, sh._reduction_factor) == (2, 4)
    data = pruner("{name: successive_halving, fidelity: data, min_fidelity: 0.25, reduction_factor: 2}")
    assert isinstance(data, optuna.pruners.SuccessiveHalvingPruner)
    assert (data._min_resource, data._reduction_factor) == (1, 2)
    hb = pruner("{name: hyperband, fidelity: resolution, min_fidelity: 0.25, reduction_factor: 2}")
    assert isinstance(hb, optuna.pruners.HyperbandPruner)
    assert (hb._min_resource, hb._max_resource, hb._reduction_factor) == (1, 4, 2)  # rungs 0.25, 0.5, 1: steps 1-4
    epochs = pruner("{name: hyperband, warmup_epochs: 3}")
    assert isinstance(epochs, optuna.pruners.HyperbandPruner) and epochs._min_resource == 3
    assert isinstance(pruner("{name: median}"), optuna.pruners.MedianPruner)
    several = "[{metric: val/acc}, {metric: params, direction: minimize}]"
    assert isinstance(pruner("{name: successive_halving, fidelity: data}", several), optuna.pruners.NopPruner)


@pytest.mark.parametrize(
    ("pruner", "col", "message"),
    [
        (
            "{name: median, fidelity: data}",
            34,
            "pruner.fidelity: data trains rungs of growing fidelity, which only successive_halving and hyperband "
            "compare; name median prunes per epoch: use name: successive_halving (or fidelity: epochs)",
        ),
        (
            "{name: none, reduction_factor: 2}",
            40,
            "pruner.reduction_factor: is read by successive_halving and hyperband only; name none has none, got 2",
        ),
        (
            "{name: successive_halving, min_fidelity: 1.5}",
            50,
            "pruner.min_fidelity: is a number of epochs for fidelity epochs: a whole number, at least 1, got 1.5",
        ),
        (
            "{name: successive_halving, fidelity: resolution, min_fidelity: 1}",
            72,
            "pruner.min_fidelity: is the first rung's fraction of input.size for fidelity resolution: it must be "
            "below 1 (1 is the last rung), got 1",
        ),
        (
            "{name: successive_halving, reduction_factor: 1}",
            54,
            "pruner.reduction_factor: must be greater than or equal to 2, got 1",
        ),
        (
            "{name: halving}",
            16,
            "pruner.name: unknown value 'halving'; expected one of: median, successive_halving, hyperband, none",
        ),
    ],
)
def test_bad_pruner_fields_are_located(tmp_path: Path, pruner: str, col: int, message: str) -> None:
    (tmp_path / "base.yaml").write_text(tiny())
    (tmp_path / "search.yaml").write_text(_space(pruner))
    with pytest.raises(SearchError) as err:
        load_search(tmp_path / "search.yaml")
    assert [str(p) for p in err.value.problems] == [f"{tmp_path}/search.yaml:3:{col}: {message}"]


# --- rungs: training -------------------------------------------------------------------------------------


def test_a_resolution_rung_feeds_the_model_smaller_images(tmp_path: Path) -> None:
    seen = _Batches()
    spec = rung_spec(spec_from_text(tiny(size=8), "tiny.yaml"), "resolution", 0.5)
    planned = plan_spec(spec)
    assert planned.plan.input == (1, 4, 4)
    fit(planned, tmp_path / "run", progress=False, callbacks=[seen], test=False)
    assert seen.shapes == {(1, 4, 4)}  # the device step resized the 8-px digits to 4 px


def test_a_rung_the_architecture_cannot_plan_at_is_skipped_and_said_so() -> None:
    planned = plan_spec(spec_from_text(HALO, "halo.yaml"))
    pruner = PrunerSpec(name="successive_halving", fidelity="resolution", min_fidelity=0.25, reduction_factor=2)
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.SuccessiveHalvingPruner(1, 2))
    trial = study.ask()
    trained: list[tuple[int, str, bool]] = []

    def train(rung: PlannedSpec, where: Path, test: bool) -> FitResult:
        trained.append((rung.spec.input.size, where.name, test))
        return FitResult(0.5, 1.0, 0.5, 1, 0.1, rung.plan.params, str(where / "best.ckpt"))

    climbed = climb(trial, planned, pruner, Path("/nonexistent/trial"), "val/acc", train, "host")
    assert trained == [(4, "1", False), (8, "trial", True)]  # 2 px: the halo block of 4 does not divide it
    ran = trial.user_attrs["rungs"]
    assert ran[0]["rung"] == 0 and "feature map 2x2 is not divisible by block_size=4" in ran[0]["skipped"]
    assert [r["size"] for r in ran[1:]] == [4, 8]
    assert climbed.epochs == 2 and climbed.cost_epochs == pytest.approx(1.25)  # 1 x 1/4 + 1 x 1
    assert trial.user_attrs["cost_epochs"] == pytest.approx(1.25)


def _steps(run: Path) -> int:
    """Training steps of a one-epoch run, from its history."""
    with (run / "metrics.csv").open() as f:
        return 1 + max(int(row["step"]) for row in csv.DictReader(f) if row["train/loss_epoch"])


def test_a_search_over_data_rungs_trains_on_more_data_and_prunes_after_a_rung(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(tiny())
    (tmp_path / "search.yaml").write_text(
        "base: base.yaml\n"
        "budget: {trials: 4}\n"
        "sampler: {name: random, seed: 0}\n"
        "pruner: {name: successive_halving, fidelity: data, min_fidelity: 0.5, reduction_factor: 2}\n"
        "params:\n"
        "  train.optimizer.lr: {choice: [3.0e-2, 1.0e-7]}\n"
    )
    out = tmp_path / "out"
    result = run_search(load_search(tmp_path / "search.yaml"), out, progress=False)
    study = optuna.load_study(study_name="search", storage=result.storage)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert complete and pruned
    for t in complete:
        ran = t.user_attrs["rungs"]
        assert [(r["fidelity"], r["fraction"], r["epochs"]) for r in ran] == [(0.5, 0.5, 1), (1.0, 1.0, 1)]
        assert t.values[0] == ran[1]["val/acc"] == t.user_attrs["val/acc"]
        assert t.user_attrs["epochs"] == 2 and t.user_attrs["cost_epochs"] == pytest.approx(1.5)
        assert list(t.intermediate_values) == [1]  # rung 0 at step eta^0; the last rung is the trial's value
        trial_dir = out / "trials" / f"{t.number:04d}"
        assert (_steps(trial_dir / "rungs" / "0"), _steps(trial_dir)) == (math.ceil(538 / 32), math.ceil(1077 / 32))
    for t in pruned:
        assert [r["rung"] for r in t.user_attrs["rungs"]] == [0]
        assert t.user_attrs["epochs"] == 1 and t.user_attrs["cost_epochs"] == pytest.approx(0.5)
        assert t.params["train.optimizer.lr"] == 1e-7
        assert not (out / "trials" / f"{t.number:04d}" / "best.ckpt").exists()  # the full rung never trained


def test_successive_halving_over_epochs_decides_after_the_epochs_its_rungs_name(tmp_path: Path) -> None:
    """``min_fidelity: 1``: the first decision comes after one epoch (the step reported is the epochs trained, the
    resource Optuna's pruner counts), so a pruned trial trained one epoch, not two; with eta 2 the next rung is at
    2 epochs, which the survivors train in full."""
    (tmp_path / "base.yaml").write_text(tiny().replace("epochs: 1", "epochs: 2"))
    (tmp_path / "search.yaml").write_text(
        "base: base.yaml\n"
        "budget: {trials: 4}\n"
        "sampler: {name: random, seed: 0}\n"
        "pruner: {name: successive_halving, min_fidelity: 1, reduction_factor: 2}\n"
        "params:\n"
        "  train.optimizer.lr: {choice: [3.0e-2, 1.0e-7]}\n"
    )
    result = run_search(load_search(tmp_path / "search.yaml"), tmp_path / "out", progress=False)
    study = optuna.load_study(study_name="search", storage=result.storage)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert complete and pruned
    for t in complete:
        assert sorted(t.intermediate_values) == [1, 2] and t.user_attrs["epochs"] == 2
    for t in pruned:
        assert list(t.intermediate_values) == [1]
        assert t.user_attrs["epochs"] == 1 and t.user_attrs["cost_epochs"] == pytest.approx(1.0)
        assert t.params["train.optimizer.lr"] == 1e-7
