"""The papers' training recipe: mixup/CutMix targets, RandAugment, random erasing, the device pipeline, EMA."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from kornia.augmentation.auto import RandAugment
from torch import nn

import archdsl
from archdsl.cli import main
from archdsl.compiler.build import build_from_plan
from archdsl.datasets.digits import DigitsData
from archdsl.errors import SpecError
from archdsl.planner import plan_spec
from archdsl.spec.augment import AugmentSpec, EmaSpec
from archdsl.spec.load import load_spec
from archdsl.train.data import DataRequest, make_datamodule
from archdsl.train.fit import fit
from archdsl.train.recipe.ema import EmaWeights, HostCountedAverage, ema_decay
from archdsl.train.recipe.images import OPS_GROUP, ImageRecipe, image_recipe
from archdsl.train.recipe.mix import Mix, soft_targets

B, C, H, W = 8, 1, 12, 10

FULL = {
    "randaugment": {"num_ops": 2, "magnitude": 9, "magnitude_std": 0.5},
    "random_erasing": {"p": 0.25},
    "mixup": {"alpha": 0.8},
    "cutmix": {"alpha": 1.0},
}


def _mix(smoothing: float = 0.0, classes: int = B, **augment: Any) -> Mix:
    return Mix(AugmentSpec.model_validate(augment), classes, smoothing)


def _constant_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Image ``i`` holds the value ``i + 1`` everywhere and label ``i``: where a pixel came from is its value."""
    x = torch.arange(1, B + 1, dtype=torch.float32).view(B, 1, 1, 1).expand(B, C, H, W).contiguous()
    return x, torch.arange(B)


# --- mixup and CutMix ---------------------------------------------------------------------------------------


def test_soft_targets_fold_label_smoothing() -> None:
    t = soft_targets(torch.tensor([2, 0]), 4, 0.2)
    assert torch.allclose(t, torch.tensor([[0.05, 0.05, 0.85, 0.05], [0.85, 0.05, 0.05, 0.05]]))
    assert torch.allclose(t.sum(1), torch.ones(2))


@pytest.mark.parametrize("seed", range(12))
def test_mixup_blends_images_and_targets_with_one_weight(seed: int) -> None:
    torch.manual_seed(seed)
    x, y = torch.randn(B, C, H, W), torch.arange(B)
    out, targets = _mix(mixup={"alpha": 0.8})(x, y)
    lam = targets[0, 0].item()
    assert 0.5 <= lam <= 1.0  # each image keeps the larger share of itself
    assert torch.allclose(targets.sum(1), torch.ones(B), atol=1e-6)
    expected_targets = lam * torch.eye(B) + (1 - lam) * torch.eye(B).flip(0)
    assert torch.allclose(targets, expected_targets, atol=1e-6)
    assert torch.allclose(out, lam * x + (1 - lam) * x.flip(0), atol=1e-6)


@pytest.mark.parametrize("seed", range(24))
def test_cutmix_targets_are_the_pasted_area_exactly(seed: int) -> None:
    torch.manual_seed(seed)
    x, y = _constant_batch()
    out, targets = _mix(smoothing=0.1, classes=B, cutmix={"alpha": 1.0})(x, y)
    assert torch.allclose(targets.sum(1), torch.ones(B), atol=1e-6)
    off = 0.1 / B
    for i in range(B):
        j = B - 1 - i
        own = (out[i] == i + 1).float().mean().item()
        partner = (out[i] == j + 1).float().mean().item()
        assert own + partner == pytest.approx(1.0)  # nothing but the two images
        assert own >= 0.5  # the larger share is the image's own
        # the smoothed one-hot rows mixed by the pixel shares, to float32 rounding
        assert targets[i, y[i]].item() == pytest.approx(own * (1 - 0.1) + off, abs=1e-6)
        assert targets[i, y[j]].item() == pytest.approx(partner * (1 - 0.1) + off, abs=1e-6)
        # the partner's pixels, or (when the image keeps the box) the image's own, form one box
        assert _is_one_box(out[i, 0] == j + 1) or _is_one_box(out[i, 0] == i + 1)


