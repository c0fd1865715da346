"""archdsl's ``image_folder`` loader against torchvision's ``ImageFolder`` pipeline: images/s per loader worker.

A tree of JPEGs (``--images``, default 2,000 of 500x375 at quality 90 in 10 classes: smooth colour fields
with sensor-like noise, about 100 kB each, like photographs of that size) is written once into a temporary
directory. Both loaders read the same files at 224 px with random-resized-crop training transforms, through
a ``torch.utils.data.DataLoader`` with the same settings (batch 32, shuffled, persistent workers, 4 batches
in flight per worker), with 1 and 2 workers:

- archdsl: the ``image_folder`` DataModule's training loader (``archdsl.train.data.image_folder``): the crop
  is chosen from the JPEG header, the JPEG decoded by libjpeg-turbo (simplejpeg) at the smallest DCT scale
  that still covers it, cropped and resized once (uint8, antialiased bilinear) and handed over as uint8;
  the flip and the standardisation run later on the device, per batch, outside the loader.
- torchvision: ``ImageFolder`` (Pillow) + ``RandomResizedCrop(224)`` with archdsl's crop scale and aspect range
  (``archdsl.train.data.crops``; torchvision's default scale is 0.08-1) + ``RandomHorizontalFlip`` +
  ``ToTensor`` + ``Normalize``, handed over as float32.

A timed call is one epoch over the tree; the loaders alternate, one epoch each per round, after a warm-up
epoch (which also starts the workers); figures are medians over rounds. Rows: ``{"impl": "archdsl" |
"torchvision", "workers", "img_per_s", "img_per_s_per_worker"}`` (archdsl rows also carry
``speedup_vs_torchvision``). ``--quick`` times archdsl alone on a small tree (CI runs it so the benchmark
cannot rot).

Run: ``python -m benchmarks.data --json benchmarks/results/data.json`` in the benchmark environment (it needs
torchvision; benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from archdsl.datasets.image_folder import ImageFolderData
from archdsl.train.data.base import DataRequest
from archdsl.train.data.crops import CROP_RATIO, CROP_SCALE
from archdsl.train.data.file_index import CACHE_ENV
from archdsl.train.data.image_folder import PREFETCH_BATCHES, image_folder_datamodule
from benchmarks.common import alternate, machine, pin_threads, report

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
CLASSES = 10


def write_tree(root: Path, images: int, width: int, height: int, quality: int, seed: int = 0) -> int:
    """``root/{train,val}/classK/N.jpg``: ``images`` training JPEGs (and a few for validation); their total bytes."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    total = 0
    for split, count in (("train", images), ("val", CLASSES)):
        for i in range(count):
            folder = root / split / f"class{i % CLASSES}"
            folder.mkdir(parents=True, exist_ok=True)
            coarse = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)  # a smooth colour field ...
            field = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC), np.float32)
            noisy = field + rng.normal(0.0, 20.0, size=field.shape)  # ... with sensor-like noise
            path = folder / f"{i:06d}.jpg"
            Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(path, "JPEG", quality=quality)
            total += path.stat().st_size if split == "train" else 0
    return total


def archdsl_loader(root: Path, size: int, batch: int, workers: int) -> DataLoader[Any]:
    spec = ImageFolderData.model_validate({"name": "image_folder", "root": str(root), "num_workers": workers})
    module = image_folder_datamodule(DataRequest(spec, 3, size, batch, 0, CLASSES))
    return module.train_dataloader()  # type: ignore[no-any-return]


def torchvision_loader(root: Path, size: int, batch: int, workers: int) -> DataLoader[Any]:
    from torchvision import datasets, transforms

    transform = transforms.Compose(
        [
            transforms.RandomResizedCrop(size, scale=CROP_SCALE, ratio=CROP_RATIO),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(MEAN, STD),
        ]
    )
    return DataLoader(
        datasets.ImageFolder(str(root / "train"), transform=transform),
        batch_size=batch,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
        num_workers=workers,
        persistent_workers=True,
        prefetch_factor=PREFETCH_BATCHES,
    )


