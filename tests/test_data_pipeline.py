"""The image pipelines: uint8 hand-off, decode-time reduction, the cached file index, worker counts, the
device step, CIFAR-10 kept at 32 px. Everything runs on small generated trees and directories."""

from __future__ import annotations

import io
import json
import os
import pickle
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from archdsl.cli import main
from archdsl.datasets.cifar10 import Cifar10Data
from archdsl.datasets.image_folder import ImageFolderData
from archdsl.errors import SpecError
from archdsl.spec.load import load_spec
from archdsl.train.data.base import DataRequest, TensorDataModule
from archdsl.train.data.cifar10 import cifar10_datamodule, pixel_stats
from archdsl.train.data.crops import CENTER_FRACTION, center_box, random_resized_box, snap
from archdsl.train.data.decode import Encoded, reduction
from archdsl.train.data.device_batch import DeviceBatch
from archdsl.train.data.file_index import CACHE_ENV, split_index
from archdsl.train.data.image_folder import PREFETCH_BATCHES, ImageFolder, image_folder_datamodule
from archdsl.train.data.workers import cpu_share, loader_workers

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(cache))
    return cache


def _photo(width: int, height: int, seed: int) -> np.ndarray:
    """A smooth colour field (what survives JPEG well): uint8 (height, width, 3)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(4, 5, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC))


def _jpeg(pixels: np.ndarray, quality: int = 95, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _tree(
    root: Path, classes: int = 2, per_class: int = 3, size: tuple[int, int] = (120, 90), ext: str = "jpg"
) -> None:
    for split in ("train", "val"):
        for c in range(classes):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(_photo(*size, seed=100 * c + i)).save(folder / f"{i}.{ext}", quality=95)


def _request(root: Path, *, classes: int = 2, size: int = 32, channels: int = 3, **data: object) -> DataRequest:
    spec = ImageFolderData.model_validate({"name": "image_folder", "root": str(root), **data})
    return DataRequest(spec, channels, size, 4, 0, classes)


# --- crops and decode-time reduction ----------------------------------------------------------------------


def test_reduction_keeps_the_crop_at_least_as_large_as_the_output() -> None:
    assert reduction(448, 448, 224) == 2
    assert reduction(447, 900, 224) == 1  # the shorter side decides
    assert reduction(2000, 1800, 224) == 8 and reduction(1000, 900, 224) == 4
    assert reduction(100, 100, 224) == 1  # upsampled: never reduced
    for w, h in ((500, 375), (4000, 3000), (64, 48)):
        for _ in range(200):
            left, top, cw, ch = random_resized_box(w, h)
            assert left >= 0 and top >= 0 and left + cw <= w and top + ch <= h
            s = reduction(cw, ch, 224)
            assert s == 1 or min(cw, ch) / s >= 224


def test_center_box_is_resize_then_center_crop_and_snapping_keeps_it_inside() -> None:
    left, top, w, h = center_box(500, 375)
    assert w == h == round(375 * CENTER_FRACTION) and left == (500 - w) // 2 and top == (375 - h) // 2
    assert snap((left, top, w, h), 1, 500, 375) == (left, top, w, h)
    for step in (2, 4, 8):
        sl, st, sw, sh = snap((left, top, w, h), step, 500, 375)
        assert all(v % step == 0 for v in (sl, st, sw, sh)) and sl + sw <= 500 and st + sh <= 375
        assert abs(sl - left) <= step / 2 and abs((sl + sw) - (left + w)) <= step / 2


def test_jpeg_decoded_at_a_reduced_scale_matches_the_full_decode_resized() -> None:
    pixels = _photo(1000, 800, seed=1)
    encoded = Encoded(_jpeg(pixels), "photo.jpg")
    assert (encoded.width, encoded.height) == (1000, 800)
    full = encoded.decode(grey=False, reduce=1)
    half = encoded.decode(grey=False, reduce=2)
    eighth = encoded.decode(grey=False, reduce=8)
    assert full.shape == (800, 1000, 3) and half.shape == (400, 500, 3) and eighth.shape == (100, 125, 3)
    reference = np.asarray(Image.fromarray(full).resize((500, 400), Image.Resampling.BOX), dtype=np.float64)
    assert np.abs(half.astype(np.float64) - reference).mean() < 2.0
    assert np.abs(full.astype(np.float64) - pixels).mean() < 2.0  # quality 95: close to the source
    grey = encoded.decode(grey=True, reduce=2)
    assert grey.shape == (400, 500, 1)


def test_other_formats_and_cmyk_jpegs_go_through_pillow(tmp_path: Path) -> None:
    pixels = _photo(64, 48, seed=2)
    png = io.BytesIO()
    Image.fromarray(pixels).save(png, "PNG")
    decoded = Encoded(png.getvalue(), "x.png").decode(grey=False, reduce=2)  # PNG: no scaling, exact
    assert np.array_equal(decoded, pixels)
    cmyk = Encoded(_jpeg(pixels, mode="CMYK"), "cmyk.jpg").decode(grey=False)
    assert cmyk.shape == (48, 64, 3)
    with pytest.raises(ValueError, match=r"broken\.jpg: "):
        Encoded(b"\xff\xd8\xff" + b"\0" * 64, "broken.jpg").decode(grey=False)
    with pytest.raises(ValueError, match=r"notes\.png: not an image"):
        Encoded(b"hello", "notes.png")
    bomb = bytearray(_jpeg(pixels))  # a header claiming 65000x65000 pixels: refused before anything is decoded
    sof = bomb.index(b"\xff\xc0")
    bomb[sof + 5 : sof + 9] = (65000).to_bytes(2, "big") * 2
    with pytest.raises(ValueError, match=r"bomb\.jpg: 65000x65000 pixels is over"):
        Encoded(bytes(bomb), "bomb.jpg")


# --- the image_folder loader -----------------------------------------------------------------------------


def test_image_folder_hands_over_uint8_crops_and_the_device_step_standardises(tmp_path: Path) -> None:
    _tree(tmp_path / "imgs", per_class=5)
    dm = image_folder_datamodule(_request(tmp_path / "imgs", size=32, num_workers=0))
    assert isinstance(dm, TensorDataModule)
    dm.setup()
    x, y = next(iter(dm.train_dataloader()))
    assert x.dtype == torch.uint8 and x.shape == (4, 3, 32, 32) and y.dtype == torch.int64
    vx, vy = next(iter(dm.val_dataloader()))
    # evaluation crop: the centred square, resized once; the reference is Pillow's resize of the same box
    split = dm.splits[1] if dm.splits else None
    assert isinstance(split, ImageFolder)
    for k in range(4):
        with Image.open(split.path(k)) as image:
            box = center_box(*image.size)  # 79 px of 120x90: decoded at half size, its edges on even pixels
            left, top, w, h = snap(box, reduction(box[2], box[3], 32), *image.size)
            ref = image.convert("RGB").resize((32, 32), Image.Resampling.BILINEAR, box=(left, top, left + w, top + h))
        ours = vx[k].permute(1, 2, 0).numpy().astype(np.float64)
        assert np.abs(ours - np.asarray(ref, dtype=np.float64)).mean() < 1.5
    assert vy.tolist() == [0, 0, 0, 0]
    prepare = dm.prepare_batch
    assert prepare is not None
    out = prepare(vx, False)
    mean = torch.tensor(MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float64).view(1, 3, 1, 1)
    expected = (vx.double() / 255.0 - mean) / std
    assert out.dtype == torch.float32 and torch.allclose(out.double(), expected, atol=1e-5)
    # training: the flip happens on the device; every output row is the input row or its mirror
    flipped = prepare(x, True)
    plain = prepare(x, False)
    for k in range(4):
        assert torch.equal(flipped[k], plain[k]) or torch.equal(flipped[k], plain[k].flip(-1))


def test_image_folder_grey_and_png_and_class_checks(tmp_path: Path) -> None:
    _tree(tmp_path / "imgs", ext="png")
    dm = image_folder_datamodule(_request(tmp_path / "imgs", channels=1, size=16, num_workers=0))
    dm.setup()
    x, _ = next(iter(dm.val_dataloader()))
    assert x.dtype == torch.uint8 and x.shape == (4, 1, 16, 16)
    with pytest.raises(SpecError, match=r"input.channels: image folders are read as RGB \(3\) or grey \(1\), got 4"):
        image_folder_datamodule(_request(tmp_path / "imgs", channels=4))
    with pytest.raises(SpecError, match=r"head.num_classes: must equal the 2 classes"):
        image_folder_datamodule(_request(tmp_path / "imgs", classes=3))
    (tmp_path / "empty" / "train" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "val").mkdir()
    with pytest.raises(SpecError, match=r"train.data.root: no images under"):
        image_folder_datamodule(_request(tmp_path / "empty", classes=1))


def test_image_folder_workers_ship_uint8_batches_and_persist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tree(tmp_path / "imgs", per_class=8)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    dm = image_folder_datamodule(_request(tmp_path / "imgs", size=24))  # num_workers: auto
    dm.setup()
    loader = dm.train_dataloader()
    assert loader.num_workers == min(2, cpu_share()) and loader.persistent_workers
    assert loader.prefetch_factor == PREFETCH_BATCHES and not loader.pin_memory  # no trainer on CUDA here
    seen = [(x.dtype, tuple(x.shape)) for x, _ in loader]
    assert seen == [(torch.uint8, (4, 3, 24, 24))] * 4
    labels = torch.cat([y for _, y in loader])
    assert sorted(labels.tolist()) == [0] * 8 + [1] * 8


def test_data_modules_pickle_for_spawned_ranks(tmp_path: Path) -> None:
    _tree(tmp_path / "imgs")
    dm = image_folder_datamodule(_request(tmp_path / "imgs", num_workers=0))
    dm.setup()
    assert dm.prepare_batch is not None
    dm.prepare_batch(torch.zeros(1, 3, 32, 32, dtype=torch.uint8), False)  # fills the per-device constants
    again = pickle.loads(pickle.dumps(dm))
    x, _ = next(iter(again.val_dataloader()))
    assert x.shape == (4, 3, 32, 32)


def test_a_damaged_image_names_its_file(tmp_path: Path) -> None:
    _tree(tmp_path / "imgs")
    bad = tmp_path / "imgs" / "val" / "class0" / "0.jpg"
    bad.write_bytes(bad.read_bytes()[:40])
    dm = image_folder_datamodule(_request(tmp_path / "imgs", num_workers=0))
    dm.setup()
    with pytest.raises(ValueError, match=r"class0/0\.jpg"):
        next(iter(dm.val_dataloader()))


# --- the file index --------------------------------------------------------------------------------------


class _Listings:
    """Counts directory listings (``os.scandir``, ``os.listdir``) under one tree."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root, self.calls = str(root), 0
        scandir, listdir = os.scandir, os.listdir

        def counted(real):  # type: ignore[no-untyped-def]
            def wrapper(path="."):  # type: ignore[no-untyped-def]
                if os.fspath(path).startswith(self.root):
                    self.calls += 1
                return real(path)

            return wrapper

        monkeypatch.setattr(os, "scandir", counted(scandir))
        monkeypatch.setattr(os, "listdir", counted(listdir))