def _is_one_box(mask: torch.Tensor) -> bool:
    """Whether the true entries of a 2-D mask fill their bounding box (no entries: an empty box)."""
    if not mask.any():
        return True
    rows, cols = mask.any(1).nonzero(), mask.any(0).nonzero()
    box = mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    return bool(box.all()) and int(box.sum()) == int(mask.sum())


@pytest.mark.parametrize("kind", ["mixup", "cutmix"])
def test_a_vanishing_alpha_leaves_the_batch_unchanged(kind: str) -> None:
    torch.manual_seed(0)
    mix = _mix(**{kind: {"alpha": 1e-4}})
    for _ in range(20):
        x, y = torch.randn(B, C, H, W), torch.arange(B)
        out, targets = mix(x, y)
        assert torch.allclose(out, x, atol=1e-6)
        assert torch.allclose(targets, torch.eye(B), atol=1e-6)


def test_mix_and_switch_probabilities() -> None:
    torch.manual_seed(0)
    never = _mix(mixup={"alpha": 1.0}, mix_prob=0.0)
    assert {never.draw(H, W).kind for _ in range(50)} == {"none"}
    only_cutmix = _mix(mixup={"alpha": 1.0}, cutmix={"alpha": 1.0}, switch_prob=1.0)
    assert {only_cutmix.draw(H, W).kind for _ in range(50)} == {"cutmix"}
    only_mixup = _mix(mixup={"alpha": 1.0}, cutmix={"alpha": 1.0}, switch_prob=0.0)
    assert {only_mixup.draw(H, W).kind for _ in range(50)} == {"mixup"}
    half = _mix(mixup={"alpha": 1.0}, cutmix={"alpha": 1.0}, mix_prob=0.5)
    kinds = [half.draw(H, W).kind for _ in range(400)]
    assert 150 < kinds.count("none") < 250 and kinds.count("mixup") > 50 and kinds.count("cutmix") > 50


# --- image operations ---------------------------------------------------------------------------------------

IDENTITY_AT_ZERO = [
    [("rotate", -30.0, 30.0)],
    [("shear_x", -0.3, 0.3)],
    [("shear_y", -0.3, 0.3)],
    [("translate_x", -0.45, 0.45)],
    [("translate_y", -0.45, 0.45)],
]
"""RandAugment operations that are the identity at magnitude 0 (colour ops at 0 are not: factor 0.1)."""


def test_randaugment_at_magnitude_zero_with_identity_ops_leaves_images_unchanged() -> None:
    torch.manual_seed(0)
    x = torch.rand(2 * OPS_GROUP + 3, 3, 16, 16)
    still = ImageRecipe(RandAugment(n=2, m=15, policy=IDENTITY_AT_ZERO), None, magnitude=0.0)  # type: ignore[arg-type]
    assert torch.allclose(still.pixels(x), x, atol=1e-5)
    moved = ImageRecipe(RandAugment(n=2, m=15, policy=IDENTITY_AT_ZERO), None, magnitude=9.0)  # type: ignore[arg-type]
    out = moved.pixels(x)
    assert out.shape == x.shape and (out - x).abs().amax() > 0.1
    assert moved.policy is not None and moved.policy.m == pytest.approx(27.0)  # kornia's m = 3 x magnitude


def test_randaugment_from_the_spec_draws_magnitudes_around_the_spec() -> None:
    recipe = image_recipe(
        AugmentSpec.model_validate({"randaugment": {"num_ops": 2, "magnitude": 5, "magnitude_std": 1}})
    )
    assert recipe is not None and recipe.erasing is None
    torch.manual_seed(0)
    drawn = [recipe._draw_magnitude() for _ in range(2000)]
    assert min(drawn) >= 0.0 and max(drawn) <= 10.0
    assert sum(drawn) / len(drawn) == pytest.approx(5.0, abs=0.1)
    assert image_recipe(AugmentSpec.model_validate({"mixup": {"alpha": 1.0}})) is None  # no image operation