def epoch(loader: Iterable[Any], check: Callable[[Any], None]) -> None:
    """Consume one epoch; look at the first batch (what is handed over)."""
    for i, (x, _) in enumerate(loader):
        if i == 0:
            check(x)


def expect(dtype: torch.dtype, size: int) -> Callable[[Any], None]:
    def check(x: torch.Tensor) -> None:
        if x.dtype != dtype or tuple(x.shape[1:]) != (3, size, size):
            raise RuntimeError(f"expected {dtype} (B, 3, {size}, {size}) batches, got {x.dtype} {tuple(x.shape)}")

    return check


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=2000, help="training JPEGs in the generated tree")
    parser.add_argument("--width", type=int, default=500)
    parser.add_argument("--height", type=int, default=375)
    parser.add_argument("--quality", type=int, default=90)
    parser.add_argument("--size", type=int, default=224, help="the model's input size")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2], help="loader worker counts to time")
    parser.add_argument("--rounds", type=int, default=5, help="timed epochs per loader")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the main process")
    parser.add_argument("--quick", action="store_true", help="archdsl alone, a small tree, one worker")
    parser.add_argument("--json", default=None, help="write the rows here")
    args = parser.parse_args(argv)
    pin_threads(args.threads)
    if args.quick:
        args.images, args.width, args.height, args.size, args.batch = 64, 160, 120, 64, 16
        args.workers, args.rounds = [1], 2
    impls: dict[str, Callable[[Path, int, int, int], DataLoader[Any]]] = {"archdsl": archdsl_loader}
    checks = {"archdsl": expect(torch.uint8, args.size), "torchvision": expect(torch.float32, args.size)}
    if not args.quick:
        impls["torchvision"] = torchvision_loader
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="archdsl-data-bench-") as tmp, _cache_in(Path(tmp) / "cache"):
        root = Path(tmp)
        start = time.perf_counter()
        jpeg_bytes = write_tree(root, args.images, args.width, args.height, args.quality)
        seconds = time.perf_counter() - start
        print(f"wrote {args.images} JPEGs ({jpeg_bytes / args.images / 1e3:.0f} kB each) in {seconds:.1f} s")
        for workers in args.workers:
            loaders = {name: make(root, args.size, args.batch, workers) for name, make in impls.items()}
            steps = {
                name: (lambda loader=loader, name=name: epoch(loader, checks[name])) for name, loader in loaders.items()
            }
            ms = alternate(steps, rounds=args.rounds, warmup=1, device=torch.device("cpu"))
            for name in impls:
                per_s = args.images / (ms[name] * 1e-3)
                rows.append(
                    {
                        "impl": name,
                        "workers": workers,
                        "img_per_s": round(per_s, 1),
                        "img_per_s_per_worker": round(per_s / workers, 1),
                    }
                )
            del loaders, steps  # their persistent workers end before the next count starts
    theirs = {r["workers"]: float(r["img_per_s"]) for r in rows if r["impl"] == "torchvision"}  # type: ignore[arg-type]
    for r in rows:
        if r["impl"] == "archdsl" and r["workers"] in theirs:
            r["speedup_vs_torchvision"] = round(float(r["img_per_s"]) / theirs[r["workers"]], 2)  # type: ignore[arg-type]
    info = machine(torch.device("cpu")) | {
        "torchvision": _torchvision_version(),
        "images": args.images,
        "image": f"{args.width}x{args.height} q{args.quality}",
        "jpeg_kb": round(jpeg_bytes / args.images / 1e3, 1),
        "size": args.size,
        "batch": args.batch,
        "rounds": args.rounds,
        "quick": args.quick,
    }
    columns = ["impl", "workers", "img_per_s", "img_per_s_per_worker", "speedup_vs_torchvision"]
    report(info, rows, columns, args.json)
    return 0


@contextlib.contextmanager
def _cache_in(folder: Path) -> Iterator[None]:
    """File indexes go to ``folder`` (they die with the temporary tree), then the setting is restored."""
    before = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(folder)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(CACHE_ENV, None)
        else:
            os.environ[CACHE_ENV] = before


def _torchvision_version() -> str | None:
    try:
        import torchvision

        return str(torchvision.__version__)
    except ImportError:
        return None


if __name__ == "__main__":
    sys.exit(main())