def test_a_second_data_module_on_200000_files_lists_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "big"
    classes, per_class = 100, 2000
    for c in range(classes):
        folder = os.path.join(root, "train", f"c{c:03d}")
        os.makedirs(folder)
        for i in range(per_class):  # empty "images": the index never opens them
            os.close(os.open(os.path.join(folder, f"{i:06d}.JPEG"), os.O_CREAT | os.O_WRONLY, 0o644))
    (root / "val" / "c000").mkdir(parents=True)
    (root / "val" / "c000" / "a.jpg").touch()
    listings = _Listings(root.resolve(), monkeypatch)
    first = image_folder_datamodule(_request(root, classes=classes))
    first.setup()
    assert listings.calls == (1 + classes) + (1 + 1)  # train: the split and its classes; val: the split, 1 class
    listings.calls = 0
    second = image_folder_datamodule(_request(root, classes=classes))
    second.setup()
    assert listings.calls == 0  # every later trial and worker: the tree is not listed again
    assert second.splits is not None and first.splits is not None
    train = second.splits[0]
    assert isinstance(train, ImageFolder) and len(train) == classes * per_class
    assert train.path(per_class + 1) == str((root / "train" / "c001" / "000001.JPEG").resolve())
    assert [len(s) for s in second.splits] == [len(s) for s in first.splits]  # type: ignore[arg-type]