@pytest.mark.parametrize("seed", range(6))
def test_random_erasing_touches_only_the_erased_boxes(seed: int) -> None:
    torch.manual_seed(seed)
    recipe = image_recipe(AugmentSpec.model_validate({"random_erasing": {"p": 0.5}}))
    assert recipe is not None
    x = torch.randn(32, 3, 16, 16) + 10.0  # no pixel is 0 before erasing
    out = recipe.standardised(x)
    erased_images = 0
    for before, after in zip(x, out, strict=True):
        changed = (before != after).any(0)
        if not changed.any():
            continue
        erased_images += 1
        assert _is_one_box(changed)
        assert (after[:, changed] == 0).all()  # set to the mean: 0 after standardising
        assert torch.equal(after[:, ~changed], before[:, ~changed])
    assert 4 <= erased_images <= 28


def test_the_recipe_is_reproducible_under_the_seed() -> None:
    recipe = image_recipe(AugmentSpec.model_validate(FULL))
    mix = Mix(AugmentSpec.model_validate(FULL), 10, 0.1)
    assert recipe is not None

    def run(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        L.seed_everything(seed, verbose=False)
        x = torch.rand(40, 3, 16, 16)
        return mix(recipe.standardised(recipe.pixels(x)), torch.randint(0, 10, (40,)))

    a, b, c = run(3), run(3), run(4)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def _digits_data(augment: dict[str, Any]) -> L.LightningDataModule:
    request = DataRequest(DigitsData(name="digits"), 1, 16, 32, 0, 10, augment=AugmentSpec.model_validate(augment))
    data = make_datamodule(request)
    data.setup()
    return data


class _Stage:
    """Stands in for the trainer's state in ``on_after_batch_transfer``."""

    def __init__(self, training: bool) -> None:
        self.training = training


@pytest.mark.parametrize(
    "device",
    ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"))],
)
def test_the_loader_hands_over_uint8_and_the_device_step_augments_there(device: str) -> None:
    data = _digits_data(FULL)
    x, y = next(iter(data.train_dataloader()))
    assert x.dtype == torch.uint8 and tuple(x.shape[1:]) == (1, 8, 8)  # what crosses to the device
    x, y = x.to(device), y.to(device)
    torch.manual_seed(0)
    data.trainer = _Stage(training=True)  # type: ignore[assignment]
    train, _ = data.on_after_batch_transfer((x, y), 0)
    data.trainer = _Stage(training=False)  # type: ignore[assignment]
    val, _ = data.on_after_batch_transfer((x, y), 0)
    plain = _digits_data({})
    plain.trainer = _Stage(training=False)  # type: ignore[assignment]
    reference, _ = plain.on_after_batch_transfer((x, y), 0)
    for t in (train, val):
        assert t.device.type == device and t.dtype == torch.float32 and tuple(t.shape[1:]) == (1, 16, 16)
    assert torch.equal(val, reference)  # evaluation batches are never augmented
    assert not torch.allclose(train, reference)


def test_image_operations_need_a_dataset_that_hands_over_images() -> None:
    from archdsl.datasets.synthetic import SyntheticData

    request = DataRequest(
        SyntheticData(name="synthetic"), 1, 8, 8, 0, 10, augment=AugmentSpec.model_validate({"trivialaugment": True})
    )
    with pytest.raises(SpecError, match=r"train.augment.trivialaugment.*uint8 images.*synthetic"):
        make_datamodule(request)


def test_randaugment_and_trivialaugment_exclude_each_other(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "s.yaml"
    text = (Path(__file__).parent.parent / "specs" / "digits_hybrid.yaml").read_text()
    spec.write_text(
        text.replace(
            "  label_smoothing: 0.1\n", "  label_smoothing: 0.1\n  augment: {randaugment: {}, trivialaugment: true}\n"
        )
    )
    assert main(["validate", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "s.yaml:" in err and "train.augment" in err and "exclude each other" in err


# --- EMA ----------------------------------------------------------------------------------------------------


class _ConstantGradient(L.LightningModule):
    """A loss whose gradient is the constant ``g``: plain SGD moves the weights by ``-lr * g`` per step."""

    def __init__(self, lr: float) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.linspace(-1.0, 1.0, 6, dtype=torch.float64))
        self.norm = nn.BatchNorm1d(6).double()  # running statistics: averaged too
        self.register_buffer("g", torch.linspace(0.5, 2.0, 6, dtype=torch.float64))
        self.lr = lr

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        self.norm(batch[0].double())
        return (self.w * self.g).sum()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def _closed_form(w1: torch.Tensor, step: torch.Tensor, n: int, decay: float, warmup: bool) -> torch.Tensor:
    """``e_n = sum_k w_k (1 - d_k) prod_{j > k} d_j`` with ``d_1 = 0`` (the first update copies) and
    ``w_k = w_1 + (k - 1) * step``."""
    d = [0.0] + [ema_decay(k, decay, warmup) for k in range(2, n + 1)]
    total = torch.zeros_like(w1)
    for k in range(1, n + 1):
        total += (w1 + (k - 1) * step) * (1 - d[k - 1]) * math.prod(d[k:])
    return total


@pytest.mark.parametrize("warmup", [False, True])
def test_ema_of_a_constant_gradient_is_the_closed_form(warmup: bool) -> None:
    n, lr, decay = 40, 0.1, 0.9
    module = _ConstantGradient(lr)
    w0, g = module.w.detach().clone(), module.g.clone()
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(n * 4, 6)), batch_size=4)
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        callbacks=[EmaWeights(EmaSpec(decay=decay, warmup=warmup))],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, data)
    # the average is in the module once training ends
    expected = _closed_form(w0 - lr * g, -lr * g, n, decay, warmup)
    assert torch.allclose(module.w.detach(), expected, atol=1e-6, rtol=0)
    assert not torch.allclose(module.w.detach(), w0 - n * lr * g, atol=1e-3)  # not the trained weights


