"""Match a checkpoint's tensors to a planned model's, by name and shape, before any is copied (a pure function)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from archdsl.errors import Problem, SpecError
from archdsl.plan.shapes import ModelPlan
from archdsl.spec.train import InitSpec
from archdsl.weights.check import FROM, stage_problems
from archdsl.weights.maps import MAPS, CheckpointMap
from archdsl.weights.parts import Part, model_parts
from archdsl.weights.source import Source, Transform

__all__ = ["MAX_PROBLEMS", "InitMatch", "match_init"]

Shapes = Mapping[str, tuple[int, ...]]

MAX_PROBLEMS = 20
"""Problems listed one by one; a checkpoint of another model would give hundreds, the rest are counted."""

MAX_STAGES = 65
"""Stage indices a file's keys are looked up under when ``train.init.stages`` leaves stages out (``stages`` items
are at most 64)."""

_OPTIONAL = "num_batches_tracked"
"""A batch norm's step counter: older torchvision files and cleaned timm files leave it out; it stays as it is."""


@dataclass(frozen=True)
class InitMatch:
    """Which file tensor initialises which model tensor; every shape agrees."""

    pairs: tuple[tuple[str, str], ...]
    """``(model tensor name, file key)``."""
    parts: tuple[str, ...]
    """The module paths of the loaded parts (``stem``, ``stages.0.0``, ..., ``head``)."""
    ignored: int
    """File tensors of parts not loaded (stages not listed, a dropped head), or unused with ``strict: false``."""
    transforms: tuple[tuple[str, Transform], ...] = ()
    """``(model tensor name, transform)``: the file tensors that are transformed on their way in (the shapes above
    were checked after the transform)."""


def match_init(plan: ModelPlan, init: InitSpec, model: Shapes, file: Shapes, name: str = "the file") -> InitMatch:
    """Match ``file`` (key -> shape) to ``model`` (the built model's tensor name -> shape) for ``init``; every
    problem found is raised at once in a :class:`SpecError`, at the spec path of the part it concerns."""
    problems: list[Problem] = stage_problems(init.stages, len(plan.stages))
    parts = model_parts(plan)
    chosen = [p for p in parts if _loaded(p, init)]
    skipped = [p for p in parts if not _loaded(p, init)]
    resolved = MAPS.get(init.map).resolve(list(file))
    if isinstance(resolved, str):  # a family map (timm) that knows none of the file's keys
        raise SpecError([*problems, Problem(FROM, f"{resolved} ({name})")])
    checkpoint_map: CheckpointMap = resolved
    keys = checkpoint_map.keys(file)  # as the map reads them -> the file's own
    pairs: list[tuple[str, str]] = []
    transforms: list[tuple[str, Transform]] = []
    taken: set[str] = set()
    refused: list[str] = []
    for part in chosen:
        names = checkpoint_map.names(part, _local(part, model))
        if isinstance(names, str):
            problems.append(Problem(part.node.path, f"{names} ({part.where}){_hint(part)}"))
            # its stage's keys (the head's: under its prefix) are not listed once more as unexpected
            own = part.stage
            refused.append(checkpoint_map.stage_prefix(own) if own is not None else checkpoint_map.prefix(part) or "\0")
            continue
        for mine, named in names.items():
            source = named if isinstance(named, Source) else Source(named)
            key, transform = source.key, source.transform
            ours = f"{part.module}.{mine}"
            repeat = f" (repeat {part.node.repeat})" if part.node.repeat else ""
            if key not in keys:
                if init.strict and not mine.endswith(_OPTIONAL):
                    problems.append(
                        Problem(
                            part.node.path,
                            f"checkpoint key {key} is missing from {name}; the spec plans {model[ours]} for "
                            f"{ours}{repeat} (strict: false keeps its fresh initialisation)",
                        )
                    )
                continue
            taken.add(key)
            shape = tuple(file[keys[key]])
            got = tuple(transform.shape(shape)) if transform is not None else shape
            if got != tuple(model[ours]):
                after = f" ({got} after {transform.what})" if transform is not None and got != shape else ""
                problems.append(
                    Problem(
                        part.node.path,
                        f"checkpoint key {keys[key]} has {shape}{after}, the spec plans {tuple(model[ours])} "
                        f"for {ours}{repeat}",
                    )
                )
                continue
            pairs.append((ours, keys[key]))
            if transform is not None:
                transforms.append((ours, transform))
    skipped_keys, skipped_prefixes = _skipped(checkpoint_map, skipped, init, model)
    left = [
        k for k in keys if k not in taken and k not in skipped_keys and not k.startswith((*skipped_prefixes, *refused))
    ]
    if init.strict:
        for key in left:
            owner = _owner(checkpoint_map, key, chosen)
            where = f"module {owner.module}" if owner is not None else "the spec"
            problems.append(
                Problem(
                    owner.node.path if owner is not None else FROM,
                    f"checkpoint key {key} {tuple(file[keys[key]])} in {name} names no tensor of {where} "
                    "(strict: false ignores it)",
                )
            )
    if problems:
        shown = problems[:MAX_PROBLEMS]
        if len(problems) > MAX_PROBLEMS:
            shown.append(Problem(FROM, f"... and {len(problems) - MAX_PROBLEMS} more problems with {name}"))
        raise SpecError(shown)
    return InitMatch(tuple(pairs), tuple(p.module for p in chosen), len(keys) - len(pairs), tuple(transforms))


def _loaded(part: Part, init: InitSpec) -> bool:
    if part.module == "head":
        return init.head == "keep"
    return part.stage is None or init.stages is None or part.stage in init.stages


def _hint(part: Part) -> str:
    if part.stage is not None:
        return f"; leave stage {part.stage} out of train.init.stages"
    if part.module == "head":
        return "; or set train.init.head: drop"
    return ""


def _skipped(
    checkpoint_map: CheckpointMap, skipped: list[Part], init: InitSpec, model: Shapes
) -> tuple[set[str], tuple[str, ...]]:
    """The keys of the parts deliberately not loaded: the names the map gives each (a dropped head), and the key
    prefixes of the stages ``train.init.stages`` leaves out (whatever the map can name of them)."""
    keys: set[str] = set()
    for part in skipped:
        names = checkpoint_map.names(part, _local(part, model))
        if isinstance(names, dict):
            keys.update(n.key if isinstance(n, Source) else n for n in names.values())
    # listed stages: every other stage of the file is left out, also those past the spec's last (layer4 of a
    # ResNet-50 loaded into a three-stage hybrid)
    listed = init.stages
    left_out = range(MAX_STAGES) if listed is not None else ()
    return keys, tuple(checkpoint_map.stage_prefix(stage) for stage in left_out if stage not in (listed or ()))


def _local(part: Part, model: Shapes) -> list[str]:
    """The part's tensor names, local to its module."""
    return [n[len(part.module) + 1 :] for n in model if n.startswith(f"{part.module}.")]


def _owner(checkpoint_map: CheckpointMap, key: str, chosen: list[Part]) -> Part | None:
    """The loaded part whose key prefix ``key`` falls under (the longest), if any."""
    owners = [(len(prefix), p) for p in chosen if (prefix := checkpoint_map.prefix(p)) and key.startswith(prefix)]
    return max(owners, key=lambda o: o[0])[1] if owners else None
