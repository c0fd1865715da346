"""Search definitions: a base spec, parameters keyed by spec path, objectives, budget, sampler, pruner.

```yaml
base: ../specs/digits_search_base.yaml
objectives: [{metric: val/acc, direction: maximize}]
budget: {trials: 30, max_params: 2_000_000}
set: {train.epochs: 4}                                       # fixed for every trial
params:
  stages.*.blocks.*.mixer.num_heads: {choice: [2, 4]}      # one parameter tied across every match
  train.optimizer.lr: {float: [1.0e-3, 5.0e-3], log: true}
  conv_stages: {int: [0, 2]}                                 # leading stages with a conv mixer
  components: {choice: [baseline, ls, ls_se_silu_ra]}        # rows of HaloNet's training-component table
  stages.2.blocks.0:                                         # whole-block alternatives, by name
    choice: {halo: {type: bottleneck, mixer: {type: halo, block_size: 4}}, global: {...}}
    params: {halo: {mixer.halo_size: {int: [1, 2]}}}         # only sampled when `halo` is chosen
```
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from archdsl.spec.base import SpecModel
from archdsl.spec.train import SEED_MAX

__all__ = [
    "COMPONENTS",
    "CONV_STAGES",
    "METRICS",
    "BlockChoiceParam",
    "BudgetSpec",
    "ChoiceParam",
    "FloatParam",
    "IntParam",
    "ObjectiveSpec",
    "ParamSpec",
    "PrunerSpec",
    "SamplerSpec",
    "SearchDefinition",
    "WorkersSpec",
]

CONV_STAGES = "conv_stages"
"""Reserved parameter: how many leading bottleneck stages use a conv mixer (HaloNet's trade-off rows)."""
COMPONENTS = "components"
"""Reserved parameter: a row of HaloNet's training-component table (label smoothing, RandAugment, SE, SiLU),
by name (:mod:`archdsl.search.space.components`)."""

METRICS: dict[str, str] = {
    "val/acc": "maximize",
    "val/loss": "minimize",
    "params": "minimize",
    "flops": "minimize",
    "latency_ms": "minimize",
}
Primitive = str | int | float | bool


class IntParam(SpecModel):
    """An integer in [low, high]."""

    int_range: tuple[int, int] = Field(alias="int", strict=False)
    """``[low, high]``, both included."""
    step: int = Field(1, ge=1)
    """Spacing of the values."""
    log: bool = False
    """Sample on a log scale."""

    @model_validator(mode="after")
    def _ordered(self) -> IntParam:
        if self.int_range[0] > self.int_range[1]:
            raise ValueError(f"low must not exceed high, got {list(self.int_range)}")
        return self


class FloatParam(SpecModel):
    """A float in [low, high]."""

    float_range: tuple[float, float] = Field(alias="float", strict=False)
    """``[low, high]``."""
    log: bool = False
    """Sample on a log scale (low must be > 0)."""
    step: float | None = Field(None, gt=0)
    """Discretisation step."""

    @model_validator(mode="after")
    def _ordered(self) -> FloatParam:
        lo, hi = self.float_range
        if lo > hi:
            raise ValueError(f"low must not exceed high, got {[lo, hi]}")
        if self.log and lo <= 0:
            raise ValueError(f"log scale needs low > 0, got {lo}")
        return self


class ChoiceParam(SpecModel):
    """One of a list of primitive values."""

    choice: list[Primitive] = Field(min_length=1)
    """The values (strings, numbers, booleans)."""


class BlockChoiceParam(SpecModel):
    """Whole-block (or any sub-spec) alternatives keyed by name, with parameters of each branch."""

    choice: dict[str, dict[str, Any]] = Field(min_length=1)
    """``name: spec mapping``; the name is the categorical value Optuna sees."""
    params: dict[str, dict[str, ParamSpec]] = Field(default_factory=dict)  # type: ignore[valid-type]
    """``branch name: {path relative to the chosen mapping: parameter}``, sampled only in that branch."""

    @model_validator(mode="after")
    def _branches_exist(self) -> BlockChoiceParam:
        unknown = sorted(set(self.params) - set(self.choice))
        if unknown:
            raise ValueError(f"params name branches {unknown} that are not among the choices {sorted(self.choice)}")
        return self


def _param_kind(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    if "int" in value:
        return "int"
    if "float" in value:
        return "float"
    if "choice" in value:
        return "block_choice" if isinstance(value["choice"], dict) else "choice"
    return None


ParamSpec = Annotated[
    Annotated[IntParam, Tag("int")]
    | Annotated[FloatParam, Tag("float")]
    | Annotated[ChoiceParam, Tag("choice")]
    | Annotated[BlockChoiceParam, Tag("block_choice")],
    Discriminator(
        _param_kind,
        custom_error_type="invalid_param",
        custom_error_message="a parameter is one of {int: [lo, hi]}, {float: [lo, hi]} or {choice: [...]|{...}}",
    ),
]
BlockChoiceParam.model_rebuild()


class ObjectiveSpec(SpecModel):
    """A metric to optimise."""

    metric: Literal["val/acc", "val/loss", "params", "flops", "latency_ms"]
    """What to optimise."""
    direction: Literal["maximize", "minimize"] | None = None
    """Default: maximize accuracy, minimize the rest."""

    @property
    def resolved_direction(self) -> str:
        return self.direction or METRICS[self.metric]


class BudgetSpec(SpecModel):
    """Limits of the search; trials over a max are rejected before any weight is allocated."""

    trials: int = Field(20, ge=1)
    """Trials to finish (complete, pruned or rejected)."""
    timeout_minutes: float | None = Field(None, gt=0)
    """``archdsl search`` stops starting trials after this long (per run of the command); cluster workers
    run until the budget is met unless given ``--timeout``."""
    max_params: int | None = Field(None, gt=0)
    """Reject architectures with more parameters."""
    max_flops: int | None = Field(None, gt=0)
    """Reject architectures with more FLOPs (batch 1)."""
    max_latency_ms: float | None = Field(None, gt=0)
    """Reject architectures slower than this (median batch-1 forward on the trial's device)."""


class SamplerSpec(SpecModel):
    """Optuna sampler."""

    name: Literal["tpe", "random", "grid", "nsga2"] = "tpe"
    """``tpe`` (default), ``random``, ``grid`` (choices and int ranges only), ``nsga2`` (several objectives)."""
    seed: int = Field(0, ge=0, le=SEED_MAX)
    """Sampler seed."""
    startup_trials: int = Field(8, ge=0)
    """Random trials before TPE starts modelling."""


class PrunerSpec(SpecModel):
    """Optuna pruner, fed the validation metric after every epoch."""

    name: Literal["median", "hyperband", "none"] = "median"
    """``median``, ``hyperband`` or ``none``."""
    warmup_epochs: int = Field(2, ge=0)
    """Epochs before a trial can be pruned."""
    startup_trials: int = Field(4, ge=0)
    """Trials that finish before pruning starts (median)."""


class WorkersSpec(SpecModel):
    """How workers share one study: Optuna's heartbeats, retries of dead or preempted trials, reconnects."""

    heartbeat_seconds: int = Field(30, ge=1)
    """A running trial records a heartbeat in the storage this often (Optuna ``heartbeat_interval``)."""
    grace_seconds: int = Field(90, ge=1)
    """A running trial without a heartbeat for this long is failed as stale (Optuna ``grace_period``)."""
    max_retry: int = Field(1, ge=0)
    """Times the parameters of a stale, preempted or interrupted trial are queued again."""
    reconnect_seconds: float = Field(120.0, ge=0, allow_inf_nan=False)
    """How long a lost storage connection is retried (with backoff) before the worker gives up, exit 1."""
    max_failures_in_a_row: int = Field(10, ge=1)
    """A worker whose trials fail this many times in a row (diverging, out of memory, a missing dataset) stops
    with the last error, exit 1, instead of burning the study."""

    @model_validator(mode="after")
    def _grace_after_heartbeat(self) -> WorkersSpec:
        if self.grace_seconds <= self.heartbeat_seconds:
            raise ValueError(
                f"grace_seconds must exceed heartbeat_seconds, got grace_seconds={self.grace_seconds} "
                f"and heartbeat_seconds={self.heartbeat_seconds}"
            )
        return self


class SearchDefinition(SpecModel):
    """An architecture search: one Optuna study."""

    version: Literal[1] = 1
    """Format version."""
    base: str = Field(min_length=1)
    """Base spec file, relative to this file."""
    objectives: list[ObjectiveSpec] = Field(default_factory=lambda: [ObjectiveSpec(metric="val/acc")], min_length=1)
    """One or more objectives."""
    budget: BudgetSpec = Field(default_factory=BudgetSpec)
    """Trial budget and architecture limits."""
    sampler: SamplerSpec = Field(default_factory=SamplerSpec)
    """Sampler."""
    pruner: PrunerSpec = Field(default_factory=PrunerSpec)
    """Pruner."""
    workers: WorkersSpec = Field(default_factory=WorkersSpec)
    """Heartbeats, retries and reconnects of the workers sharing the study (also a single ``search``)."""
    fixed: dict[str, Any] = Field(default_factory=dict, alias="set")
    """Spec path (wildcards ``*`` allowed) -> a value every trial trains with (``set: {train.epochs: 2}``),
    applied to the base spec before any parameter."""
    params: dict[str, ParamSpec] = Field(min_length=1)  # type: ignore[valid-type]
    """Spec path (wildcards ``*`` allowed) -> parameter; the path is also the Optuna parameter name."""

    @model_validator(mode="after")
    def _objectives_unique(self) -> SearchDefinition:
        names = [o.metric for o in self.objectives]
        if len(set(names)) != len(names):
            raise ValueError(f"objectives must be distinct, got {names}")
        return self