def test_ema_averages_norm_statistics_and_copies_other_buffers() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    model[1].register_buffer("mask", torch.tensor([0.0, -math.inf, 0.0]))
    average = HostCountedAverage(model, decay=0.5, warmup=False)
    for _ in range(3):
        model(torch.randn(8, 3))
        average.update_parameters(model)
    bn, avg_bn = model[1], average.module[1]
    assert torch.equal(avg_bn.mask, bn.mask)  # copied: an average of -inf would be NaN
    assert torch.equal(avg_bn.num_batches_tracked, bn.num_batches_tracked)
    assert not torch.allclose(avg_bn.running_mean, bn.running_mean)  # averaged, so it lags
    assert average.updates == 3 and int(average.n_averaged) == 3


SMALL = """\
name: small_ema
input: {channels: 1, size: 16}
stem: {type: conv, channels: 16, kernel_size: 3, stride: 2}
stages:
  - channels: 32
    stride: 1
    blocks: [{type: bottleneck, mixer: {type: halo, block_size: 4, halo_size: 1, num_heads: 2}}]
head: {type: classifier, num_classes: 10}
train:
  epochs: 2
  batch_size: 64
  optimizer: {name: adamw, lr: 3.0e-3}
  ema: {decay: 0.9}
"""


def _val_accuracy(spec_path: Path, state: dict[str, torch.Tensor]) -> float:
    """The validation accuracy of ``state``'s weights, evaluated by hand on the digits validation split."""
    planned = plan_spec(load_spec(spec_path))
    model = build_from_plan(planned.plan)
    model.load_state_dict({k.removeprefix("backbone."): v for k, v in state.items()})
    model.eval()
    data = _digits_data({})
    loader = data.val_dataloader()
    data.trainer = _Stage(training=False)  # type: ignore[assignment]
    correct = total = 0
    with torch.no_grad():
        for x, y in loader:
            x, _ = data.on_after_batch_transfer((x, y), 0)
            correct += int((model(x).argmax(1) == y).sum())
            total += len(y)
    return correct / total