def test_the_index_follows_the_tree(tmp_path: Path, _private_cache: Path) -> None:
    _tree(tmp_path / "imgs")
    split = tmp_path / "imgs" / "train"
    assert len(split_index(split)) == 6
    (split / "class1" / "new.jpg").write_bytes(b"")
    (split / "class1" / "notes.txt").write_bytes(b"")
    index = split_index(split)
    assert len(index) == 7 and "new.jpg" in {index.name(i) for i in range(len(index))}
    (split / "class2").mkdir()
    (split / "class2" / "x.png").write_bytes(b"")
    assert split_index(split).classes == ("class0", "class1", "class2")
    for f in (_private_cache / "image-index").iterdir():  # a damaged cache file is listed again, not trusted
        f.write_bytes(b"garbage")
    assert len(split_index(split)) == 8


def test_an_unwritable_cache_costs_only_the_listing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tree(tmp_path / "imgs")
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv(CACHE_ENV, str(blocker))
    assert len(split_index(tmp_path / "imgs" / "train")) == 6
    assert len(split_index(tmp_path / "imgs" / "train")) == 6


# --- worker counts ---------------------------------------------------------------------------------------


def test_auto_workers_are_this_process_share_of_the_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    affinity = len(os.sched_getaffinity(0))
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert cpu_share() == affinity
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # what `archdsl search --workers N` gives each worker (cores // N)
    assert cpu_share() == 1 and loader_workers("auto", 10_000, 32) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", str(affinity + 8))
    assert cpu_share() == affinity
    assert loader_workers("auto", 10, 32) == 1  # one batch: one worker
    assert loader_workers(3, 10, 32) == 3 and loader_workers(0, 10_000, 32) == 0


