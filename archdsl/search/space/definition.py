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

from typing import Annotated, Any, Literal, get_args

from pydantic import Discriminator, Field, Tag, ValidationInfo, field_validator, model_validator

from archdsl.spec.base import SpecModel
from archdsl.spec.train import SEED_MAX

__all__ = [
    "COMPONENTS",
    "CONV_STAGES",
    "METRICS",
    "PROXY_METRIC",
    "PROXY_NAMES",
    "RUNTIME_NAMES",
    "BlockChoiceParam",
    "BudgetSpec",
    "ChoiceParam",
    "FloatParam",
    "IntParam",
    "LatencySpec",
    "ObjectiveSpec",
    "ParamSpec",
    "PrescreenSpec",
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

PROXY_NAMES = ("synflow", "naswot", "grad_norm", "snip", "params", "flops")
"""The zero-cost proxies (:mod:`archdsl.search.proxies`), higher predicting better; ``params`` and ``flops`` are
the baselines a proxy must beat."""
ProxyName = Literal["synflow", "naswot", "grad_norm", "snip", "params", "flops"]
PROXY_METRIC = "proxy/"
"""An objective ``proxy/NAME`` scores the untrained architecture: a training-free search."""

METRICS: dict[str, str] = {
    "val/acc": "maximize",
    "val/loss": "minimize",
    "params": "minimize",
    "flops": "minimize",
    "latency_ms": "minimize",
} | {f"{PROXY_METRIC}{name}": "maximize" for name in PROXY_NAMES}
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

    metric: Literal[
        "val/acc",
        "val/loss",
        "params",
        "flops",
        "latency_ms",
        "proxy/synflow",
        "proxy/naswot",
        "proxy/grad_norm",
        "proxy/snip",
        "proxy/params",
        "proxy/flops",
    ]
    """What to optimise; ``proxy/NAME`` is a zero-cost proxy of the untrained network (no training at all)."""
    direction: Literal["maximize", "minimize"] | None = None
    """Default: maximize accuracy, minimize the rest."""

    @property
    def resolved_direction(self) -> str:
        return self.direction or METRICS[self.metric]


RuntimeName = Literal["eager", "onnxruntime", "torch_export"]
RUNTIME_NAMES: tuple[str, ...] = get_args(RuntimeName)
"""The runtimes latency is timed in (:mod:`archdsl.compiler.runtimes`, whose registry lists the same)."""


class LatencySpec(SpecModel):
    """How ``latency_ms`` is timed: the trial's architecture (fresh weights) in a runtime, warmed up, median of 10 runs.

    It serves ``budget.max_latency_ms`` and the ``latency_ms`` objective; each worker checks before its first trial
    that it can time in the runtime and on the device named."""

    runtime: RuntimeName = "eager"
    """``eager``: the ``nn.Module`` run by PyTorch. ``onnxruntime``: the ONNX graph ``archdsl export --format onnx``
    writes, exported in memory and run in an ONNX Runtime ``InferenceSession`` (the ``onnxruntime`` package).
    ``torch_export``: the ``torch.export`` program of ``model.pt2``, its ``.module()`` (the exported graph run
    eagerly; not compiled by AOTInductor). The trial records the runtime and settings beside ``latency_ms``."""
    device: Literal["cpu", "cuda"] | None = None
    """Where it runs; default: the device the trial trains on (``cuda`` on the trial's own GPU). ``cpu`` times a CPU
    deployment whatever the search trains on."""
    batch: int = Field(1, ge=1, le=4096)
    """Images per inference."""
    threads: int | None = Field(None, ge=1, le=1024)
    """Intra-op threads, set in torch (restored after) and in the runtime (ONNX Runtime's
    ``intra_op_num_threads``); default: the worker's torch thread count. ``1`` gives figures that other processes
    on the machine disturb least."""


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
    """Reject architectures slower than this (``latency_ms``, measured as ``latency`` says: by default the median
    batch-1 eager forward on the trial's device)."""
    latency: LatencySpec = Field(default_factory=LatencySpec)
    """How ``latency_ms`` is measured (runtime, device, batch, threads), for ``max_latency_ms`` and the
    ``latency_ms`` objective."""


class SamplerSpec(SpecModel):
    """Optuna sampler."""

    name: Literal["tpe", "random", "grid", "nsga2", "nsga3", "gp", "qmc", "cmaes"] = "tpe"
    """``tpe`` (default), ``random``, ``grid`` (choices and int ranges only), ``nsga2`` / ``nsga3`` (genetic,
    several objectives), ``gp`` (Gaussian process, one or several objectives), ``qmc`` (scrambled Sobol points,
    a space-filling replacement for random), ``cmaes`` (CMA-ES; int and float parameters only). The budgets
    (``budget.max_*``) reach the samplers that take constraints (tpe, nsga2, nsga3, gp) as Optuna constraints."""
    seed: int = Field(0, ge=0, le=SEED_MAX)
    """Sampler seed."""
    startup_trials: int = Field(8, ge=0)
    """Random trials before TPE, GP or CMA-ES start modelling."""


class PrunerSpec(SpecModel):
    """Optuna pruner, fed the validation metric after every epoch, or after every rung of a lower fidelity."""

    name: Literal["median", "successive_halving", "hyperband", "none"] = "median"
    """``median``, ``successive_halving`` (asynchronous successive halving), ``hyperband`` (successive halving
    over several brackets) or ``none``; one objective only (several objectives train every trial in full)."""
    fidelity: Literal["epochs", "data", "resolution"] = "epochs"
    """What a trial is cut short in. ``epochs``: the pruner reads the validation metric after every epoch.
    ``data`` and ``resolution`` (``successive_halving`` and ``hyperband``): rungs; rung r trains the trial from
    scratch, for all of ``train.epochs``, on ``min_fidelity x reduction_factor^r`` of ``train.data.fraction``
    or of ``input.size`` (a rung the architecture cannot plan at is skipped), up to the whole, and the pruner
    reads each rung's validation metric; a trial pruned at rung r has paid for rungs 0 to r. Each trial records
    ``cost_epochs``: its epochs x ``train.data.fraction`` x (pixels / the trial's pixels), summed over rungs."""
    reduction_factor: int = Field(3, ge=2, le=100)
    """eta of ``successive_halving`` and ``hyperband``: the fidelity grows eta-fold per rung and about 1/eta of
    the trials reaching a rung go on to the next."""
    min_fidelity: float | None = Field(None, gt=0.0, strict=False)
    """The first rung. ``epochs``: epochs before the first decision (Optuna's ``min_resource``; default
    ``warmup_epochs``, at least 1); ``data``: the smallest fraction of the training split (default
    ``1/reduction_factor^2``); ``resolution``: the smallest input side as a fraction of ``input.size``
    (default ``1/reduction_factor``); both below 1."""
    warmup_epochs: int = Field(2, ge=0)
    """Epochs a trial trains before the pruner's first decision (median: it may stop the trial after epoch
    ``warmup_epochs``, and after each one on), and the first rung of ``successive_halving`` and ``hyperband``
    over epochs when ``min_fidelity`` is not given."""
    startup_trials: int = Field(4, ge=0)
    """Trials that finish before pruning starts (median)."""

    @field_validator("fidelity")
    @classmethod
    def _fidelity_needs_rungs(cls, fidelity: str, info: ValidationInfo) -> str:
        name = info.data.get("name")
        if fidelity != "epochs" and name in ("median", "none"):
            raise ValueError(
                f"{fidelity} trains rungs of growing fidelity, which only successive_halving and hyperband compare; "
                f"name {name} {'prunes per epoch' if name == 'median' else 'prunes nothing'}: use name: "
                "successive_halving (or fidelity: epochs)"
            )
        return fidelity

    @field_validator("reduction_factor")
    @classmethod
    def _eta_of_halving(cls, eta: int, info: ValidationInfo) -> int:
        name = info.data.get("name")
        if eta != 3 and name in ("median", "none"):
            raise ValueError(f"is read by successive_halving and hyperband only; name {name} has none, got {eta}")
        return eta

    @field_validator("min_fidelity")
    @classmethod
    def _first_rung(cls, first: float | None, info: ValidationInfo) -> float | None:
        name, fidelity = info.data.get("name"), info.data.get("fidelity")
        if first is None or fidelity is None:
            return first
        if name in ("median", "none"):
            raise ValueError(f"is read by successive_halving and hyperband only; name {name} has none, got {first:g}")
        if fidelity == "epochs" and first != int(first):
            raise ValueError(f"is a number of epochs for fidelity epochs: a whole number, at least 1, got {first:g}")
        if fidelity != "epochs" and first >= 1.0:
            what = "the training split" if fidelity == "data" else "input.size"
            raise ValueError(
                f"is the first rung's fraction of {what} for fidelity {fidelity}: it must be below 1 (1 is the "
                f"last rung), got {first:g}"
            )
        return first


class PrescreenSpec(SpecModel):
    """Train only the proposals a zero-cost proxy ranks best (the best ``keep`` of every ``pool``).

    Of every ``pool`` proposals of the sampler, scored on one batch of the training data, the best ``keep`` are
    queued to train; the rest are recorded as ``screened`` with their score and never count against
    ``budget.trials``."""

    proxy: ProxyName = "naswot"
    """The proxy that ranks the pool (see ``archdsl rank`` and ``python -m benchmarks.proxies``). The default,
    NASWOT, ranked the trained digits architectures best (Spearman 0.62, synflow 0.58, FLOPs 0.47, the parameter
    count 0.30; docs/search.md, "Search that costs less"); ``archdsl report`` measures every proxy on your own space."""
    pool: int = Field(50, ge=2)
    """Proposals scored per round."""
    keep: int = Field(5, ge=1)
    """Of those, how many are trained (fewer when fewer budget slots remain)."""

    @model_validator(mode="after")
    def _keep_fewer(self) -> PrescreenSpec:
        if self.keep >= self.pool:
            raise ValueError(f"keep must be less than pool, got keep={self.keep} and pool={self.pool}")
        return self


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
    prescreen: PrescreenSpec | None = None
    """Rank the sampler's proposals with a zero-cost proxy and train only the best (default: train every one)."""
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
