"""The ``train`` section of a spec: optimisation, schedule, precision, data."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from archdsl.spec.augment import AugmentSpec, EmaSpec, MixSpec, RandAugmentSpec, RandomErasingSpec
from archdsl.spec.base import SpecModel

__all__ = [
    "SEED_MAX",
    "AugmentSpec",
    "EmaSpec",
    "InitSpec",
    "LoggerName",
    "MixSpec",
    "MlflowSpec",
    "OptimSpec",
    "RandAugmentSpec",
    "RandomErasingSpec",
    "ScheduleSpec",
    "TrainSpec",
]

if TYPE_CHECKING:  # the union of the registered datasets (``archdsl/datasets``), filled in with the spec models
    DataSpec = Any


Beta = Annotated[float, Field(ge=0.0, lt=1.0)]
SEED_MAX = 2**32 - 1
"""Seeds are handed to NumPy and torch generators, which take 32-bit seeds."""


LoggerName = Literal["csv", "tensorboard", "mlflow"]
"""A training logger (:mod:`archdsl.train.loggers`): ``csv`` writes ``metrics.csv``; ``tensorboard`` and ``mlflow``
need the ``tracking`` extra (``pip install 'archdsl[tracking]'``)."""


class MlflowSpec(SpecModel):
    """Where the ``mlflow`` logger records a run: an MLflow tracking store and an experiment in it.

    A search records each trained trial as a run tagged with the study (``archdsl.study``), the trial number
    (``archdsl.trial``) and its parameters (``archdsl.param.NAME``), nested under one parent run per study."""

    tracking_uri: str | None = Field(None, min_length=1, max_length=4096)
    """MLflow tracking URI (``http://host:5000``, ``sqlite:///path/mlflow.db``, ``databricks``); ``null``: the
    ``MLFLOW_TRACKING_URI`` environment variable, else ``sqlite:///DIR/mlflow.db`` in the run's directory (a
    search's: its output directory), artifacts beside it in ``DIR/mlartifacts``."""
    experiment: str | None = Field(None, min_length=1, max_length=500)
    """MLflow experiment, made when missing; ``null``: the spec's name (a search: the study's name)."""


class OptimSpec(SpecModel):
    """Optimiser; weight decay is not applied to norms, biases, embeddings and relative-position tables."""

    name: Literal["adamw", "sgd"] = "adamw"
    """``adamw`` or ``sgd`` (with momentum)."""
    lr: float = Field(1e-3, gt=0.0)
    """Peak learning rate (reached after warm-up)."""
    weight_decay: float = Field(0.05, ge=0.0)
    """Decoupled (AdamW) or L2 (SGD) weight decay of conv/linear weights."""
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    """SGD momentum."""
    nesterov: bool = False
    """SGD Nesterov momentum."""
    betas: tuple[Beta, Beta] = Field((0.9, 0.999), strict=False)
    """AdamW betas, each in [0, 1)."""


class ScheduleSpec(SpecModel):
    """Per-step learning-rate schedule: linear warm-up, then cosine (or constant) decay."""

    name: Literal["cosine", "constant"] = "cosine"
    """Decay after warm-up."""
    warmup_epochs: float = Field(0.0, ge=0.0, le=100_000)
    """Linear warm-up length in epochs (fractions allowed)."""
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0)
    """Final learning rate as a fraction of ``optimizer.lr``."""


InitMap = Literal["archdsl", "timm", "torchvision"]
"""How a checkpoint names its tensors (:mod:`archdsl.weights.maps`)."""