# --- the device step -------------------------------------------------------------------------------------


def test_device_batch_resizes_greys_and_augments_only_in_training() -> None:
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    calls: list[torch.Size] = []

    def augment(t: torch.Tensor) -> torch.Tensor:
        calls.append(t.shape)
        return 255.0 - t

    step = DeviceBatch([0.5], [0.25], 64, grey=True, augment=augment)
    out = step(x, False)
    grey = x.double().mean(1, keepdim=True)
    ref = (F.interpolate(grey, size=(64, 64), mode="bilinear", align_corners=False) / 255.0 - 0.5) / 0.25
    assert out.shape == (2, 1, 64, 64) and torch.allclose(out.double(), ref, atol=1e-4) and calls == []
    trained = step(x, True)
    assert calls == [torch.Size([2, 1, 32, 32])]  # at the stored size, before the resize
    assert torch.allclose(trained, -out, atol=1e-4)  # (255 - p) standardised with mean 0.5 is -(p standardised)
    with pytest.raises(ValueError, match="one value per channel"):
        DeviceBatch([0.5, 0.5], [0.25], 8)


# --- CIFAR-10 --------------------------------------------------------------------------------------------


def _cifar_dir(root: Path, per_batch: int) -> None:
    rng = np.random.default_rng(0)
    root.mkdir()
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        batch = {
            b"data": rng.integers(0, 255, size=(per_batch, 3072), dtype=np.uint8),
            b"labels": [int(v) for v in rng.integers(0, 10, size=per_batch)],
        }
        with (root / name).open("wb") as f:
            pickle.dump(batch, f)