@pytest.mark.slow
def test_ema_run_validates_checkpoints_and_exports_the_average(tmp_path: Path) -> None:
    spec = tmp_path / "ema.yaml"
    spec.write_text(SMALL)
    result = fit(plan_spec(load_spec(spec)), tmp_path / "run", progress=False)
    last = torch.load(tmp_path / "run" / "last.ckpt", weights_only=True)
    average, trained = last["state_dict"], last["current_model_state"]
    assert any(not torch.equal(average[k], trained[k]) for k in average)
    assert int(last["averaging_state"]["n_averaged"]) == last["global_step"]
    with (tmp_path / "run" / "metrics.csv").open() as f:
        # the last epoch's (the final row is the evaluation of best.ckpt after training)
        val_acc = [float(r["val/acc"]) for r in csv.DictReader(f) if r["val/acc"] and r["epoch"] == "1"]
    assert val_acc == [pytest.approx(_val_accuracy(spec, average), abs=1e-6)]  # the average's accuracy
    # export: the standalone model reproduces the averaged weights' outputs
    best = torch.load(result.checkpoint, weights_only=True)
    assert main(["export", result.checkpoint, "--out", str(tmp_path / "art"), "--json"]) == 0
    model = build_from_plan(plan_spec(load_spec(spec)).plan)
    model.load_state_dict({k.removeprefix("backbone."): v for k, v in best["state_dict"].items()})
    exported = archdsl.load_model(tmp_path / "art")
    x = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        assert torch.allclose(exported(x), model.eval()(x), atol=1e-5)
    # resume continues the average from where it stood
    assert main(["train", str(spec), "--out", str(tmp_path / "run"), "--resume", "--epochs", "3", "--json"]) == 0
    resumed = torch.load(tmp_path / "run" / "last.ckpt", weights_only=True)
    assert int(resumed["averaging_state"]["n_averaged"]) == resumed["global_step"] > last["global_step"]


@pytest.mark.parametrize("alpha", [1e-4, 0.2, 1.0, 5.0])
def test_the_mixing_weight_is_beta_distributed(alpha: float) -> None:
    from archdsl.train.recipe.mix import _beta

    torch.manual_seed(0)
    draws = torch.tensor([_beta(alpha) for _ in range(4000)], dtype=torch.float64)
    assert draws.mean().item() == pytest.approx(0.5, abs=0.03)
    assert draws.var().item() == pytest.approx(1 / (4 * (2 * alpha + 1)), rel=0.08)  # Beta(a, a)'s variance


def test_the_recipe_is_searchable_by_path() -> None:
    from optuna.trial import FixedTrial

    from archdsl.search.space import resolve, search_from_text

    text = """\
version: 1
base: specs/digits_search_base.yaml
budget: {trials: 2}
set: {train.augment.mixup: {alpha: 0.8}}
params:
  train.augment.randaugment.magnitude: {float: [0, 10]}
  train.augment.mix_prob: {float: [0.0, 1.0]}
  train.ema.decay: {choice: [0.99, 0.999]}
"""
    space = search_from_text(text, "s.yaml", Path(__file__).parent.parent)
    params = {"train.augment.randaugment.magnitude": 4.5, "train.augment.mix_prob": 0.25, "train.ema.decay": 0.999}
    spec = resolve(space, FixedTrial(params))
    augment = spec.train.augment
    assert augment.randaugment is not None and augment.randaugment.magnitude == 4.5
    assert augment.randaugment.num_ops == 2  # the rest of a section left out takes its defaults
    assert augment.mix_prob == 0.25 and augment.mixup is not None and augment.mixup.alpha == 0.8
    assert spec.train.ema is not None and spec.train.ema.decay == 0.999 and spec.train.ema.warmup


def test_randaugment_draws_from_the_listed_ops_only() -> None:
    import typing

    from archdsl.spec.augment import RandOp
    from archdsl.train.recipe.images import RAND_POLICY

    assert [sub[0][0] for sub in RAND_POLICY] == list(typing.get_args(RandOp))  # the spec names kornia's policy
    recipe = image_recipe(AugmentSpec.model_validate({"randaugment": {"ops": ["rotate", "shear_x"]}}))
    assert recipe is not None and recipe.policy is not None and len(recipe.policy) == 2
    for bad, message in (
        ({"ops": ["rotate", "rotate"]}, "ops must be distinct"),
        ({"ops": ["rotate"], "num_ops": 2}, "num_ops must not exceed the 1 ops listed"),
        ({"ops": ["blur"]}, "rotate"),
    ):
        with pytest.raises(ValueError, match=message):
            AugmentSpec.model_validate({"randaugment": bad})
