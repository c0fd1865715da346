"""A trial's ``latency_ms``: measured as the search file's ``budget.latency`` says, on the trial's untrained model.

:func:`require_latency` runs where the trials run (every worker, before it touches the study): the runtime must
be importable and the device usable here. A search file is also loaded on hosts that only submit the workers (a
login node without a GPU, a laptop writing Kubernetes manifests), so neither is checked when it is read.
:func:`time_trial` builds the trial's plan with fresh weights on the timing device and times it in the runtime
(:func:`archdsl.compiler.latency.measure_latency`); the :class:`~archdsl.compiler.latency.Timing` it returns is
recorded beside the figure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from archdsl.errors import Problem, SearchError
from archdsl.search.space.definition import LatencySpec
from archdsl.search.space.load import SearchSpace

if TYPE_CHECKING:
    from archdsl.compiler.latency import Timing
    from archdsl.planner import PlannedSpec
    from archdsl.train.placement import Placement

__all__ = ["measures_latency", "require_latency", "time_trial", "timing_device"]


def measures_latency(space: SearchSpace) -> bool:
    """Whether trials measure ``latency_ms``: a ``budget.max_latency_ms`` or a ``latency_ms`` objective."""
    return space.definition.budget.max_latency_ms is not None or "latency_ms" in space.objective_names


def timing_device(latency: LatencySpec, trial_device: str) -> str:
    """The torch device latency is timed on: ``budget.latency.device``, the trial's own GPU for ``cuda`` where
    the trial trains on one, and the trial's device where it is not set."""
    if latency.device is None:
        return trial_device
    if latency.device == "cuda" and trial_device.startswith("cuda"):
        return trial_device
    return latency.device


def require_latency(space: SearchSpace, placement: Placement | None) -> None:
    """Refuse, at the line of ``budget.latency``, a runtime or device this worker cannot time in: ``device: cuda``
    where torch sees no CUDA device, a runtime whose package is missing (``onnxruntime``). Nothing is checked
    when nothing measures latency."""
    if not measures_latency(space):
        return
    from archdsl.compiler.runtimes import RUNTIMES
    from archdsl.train.placement import device_name

    latency, doc = space.definition.budget.latency, space.doc
    accelerator = str((space.base_doc.data.get("train") or {}).get("accelerator", "auto"))
    device = timing_device(latency, device_name(placement, accelerator)).split(":")[0]
    problems = []
    if latency.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            message = (
                f"cuda needs a CUDA device torch can use; this torch ({torch.__version__}) sees none: time on the CPU "
                "(device: cpu), or run the search where there is a GPU"
            )
            problems.append(Problem("budget.latency.device", message, doc.locate(("budget", "latency", "device"))))
    why = RUNTIMES.get(latency.runtime).missing(device)
    if why is not None:
        on = "" if latency.device is not None or device == "cpu" else f" (on {device}, where the trials run)"
        where = doc.locate(("budget", "latency", "runtime"))
        problems.append(Problem("budget.latency.runtime", f"{latency.runtime}{on} {why}", where))
    if problems:
        raise SearchError(problems)


def time_trial(planned: PlannedSpec, latency: LatencySpec, trial_device: str) -> Timing:
    """``latency_ms`` of the trial's architecture (fresh weights), as ``latency`` says."""
    from archdsl.compiler.build import build_from_plan
    from archdsl.compiler.latency import measure_latency

    device = timing_device(latency, trial_device)
    model = build_from_plan(planned.plan, device=device)
    return measure_latency(
        model, tuple(planned.plan.input), latency.runtime, batch=latency.batch, threads=latency.threads
    )