def _torch_peak_bytes(step) -> int:  # type: ignore[no-untyped-def]
    """Peak bytes torch allocates on the CPU during ``step()`` (the profiler's allocation events, in order)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = sorted(
        (e.start_ns(), e.nbytes())
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]" and e.device_type().name == "CPU"
    )
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak


def test_cifar10_at_224_px_keeps_uint8_at_32_px(tmp_path: Path) -> None:
    _cifar_dir(tmp_path / "cifar", per_batch=100)  # 600 images: 1.8 MB as uint8, 361 MB as float32 at 224 px
    spec = Cifar10Data.model_validate({"name": "cifar10", "root": str(tmp_path / "cifar"), "val_size": 100})
    request = DataRequest(spec, 3, 224, 8, 0, 10)
    raw = 600 * 3 * 32 * 32
    import sklearn.model_selection  # noqa: F401  (the split's import is not the data set's memory)

    dm = cifar10_datamodule(request)
    tracemalloc.start()  # Python and numpy allocations: the pickles, their concatenation, the split copies
    try:
        dm.setup()
        _, numpy_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert numpy_peak < 3 * raw + 2**20  # a few times the uint8 images (float32 at 224 px: 196x)
    torch_peak = _torch_peak_bytes(cifar10_datamodule(request).setup)  # torch's own allocations
    assert torch_peak < 4 * raw  # float work happens a chunk at a time (statistics), never for the whole set
    assert dm.splits is not None
    held = [t for split in dm.splits for t in split.tensors]  # type: ignore[attr-defined]
    assert [tuple(t.shape[1:]) for t in held[0::2]] == [(3, 32, 32)] * 3
    assert all(t.dtype == torch.uint8 for t in held[0::2])
    assert sum(t.untyped_storage().nbytes() for t in held[0::2]) == raw
    x, _ = next(iter(dm.train_dataloader()))
    assert x.dtype == torch.uint8 and x.shape == (8, 3, 32, 32)
    assert dm.prepare_batch is not None
    out = dm.prepare_batch(x, True)  # on the device: shift and flip at 32 px, resize, standardise
    assert out.dtype == torch.float32 and out.shape == (8, 3, 224, 224)


TINY_CIFAR = """\
name: tiny
input: {{channels: 3, size: 32}}
stem: {{type: conv, channels: 8}}
stages:
  - {{channels: 16, stride: 2, blocks: [{{type: bottleneck, width: 8}}]}}
head: {{type: classifier, num_classes: 10}}
train:
  epochs: 1
  batch_size: 8
  optimizer: {{name: adamw, lr: 3.0e-3}}
  data: {{name: cifar10, root: '{root}', val_size: 20}}
"""


def test_cifar10_export_records_the_statistics_the_device_step_standardises_with(tmp_path: Path) -> None:
    _cifar_dir(tmp_path / "cifar", per_batch=20)
    spec_path = tmp_path / "tiny.yaml"
    spec_path.write_text(TINY_CIFAR.format(root=tmp_path / "cifar"))
    assert main(["export", str(spec_path), "--out", str(tmp_path / "art")]) == 0
    prep = json.loads((tmp_path / "art" / "manifest.json").read_text())["preprocessing"]
    spec = load_spec(spec_path)
    dm = cifar10_datamodule(DataRequest(spec.train.data, 3, 32, 8, 0, 10))
    dm.setup()
    step = dm.prepare_batch
    assert isinstance(step, DeviceBatch)
    assert step.mean == pytest.approx(prep["mean"]) and step.std == pytest.approx(prep["std"])
    x, _ = next(iter(dm.val_dataloader()))
    mean, std = (torch.tensor(prep[k]).view(1, 3, 1, 1) for k in ("mean", "std"))
    levels = (step(x, False) * std + mean) * 255.0  # undoing the manifest's standardisation gives back the pixels
    assert (levels - x.float()).abs().max().item() < 1e-2
    # and the statistics are those of the training split's pixels
    train = dm.splits[0].tensors[0]  # type: ignore[index]
    pixels = train.double() / 255.0
    assert prep["mean"] == pytest.approx(pixels.mean((0, 2, 3)).tolist(), abs=1e-6)
    assert prep["std"] == pytest.approx(pixels.std((0, 2, 3)).tolist(), abs=1e-6)
    grey_mean, grey_std = pixel_stats(train, grey=True)
    assert grey_mean == pytest.approx([pixels.mean(1).mean().item()]) and grey_std[0] > 0
