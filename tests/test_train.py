"""Training: outputs, resume, non-finite loss, the local datasets, overrides."""

from __future__ import annotations

import csv
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from archdsl.cli import main
from archdsl.errors import SpecError
from archdsl.planner import plan_spec
from archdsl.spec.load import load_spec, spec_from_text
from archdsl.train.data.digits import digits_split
from archdsl.train.fit import TrainingError, fit

TINY = """\
name: tiny
input: {{channels: {channels}, size: 8}}
stem: {{type: conv, channels: 8}}
stages:
  - {{channels: 16, stride: 2, blocks: [{{type: bottleneck, width: 8}}]}}
head: {{type: classifier, num_classes: {classes}}}
train:
  epochs: {epochs}
  batch_size: 32
  optimizer: {{name: {opt}, lr: {lr}}}
  data: {data}
"""


def tiny(
    tmp_path: Path,
    epochs: int = 1,
    lr: float = 3e-3,
    opt: str = "adamw",
    data: str = "{name: digits}",
    classes: int = 10,
    channels: int = 1,
) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY.format(epochs=epochs, lr=lr, opt=opt, data=data, classes=classes, channels=channels))
    return path


def test_digits_split_is_stratified_and_fixed() -> None:
    from sklearn.datasets import load_digits

    labels = load_digits().target
    train, val, test = digits_split(labels)
    assert (len(train), len(val), len(test)) == (1077, 360, 360)
    assert len(set(train) | set(val) | set(test)) == 1797
    assert np.array_equal(digits_split(labels)[1], val)
    counts = np.bincount(labels[val], minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37


def test_train_writes_checkpoints_metrics_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tiny(tmp_path, epochs=2)
    out = tmp_path / "run"
    assert main(["train", str(spec), "--out", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)  # stdout is the one document: the progress bar went to stderr
    assert "Epoch 1" in captured.err
    assert set(result) == {"val/acc", "val/loss", "test/acc", "epochs", "seconds", "params", "checkpoint", "logs"}
    assert result["logs"] == {"csv": str((out / "metrics.csv").resolve())}
    assert result["epochs"] == 2 and result["checkpoint"] == str((out / "best.ckpt").resolve())
    with (out / "metrics.csv").open() as f:
        val = [float(r["val/acc"]) for r in csv.DictReader(f) if r.get("val/acc")]
    # two epochs, then the final validation of best.ckpt: its accuracy is the best epoch's
    assert len(val) == 3 and result["val/acc"] == pytest.approx(max(val[:2])) == pytest.approx(val[2])
    assert {p.name for p in out.iterdir()} >= {"best.ckpt", "last.ckpt", "metrics.csv"}
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/loss_epoch", "val/loss", "val/acc", "val/acc_top5"} <= set(header)
    ckpt = torch.load(out / "best.ckpt", weights_only=True)
    spec_data = ckpt["hyper_parameters"]["spec"]
    assert isinstance(spec_data, dict) and spec_data["name"] == "tiny"
    assert spec_data["train"]["optimizer"]["lr"] == 3e-3
    # the stored spec is the fully resolved one: it parses back to the same model
    assert spec_from_text(json.dumps(spec_data)) == load_spec(spec)
    # a second run into the same directory must say --resume or --force
    assert main(["train", str(spec), "--out", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err


def test_last_checkpoint_is_the_final_epoch_and_resuming_a_finished_run_trains_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from archdsl.train.fit import epochs_completed

    # a learning rate this small leaves val/acc where epoch 0 put it: best.ckpt stays at epoch 0
    spec = tiny(tmp_path, epochs=3, lr=1e-12, opt="sgd")
    out = tmp_path / "run"
    assert main(["train", str(spec), "--out", str(out), "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    best = torch.load(out / "best.ckpt", weights_only=True)
    last = torch.load(out / "last.ckpt", weights_only=True)
    assert (best["epoch"], last["epoch"]) == (0, 2)
    assert epochs_completed(out / "last.ckpt") == 3 and epochs_completed(out / "best.ckpt") == 1
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert main(["train", str(spec), "--out", str(out), "--resume", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == first
    assert "training finished (3 of 3 epochs in last.ckpt); nothing to resume" in captured.err
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before  # nothing trained, nothing rewritten
    # asking for more epochs continues from the last one, not from the best
    assert main(["train", str(spec), "--out", str(out), "--resume", "--epochs", "4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["epochs"] == 4
    assert torch.load(out / "last.ckpt", weights_only=True)["global_step"] == 4 * 34


class _StopAfterFirstEpoch(Callback):
    def on_train_epoch_end(self, trainer, pl_module) -> None:  # type: ignore[no-untyped-def]
        trainer.should_stop = True


class _Record(Callback):
    def __init__(self) -> None:
        self.start: tuple[int, int] | None = None
        self.end: tuple[int, float] | None = None

    def on_train_start(self, trainer, pl_module) -> None:  # type: ignore[no-untyped-def]
        self.start = (trainer.global_step, trainer.lr_scheduler_configs[0].scheduler.last_epoch)

    def on_train_end(self, trainer, pl_module) -> None:  # type: ignore[no-untyped-def]
        self.end = (trainer.global_step, trainer.optimizers[0].param_groups[0]["lr"])


def test_resume_continues_step_and_schedule(tmp_path: Path) -> None:
    spec = load_spec(tiny(tmp_path, epochs=3), ["train.schedule.warmup_epochs=1"])
    full = _Record()
    fit(plan_spec(spec), tmp_path / "full", progress=False, callbacks=[full], test=False)
    fit(plan_spec(spec), tmp_path / "cut", progress=False, callbacks=[_StopAfterFirstEpoch()], test=False)
    first_ckpt = torch.load(tmp_path / "cut" / "last.ckpt", weights_only=True)
    steps_per_epoch = first_ckpt["global_step"]
    assert steps_per_epoch == 34  # ceil(1077 / 32)
    resumed = _Record()
    fit(plan_spec(spec), tmp_path / "cut", resume=True, progress=False, callbacks=[resumed], test=False)
    assert resumed.start == (steps_per_epoch, steps_per_epoch)
    assert full.end is not None and resumed.end is not None
    assert resumed.end[0] == full.end[0] == 3 * steps_per_epoch
    assert resumed.end[1] == pytest.approx(full.end[1], rel=1e-9)
    # metrics.csv keeps the first run's epoch and adds the resumed ones
    import csv

    with (tmp_path / "cut" / "metrics.csv").open() as f:
        epochs = {row["epoch"] for row in csv.DictReader(f) if row.get("train/loss_epoch")}
    assert epochs == {"0", "1", "2"}


class _LearningRates(Callback):
    def __init__(self) -> None:
        self.lr: dict[int, float] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # type: ignore[no-untyped-def]
        self.lr[trainer.global_step] = trainer.optimizers[0].param_groups[0]["lr"]


def test_resume_with_more_epochs_plans_the_schedule_again_over_the_new_total(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """``train --epochs 2`` then ``--resume --epochs 4``: the cosine ended at 0 after epoch 2; resumed, the steps of
    epochs 3 and 4 follow the closed-form cosine over 4 epochs (warm-up not repeated), and one line says so."""
    import math

    spec = tiny(tmp_path, epochs=2)
    fit(plan_spec(load_spec(spec, ["train.schedule.warmup_epochs=0.5"])), tmp_path / "run", progress=False, test=False)
    capfd.readouterr()
    seen = _LearningRates()
    longer = plan_spec(load_spec(spec, ["train.schedule.warmup_epochs=0.5", "train.epochs=4"]))
    fit(longer, tmp_path / "run", resume=True, progress=False, test=False, callbacks=[seen])
    steps = 34  # per epoch: ceil(1077 / 32)
    total, warmup = 4 * steps, steps // 2
    assert sorted(seen.lr) == list(range(2 * steps, 4 * steps))
    for step, lr in seen.lr.items():
        cosine = 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))
        assert lr == pytest.approx(3e-3 * cosine, rel=1e-9, abs=1e-15), step
    assert seen.lr[2 * steps] > 1e-3  # learning again, not at the old schedule's end (0)
    err = capfd.readouterr().err
    assert f"was planned over {2 * steps} steps and now runs over {total} (4 epochs)" in err


def test_non_finite_loss_stops_with_located_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tiny(tmp_path, epochs=2, lr=1e12, opt="sgd")
    out = tmp_path / "nan"
    with pytest.raises(TrainingError) as err:
        fit(plan_spec(load_spec(spec)), out, progress=False)
    (problem,) = err.value.problems
    assert str(problem.location) == f"{spec}:10:30"
    assert problem.path == "train.optimizer.lr"
    assert "loss is nan" in problem.message or "loss is inf" in problem.message
    assert "epoch 0, step" in problem.message
    ckpt = torch.load(out / "last.ckpt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())
    assert not (out / "best.ckpt").exists()
    # the CLI: exit 1, the located line, no traceback
    assert main(["train", str(spec), "--out", str(tmp_path / "nan2")]) == 1
    err_text = capsys.readouterr().err
    assert err_text.startswith(f"{spec}:10:30: train.optimizer.lr: training stopped: loss is")
    assert "Traceback" not in err_text


def _png_tree(root: Path, classes: int = 2, per_class: int = 4) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in range(classes):
            d = root / split / f"class{c}"
            d.mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 255, size=(12, 10, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(d / f"{i}.png")


def test_image_folder_trains_one_epoch(tmp_path: Path) -> None:
    _png_tree(tmp_path / "imgs")
    spec = tiny(tmp_path, data=f"{{name: image_folder, root: '{tmp_path / 'imgs'}'}}", classes=2, channels=3)
    result = fit(plan_spec(load_spec(spec)), tmp_path / "run", progress=False)
    n_val = 2 * 4  # classes x images per class in val/
    assert result.epochs == 1 and result.val_acc * n_val == pytest.approx(round(result.val_acc * n_val))


def test_image_folder_class_count_must_match_head(tmp_path: Path) -> None:
    _png_tree(tmp_path / "imgs", classes=3)
    spec = tiny(tmp_path, data=f"{{name: image_folder, root: '{tmp_path / 'imgs'}'}}", classes=2, channels=3)
    with pytest.raises(SpecError, match=r"tiny.yaml:6:\d+: head.num_classes: must equal the 3 classes"):
        fit(plan_spec(load_spec(spec)), tmp_path / "run", progress=False)


def _cifar_dir(root: Path, per_batch: int = 20) -> None:
    rng = np.random.default_rng(0)
    root.mkdir()
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        batch = {
            b"data": rng.integers(0, 255, size=(per_batch, 3072), dtype=np.uint8),
            b"labels": [int(v) for v in rng.integers(0, 10, size=per_batch)],
            b"batch_label": name.encode(),
        }
        with (root / name).open("wb") as f:
            pickle.dump(batch, f)


def test_cifar10_directory_trains_one_epoch(tmp_path: Path) -> None:
    _cifar_dir(tmp_path / "cifar")
    data = f"{{name: cifar10, root: '{tmp_path / 'cifar'}', val_size: 20}}"
    result = fit(plan_spec(load_spec(tiny(tmp_path, data=data, channels=3))), tmp_path / "run", progress=False)
    assert result.epochs == 1


def test_cifar10_missing_directory_says_what_is_expected(tmp_path: Path) -> None:
    data = f"{{name: cifar10, root: '{tmp_path / 'nothing'}'}}"
    with pytest.raises(SpecError, match=r"data_batch_1.*test_batch.*nothing is downloaded"):
        fit(plan_spec(load_spec(tiny(tmp_path, data=data, channels=3))), tmp_path / "run", progress=False)


def test_cifar10_pickle_cannot_run_code(tmp_path: Path) -> None:
    _cifar_dir(tmp_path / "cifar")

    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (print, ("pwned",))

    with (tmp_path / "cifar" / "test_batch").open("wb") as f:
        pickle.dump({b"data": Evil(), b"labels": []}, f)
    from archdsl.train.data.cifar10 import read_cifar10

    with pytest.raises(SpecError, match=r"refusing to load builtins\.print"):
        read_cifar10(str(tmp_path / "cifar"))


def test_custom_data_needs_allow_import(tmp_path: Path) -> None:
    spec = tiny(tmp_path, data="{name: custom, target: 'os.path:join'}")
    with pytest.raises(SpecError, match=r"train.data.target: custom data imports user code.*--allow-import"):
        fit(plan_spec(load_spec(spec)), tmp_path / "run", progress=False)


def test_set_overrides_are_validated_and_located(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tiny(tmp_path)
    assert load_spec(spec, ["train.optimizer.lr=3e-3"]).train.optimizer.lr == 3e-3
    assert main(["train", str(spec), "--set", "train.optimizer.lr=-1", "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.strip() == (
        "--set train.optimizer.lr=-1:1:20: train.optimizer.lr: must be greater than 0, got -1"
    )
    assert main(["train", str(spec), "--set", "train.optimiser.lr=1", "--out", str(tmp_path / "x")]) == 2
    assert "unknown key 'optimiser' (did you mean 'optimizer'?)" in capsys.readouterr().err


def test_weight_decay_skips_norms_biases_and_embeddings() -> None:
    from archdsl.train.module import param_groups

    spec = load_spec(Path(__file__).parent.parent / "specs" / "hybrid_vit_tiny.yaml")
    import archdsl

    model = archdsl.build_model(spec)
    decay, no_decay = param_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    skipped = {names[id(p)] for p in no_decay["params"]}
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert "stages.2.1.pos" in skipped and "head.cls_token" in skipped
    assert all(not n.endswith("bias") for n in (names[id(p)] for p in decay["params"]))
    assert all(names[id(p)].endswith("weight") for p in decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_a_set_the_planner_refuses_leaves_no_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(
        TINY.format(epochs=1, lr=3e-3, opt="adamw", data="{name: digits}", classes=10, channels=1).replace(
            "width: 8}", "width: 8, mixer: {type: global_attention, num_heads: 2}}"
        )
    )
    out = tmp_path / "run"
    assert main(["train", str(spec), "--out", str(out), "--set", "stages.0.blocks.0.mixer.num_heads=3"]) == 2
    assert "num_heads=3 must divide the bottleneck width w=8" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_compiled_training_matches_eager_and_keeps_plain_checkpoint_keys(tmp_path: Path) -> None:
    """``train.compile: true`` trains through inductor; the checkpoint is the same model's, loadable as-is."""
    spec = tiny(tmp_path)
    text = spec.read_text().replace("  batch_size: 32\n", "  batch_size: 32\n  compile: true\n")
    eager_dir, compiled_dir = tmp_path / "eager", tmp_path / "compiled"
    torch._dynamo.reset()
    compiled = fit(plan_spec(spec_from_text(text, "compiled.yaml")), compiled_dir)
    eager = fit(plan_spec(load_spec(spec)), eager_dir)
    # same seed, same data, same arithmetic up to fusion rounding: the same first-epoch validation
    assert compiled.val_acc == pytest.approx(eager.val_acc, abs=0.02)
    keys = set(torch.load(compiled_dir / "best.ckpt", weights_only=True)["state_dict"])
    assert keys == set(torch.load(eager_dir / "best.ckpt", weights_only=True)["state_dict"])
    assert all(k.startswith("backbone.") and "_orig_mod" not in k for k in keys)


def test_tensor_splits_batch_like_the_default_loader() -> None:
    """Tensor-backed splits are indexed once per batch; the loader yields the default loader's batches, in order."""
    from torch.utils.data import DataLoader, TensorDataset

    from archdsl.train.data.base import TensorDataModule, tensor_splits

    torch.manual_seed(0)
    xs = tuple(torch.randn(n, 1, 4, 4) for n in (70, 20, 10))
    ys = tuple(torch.randint(0, 10, (n,)) for n in (70, 20, 10))
    splits = tensor_splits(xs, ys)  # type: ignore[arg-type]
    data = TensorDataModule(lambda: splits, batch_size=16, seed=3)
    reference = DataLoader(
        TensorDataset(xs[0], ys[0]), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(3)
    )
    got, want = list(data.train_dataloader()), list(reference)
    assert [len(b[0]) for b in got] == [16, 16, 16, 16, 6]
    assert all(torch.equal(g[0], w[0]) and torch.equal(g[1], w[1]) for g, w in zip(got, want, strict=True))
    assert torch.equal(torch.cat([b[0] for b in data.val_dataloader()]), xs[1])  # unshuffled, whole split


def test_the_same_spec_seed_and_data_give_the_same_plan_and_first_epoch(tmp_path: Path) -> None:
    """On the CPU, training is bit-reproducible: same plan, same weights after one epoch, same metrics."""
    import archdsl

    spec_path = tiny(tmp_path)
    plans = [archdsl.plan_model(load_spec(spec_path)).to_data() for _ in range(2)]
    assert plans[0] == plans[1]
    torch.manual_seed(1234)  # the caller's generator must not matter: fit seeds from train.seed
    first = fit(plan_spec(load_spec(spec_path)), tmp_path / "a", progress=False)
    torch.manual_seed(99)
    second = fit(plan_spec(load_spec(spec_path)), tmp_path / "b", progress=False)
    assert (first.val_acc, first.val_loss, first.test_acc) == (second.val_acc, second.val_loss, second.test_acc)
    a, b = (torch.load(tmp_path / d / "best.ckpt", weights_only=True)["state_dict"] for d in "ab")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    seeded = fit(plan_spec(load_spec(spec_path, ["train.seed=1"])), tmp_path / "c", progress=False)
    c = torch.load(tmp_path / "c" / "best.ckpt", weights_only=True)["state_dict"]
    assert not all(torch.equal(a[k], c[k]) for k in a) and seeded.epochs == 1
