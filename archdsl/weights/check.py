"""What ``archdsl validate`` checks of ``train.init`` without reading the file (no torch): that the file exists
and that the stages it names are the spec's."""

from __future__ import annotations

from pathlib import Path

from archdsl.errors import Problem, SpecError
from archdsl.spec.model import ModelSpec

__all__ = ["FROM", "check_init", "file_problem", "stage_problems"]

FROM = "train.init.from"
"""The spec path of the checkpoint file: problems with the file itself are located there."""


def file_problem(path: Path) -> str | None:
    """Why ``path`` is no checkpoint file to read, or None."""
    if path.is_file():
        return None
    what = "is not a regular file" if path.exists() else "does not exist"
    return f"the checkpoint file must exist, '{path}' {what}"


def stage_problems(stages: tuple[int, ...] | None, count: int) -> list[Problem]:
    """``train.init.stages`` items that name no stage of a spec with ``count`` stages."""
    return [
        Problem(f"train.init.stages.{k}", f"must name a stage of the spec (0 to {count - 1}), got {stage}")
        for k, stage in enumerate(stages or ())
        if stage >= count
    ]


def check_init(spec: ModelSpec) -> None:
    """Raise a located :class:`SpecError` when ``train.init.from`` is not a file or ``train.init.stages`` names a
    stage the spec does not have."""
    init = spec.train.init if spec.train is not None else None
    if init is None:
        return
    missing = file_problem(Path(init.path).expanduser())
    problems = [Problem(FROM, missing)] if missing is not None else []
    problems += stage_problems(init.stages, len(spec.stages))
    if problems:
        err = SpecError(problems)
        raise err.located(spec.source.locate) if spec.source is not None else err
