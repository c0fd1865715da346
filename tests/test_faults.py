"""Tests written to fail on the faults a review planted: an identity DropPath, a constant learning-rate
schedule, weight decay on the wrong parameters, a model that does not learn."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch

import archdsl
from archdsl.nn.drop_path import DropPath
from archdsl.train.module import _Schedule, param_groups

ROOT = Path(__file__).resolve().parent.parent


def test_drop_path_zeroes_whole_samples_and_rescales_the_rest() -> None:
    torch.manual_seed(0)
    drop = DropPath(0.25).train()
    x = torch.rand(4000, 3, 2, 2) + 0.5
    y = drop(x)
    per_sample = (y / x).flatten(1)  # per sample: all 0 (dropped) or all 1/keep (kept and rescaled)
    assert torch.allclose(per_sample, per_sample[:, :1].expand_as(per_sample))
    values = per_sample[:, 0]
    dropped = values == 0
    assert torch.allclose(values[~dropped], torch.full_like(values[~dropped], 1 / 0.75))
    assert abs(dropped.float().mean().item() - 0.25) < 0.03  # 1000 of 4000 expected; 3 sigma is about 0.02
    assert abs(y.mean().item() - x.mean().item()) < 0.02  # unbiased in expectation
    assert torch.equal(drop.eval()(x), x) and torch.equal(DropPath(0.0).train()(x), x)


def test_schedule_is_linear_warmup_then_cosine_to_the_floor() -> None:
    s = _Schedule(total=110, warmup=10, name="cosine", floor=0.1)
    # warm-up: (step + 1) / (warmup + 1)
    assert s(0) == pytest.approx(1 / 11) and s(4) == pytest.approx(5 / 11) and s(9) == pytest.approx(10 / 11)
    # cosine over the 100 remaining steps: 1 at its start, 0.1 + 0.9 * (1 + cos(pi/2)) / 2 = 0.55 halfway,
    # 0.1 + 0.9 * (1 + cos(pi/4)) / 2 at a quarter, the floor 0.1 at the end and after
    assert s(10) == pytest.approx(1.0) and s(60) == pytest.approx(0.55)
    assert s(35) == pytest.approx(0.1 + 0.45 * (1 + math.sqrt(0.5)))
    assert s(110) == pytest.approx(0.1) and s(500) == pytest.approx(0.1)
    constant = _Schedule(total=110, warmup=10, name="constant", floor=0.1)
    assert constant(5) == pytest.approx(6 / 11) and constant(60) == 1.0


def test_training_follows_the_schedule(tmp_path: Path) -> None:
    from lightning.pytorch.callbacks import LearningRateMonitor

    from archdsl.planner import plan_spec
    from archdsl.train.fit import fit

    spec = archdsl.load_spec(
        ROOT / "specs" / "digits_hybrid.yaml",
        [
            "train.epochs=2",
            "train.schedule.warmup_epochs=1",
            "train.optimizer.lr=0.002",
            "train.schedule.min_lr_ratio=0.25",
        ],
    )
    fit(plan_spec(spec), tmp_path / "run", progress=False, test=False, callbacks=[LearningRateMonitor("step")])
    with (tmp_path / "run" / "metrics.csv").open() as f:
        logged = {int(r["step"]): float(r["lr-AdamW/pg1"]) for r in csv.DictReader(f) if r.get("lr-AdamW/pg1")}
    # 1077 training images in batches of 64: 17 steps an epoch, 34 in all, 17 of warm-up; logged every 10 steps
    assert logged == pytest.approx(
        {
            9: 0.002 * 10 / 18,
            19: 0.002 * (0.25 + 0.75 * 0.5 * (1 + math.cos(math.pi * 2 / 17))),
            29: 0.002 * (0.25 + 0.75 * 0.5 * (1 + math.cos(math.pi * 12 / 17))),
        }
    )


def test_weight_decay_goes_to_conv_and_linear_weights_only() -> None:
    model = archdsl.build_model(archdsl.load_spec(ROOT / "specs" / "hybrid_vit_tiny.yaml"))
    decay, no_decay = param_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    expected = {
        f"{module_name}.weight"
        for module_name, module in model.named_modules()
        if isinstance(module, torch.nn.Conv2d | torch.nn.Linear | torch.nn.Conv1d)
    }
    assert {names[id(p)] for p in decay["params"]} == expected
    assert {names[id(p)] for p in no_decay["params"]} == set(dict(model.named_parameters())) - expected
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0


@pytest.mark.slow
def test_a_short_run_learns_the_digits(tmp_path: Path) -> None:
    """Chance is 0.10; three epochs of the digits hybrid reach far above it (0.9 and more when measured)."""
    from archdsl.planner import plan_spec
    from archdsl.train.fit import fit

    spec = archdsl.load_spec(ROOT / "specs" / "digits_hybrid.yaml", ["train.epochs=3"])
    result = fit(plan_spec(spec), tmp_path / "run", progress=False)
    assert result.val_acc >= 0.6 and result.test_acc >= 0.6
