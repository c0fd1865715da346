"""What ``archdsl validate`` checks of ``train.init`` without reading the file (no torch): that the file exists
and that the stages it names are the spec's."""

from __future__ import annotations

from pathlib import Path

from archdsl.errors import Problem, SpecError
from archdsl.spec.model import ModelSpec

__all__ = ["FROM", "check_init"]

FROM = "train.init.from"
"""The spec path of the checkpoint file: problems with the file itself are located there."""


def check_init(spec: ModelSpec) -> None:
    """Raise a located :class:`SpecError` when ``train.init.from`` is not a file or ``train.init.stages`` names a
    stage the spec does not have."""
    init = spec.train.init if spec.train is not None else None
    if init is None:
        return
    problems = []
    path = Path(init.path).expanduser()
    if not path.is_file():
        what = "is not a regular file" if path.exists() else "does not exist"
        problems.append(Problem(FROM, f"the checkpoint file must exist, '{path}' {what}"))
    for k, stage in enumerate(init.stages or ()):
        if stage >= len(spec.stages):
            problems.append(
                Problem(
                    f"train.init.stages.{k}",
                    f"must name a stage of the spec (0 to {len(spec.stages) - 1}), got {stage}",
                )
            )
    if problems:
        err = SpecError(problems)
        raise err.located(spec.source.locate) if spec.source is not None else err