class InitSpec(SpecModel):
    """Start training from the weights of a checkpoint file instead of a fresh initialisation.

    Every tensor of the loaded parts is matched (names through ``map``, shapes against the plan) before any is
    copied: a missing, unexpected or differently shaped tensor is a problem located at the part that holds it,
    and nothing is loaded. Nothing is downloaded: ``from`` is a file on disk. A resumed run (``--resume``) takes
    its weights from its own checkpoint, not from this file."""

    model_config = ConfigDict(**SpecModel.model_config, serialize_by_alias=True)

    path: str = Field(alias="from", min_length=1, max_length=4096)
    """The checkpoint file (YAML key ``from``; relative to the working directory): safetensors, or a
    ``torch.save`` state dict, also one nested under a ``state_dict`` or ``model`` key (a Lightning checkpoint)."""
    map: InitMap = "archdsl"
    """Its tensor names: ``archdsl`` (this model's own, e.g. another run's ``best.ckpt``); ``timm``, whose family
    is read from the file's keys: ResNet (``layer1.``: resnet50), ByobNet (``stages.0.0.conv1_1x1.``: BoTNet-50,
    HaloNet, whose halo mixers need ``compat: timm``) or VOLO (``network.``: D1-D5), tensors reordered where
    timm lays them out otherwise (a per-head kv conv, a channels-last position embedding); ``torchvision``
    (its ResNet names: ``conv1``, ``bn1``, ``layer1.0.conv1``, ``fc``)."""
    strict: bool = True
    """Every tensor of the loaded parts must be in the file and every tensor of the file must be taken (those of
    the stages not listed and of a dropped head excepted); ``false``: missing tensors keep their fresh
    initialisation and extra ones are ignored. Shapes must agree either way."""
    stages: tuple[Annotated[int, Field(ge=0, le=64)], ...] | None = Field(None, strict=False, max_length=64)
    """The stages to load (0-based; the stem is always loaded), e.g. ``[0, 1]``: the conv stages of a hybrid from
    a ResNet-50; ``null``: every stage."""
    head: Literal["keep", "drop"] = "keep"
    """``keep``: load the classifier too (its shape must agree); ``drop``: leave it at its fresh initialisation
    (another number of classes)."""

    @field_validator("stages")
    @classmethod
    def _each_once(cls, stages: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if stages is not None and len(set(stages)) != len(stages):
            raise ValueError(f"names each stage once, got {list(stages)}")
        return stages


class TrainSpec(SpecModel):
    """How to train the model."""

    epochs: int = Field(10, ge=1, le=100_000)
    """Training epochs."""
    batch_size: int = Field(64, ge=1, le=1_000_000)
    """Batch size per device."""
    optimizer: OptimSpec = Field(default_factory=OptimSpec)
    """Optimiser."""
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    """Learning-rate schedule."""
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    """Cross-entropy label smoothing (folded into the soft targets when ``augment`` mixes batches)."""
    augment: AugmentSpec = Field(default_factory=AugmentSpec)
    """Batch augmentation on the device: RandAugment, random erasing, mixup, CutMix (off by default)."""
    ema: EmaSpec | None = None
    """An exponential moving average of the weights, used for validation, checkpoints and export; ``null``: off."""
    grad_clip: float | None = Field(None, gt=0.0)
    """Clip the global gradient norm to this value."""
    precision: Literal["auto", "32", "bf16-mixed", "16-mixed"] = "auto"
    """Numeric precision: ``auto`` is ``bf16-mixed`` on a CUDA device that supports it, else ``32``;
    ``16-mixed`` needs CUDA."""
    deterministic: bool = False
    """Deterministic algorithms only (Lightning's ``deterministic``); off, a CUDA run lets cuDNN pick its fastest
    kernels (``cudnn.benchmark``) and float32 matmuls use TF32."""
    seed: int = Field(0, ge=0, le=SEED_MAX)
    """Seed of weights, data order and augmentation."""
    drop_path_rate: float = Field(0.0, ge=0.0, lt=1.0)
    """Stochastic depth: rate of the last block, linearly increasing from 0 over the blocks."""
    accelerator: Literal["auto", "cpu", "cuda", "gpu", "mps"] = "auto"
    """Lightning accelerator (``auto``: CUDA when present)."""
    devices: Annotated[int, Field(ge=1, le=4096)] | Literal["auto"] = "auto"
    """Devices per node."""
    compile: bool = False
    """``torch.compile`` the model for training and evaluation (inductor, whole graph, dynamic batch size; once per
    run and process; ``ARCHDSL_COMPILE_BACKEND`` names another backend). Off by default: the first steps pay the
    compile (tens of seconds on a laptop CPU); long runs gain (docs/performance.md)."""
    data: DataSpec = Field(default_factory=lambda: {"name": "digits"})
    """Dataset."""
    loggers: tuple[LoggerName, ...] = Field(("csv",), strict=False, min_length=1, max_length=8)
    """Where the metrics go, ``csv`` first: ``csv`` (``metrics.csv`` in the run's directory, always written, kept
    across a resume), ``tensorboard`` (event files in ``DIR/tensorboard``), ``mlflow`` (a run in an MLflow tracking
    store, see ``mlflow``); the last two need the ``tracking`` extra: ``pip install 'archdsl[tracking]'``."""
    mlflow: MlflowSpec = Field(default_factory=MlflowSpec)
    """The MLflow tracking store and experiment of the ``mlflow`` logger."""
    init: InitSpec | None = None
    """Initial weights from a checkpoint file (pretrained ResNet-50 stages, another run's weights); ``null``: a
    fresh initialisation."""

    @field_validator("loggers")
    @classmethod
    def _csv_first_once(cls, loggers: tuple[str, ...]) -> tuple[str, ...]:
        if loggers[0] != "csv":
            raise ValueError(
                f"must start with csv (metrics.csv is always written: resume and search read it), got {list(loggers)}"
            )
        twice = sorted({name for name in loggers if loggers.count(name) > 1})
        if twice:
            raise ValueError(f"names each logger once, got {', '.join(twice)} more than once")
        return loggers

    @model_validator(mode="after")
    def _precision_needs_cuda(self) -> TrainSpec:
        if self.precision == "16-mixed" and self.accelerator == "cpu":
            raise ValueError("precision 16-mixed needs a CUDA accelerator; use bf16-mixed on the CPU")
        return self
