"""The cost of the papers' training recipe: one training step with and without ``train.augment`` and ``train.ema``.

A step is what a training batch costs once the loader has handed it over (uint8, already on the device): the
dataset's device step (:class:`~archdsl.train.data.device_batch.DeviceBatch`: float conversion, the shift,
resize, RandAugment, standardisation, random erasing), mixup/CutMix, forward, loss, backward, AdamW, and the EMA
update. Rows, per model:

- ``plain``: the shift and label smoothing only (the default digits recipe);
- ``randaugment``, ``erasing``, ``mix``, ``ema``: plain plus one component (RandAugment 2 ops at magnitude 9 with
  std 0.5; random erasing p 0.25; mixup 0.8 and CutMix 1.0, switch 0.5; EMA decay 0.9998 with warm-up);
- ``full``: all of them.

Every row carries ``overhead`` (its median step over the plain one's, minus 1). Steps are timed in alternation,
after warm-up, medians over rounds, with the same seeded batch. ``--quick`` times one model with few rounds (CI
runs it so the benchmark cannot rot).

Run: ``python -m benchmarks.recipe --json benchmarks/results/recipe.json`` (``--device cuda`` on a GPU).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from archdsl.compiler.build import build_from_plan
from archdsl.planner import plan_spec
from archdsl.spec.augment import AugmentSpec, EmaSpec
from archdsl.spec.load import load_spec
from archdsl.train.data import DataRequest, make_datamodule
from archdsl.train.recipe.ema import HostCountedAverage
from archdsl.train.recipe.mix import mix_of
from benchmarks.common import alternate, machine, pick_device, pin_threads, report

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("digits_hybrid", "digits_search_base")
QUICK = ("digits_search_base",)
SMOOTHING = 0.1

RANDAUGMENT = {"randaugment": {"num_ops": 2, "magnitude": 9, "magnitude_std": 0.5}}
ERASING = {"random_erasing": {"p": 0.25}}
MIX = {"mixup": {"alpha": 0.8}, "cutmix": {"alpha": 1.0}, "switch_prob": 0.5}
EMA = EmaSpec(decay=0.9998, warmup=True)

RECIPES: dict[str, tuple[dict[str, Any], EmaSpec | None]] = {
    "plain": ({}, None),
    "randaugment": (RANDAUGMENT, None),
    "erasing": (ERASING, None),
    "mix": (MIX, None),
    "ema": ({}, EMA),
    "full": ({**RANDAUGMENT, **ERASING, **MIX}, EMA),
}


class _Training:
    """What the DataModule's device step reads of the trainer: that it is training."""

    training = True


def make_step(name: str, augment: dict[str, Any], ema: EmaSpec | None, device: torch.device, seed: int = 0) -> Any:
    """One training step of spec ``name`` under a recipe, on a fixed batch of the digits training split."""
    spec = load_spec(ROOT / "specs" / f"{name}.yaml")
    planned = plan_spec(spec)
    t = spec.train
    recipe = AugmentSpec.model_validate(augment)
    torch.manual_seed(seed)
    model = build_from_plan(planned.plan).to(device).train()
    request = DataRequest(t.data, spec.input.channels, spec.input.size, t.batch_size, seed, 10, augment=recipe)
    data = make_datamodule(request)
    data.setup()
    x, y = next(iter(data.train_dataloader()))
    x, y = x.to(device), y.to(device)
    data.trainer = _Training()  # type: ignore[assignment]
    mix = mix_of(recipe, 10, SMOOTHING)
    average = HostCountedAverage(model, ema.decay, ema.warmup) if ema is not None else None
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step() -> torch.Tensor:
        inputs, labels = data.on_after_batch_transfer((x, y), 0)
        if mix is not None:
            inputs, targets = mix(inputs, labels)
            loss = F.cross_entropy(model(inputs), targets)
        else:
            loss = F.cross_entropy(model(inputs), labels, label_smoothing=SMOOTHING)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if average is not None:
            average.update_parameters(model)
        return loss.detach()

    return step


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the table here")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="one model, few rounds")
    args = parser.parse_args(argv)
    pin_threads(args.threads)
    device = pick_device(args.device)
    rounds, warmup = (4, 1) if args.quick else (args.rounds, 3)
    rows: list[dict[str, object]] = []
    for name in QUICK if args.quick else MODELS:
        steps = {recipe: make_step(name, augment, ema, device) for recipe, (augment, ema) in RECIPES.items()}
        ms = alternate(steps, rounds, warmup, device)
        for recipe in RECIPES:
            rows.append(
                {
                    "model": name,
                    "recipe": recipe,
                    "ms": round(ms[recipe], 3),
                    "overhead": round(ms[recipe] / ms["plain"] - 1.0, 4),
                }
            )
    info = {**machine(device), "rounds": rounds, "quick": args.quick}
    report(info, rows, ["model", "recipe", "ms", "overhead"], args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
