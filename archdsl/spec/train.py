"""The ``train`` section of a spec: optimisation, schedule, precision, data."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from archdsl.spec.base import SpecModel

__all__ = ["DataSpec", "OptimSpec", "ScheduleSpec", "TrainSpec"]


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
    betas: tuple[float, float] = Field((0.9, 0.999), strict=False)
    """AdamW betas."""


class ScheduleSpec(SpecModel):
    """Per-step learning-rate schedule: linear warm-up, then cosine (or constant) decay."""

    name: Literal["cosine", "constant"] = "cosine"
    """Decay after warm-up."""
    warmup_epochs: float = Field(0.0, ge=0.0)
    """Linear warm-up length in epochs (fractions allowed)."""
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0)
    """Final learning rate as a fraction of ``optimizer.lr``."""


class DigitsData(SpecModel):
    """UCI handwritten digits shipped with scikit-learn: 1,797 8x8 images, 10 classes, split 60/20/20 (seed 0)."""

    name: Literal["digits"]
    augment: bool = True
    """Random shifts of up to 1/8 of the image during training."""


class ImageFolderData(SpecModel):
    """A local tree ``root/{train,val[,test]}/CLASS/*.png|jpg`` read with Pillow."""

    name: Literal["image_folder"]
    root: str = Field(min_length=1)
    """Directory holding ``train/`` and ``val/`` (``test/`` optional; val is used when absent)."""
    mean: tuple[float, float, float] = Field((0.485, 0.456, 0.406), strict=False)
    """Per-channel mean after scaling to [0, 1]."""
    std: tuple[float, float, float] = Field((0.229, 0.224, 0.225), strict=False)
    """Per-channel standard deviation."""
    augment: bool = True
    """Random resized crop and horizontal flip during training."""
    num_workers: int = Field(0, ge=0)
    """DataLoader worker processes."""


class Cifar10Data(SpecModel):
    """CIFAR-10 in its python pickle format in a local directory (nothing is downloaded)."""

    name: Literal["cifar10"]
    root: str = Field(min_length=1)
    """Directory with ``data_batch_1`` … ``data_batch_5`` and ``test_batch`` (or a ``cifar-10-batches-py`` in it)."""
    val_size: int = Field(5000, ge=1)
    """Images held out of the training batches for validation (stratified, seed 0)."""
    augment: bool = True
    """Random crop with 4-px padding and horizontal flip during training."""
    num_workers: int = Field(0, ge=0)
    """DataLoader worker processes."""


class SyntheticData(SpecModel):
    """Seeded random tensors of the spec's input shape, for smoke tests and benchmarks."""

    name: Literal["synthetic"]
    num_samples: int = Field(256, ge=8)
    """Training samples (validation and test get a quarter each)."""
    num_classes: int | None = Field(None, ge=2)
    """Classes; default: the head's."""


class CustomData(SpecModel):
    """A user LightningDataModule ``module:Class``; refused unless the command line says ``--allow-import``."""

    name: Literal["custom"]
    target: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    """``package.module:ClassName``."""
    kwargs: dict[str, str | int | float | bool | None] = Field(default_factory=dict)
    """Keyword arguments passed to the class (plain values only)."""


DataSpec = Annotated[
    Union[DigitsData, ImageFolderData, Cifar10Data, SyntheticData, CustomData],  # noqa: UP007
    Field(discriminator="name"),
]


class TrainSpec(SpecModel):
    """How to train the model."""

    epochs: int = Field(10, ge=1)
    """Training epochs."""
    batch_size: int = Field(64, ge=1)
    """Batch size per device."""
    optimizer: OptimSpec = Field(default_factory=OptimSpec)
    """Optimiser."""
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    """Learning-rate schedule."""
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    """Cross-entropy label smoothing."""
    grad_clip: float | None = Field(None, gt=0.0)
    """Clip the global gradient norm to this value."""
    precision: Literal["32", "bf16-mixed", "16-mixed"] = "32"
    """Numeric precision (``16-mixed`` needs CUDA)."""
    seed: int = Field(0, ge=0)
    """Seed of weights, data order and augmentation."""
    drop_path_rate: float = Field(0.0, ge=0.0, lt=1.0)
    """Stochastic depth: rate of the last block, linearly increasing from 0 over the blocks."""
    accelerator: Literal["auto", "cpu", "cuda", "gpu", "mps"] = "auto"
    """Lightning accelerator (``auto``: CUDA when present)."""
    devices: int | Literal["auto"] = "auto"
    """Devices per node."""
    data: DataSpec = Field(default_factory=lambda: DigitsData(name="digits"))  # type: ignore[valid-type]
    """Dataset."""

    @model_validator(mode="after")
    def _precision_needs_cuda(self) -> TrainSpec:
        if self.precision == "16-mixed" and self.accelerator == "cpu":
            raise ValueError("precision 16-mixed needs a CUDA accelerator; use bf16-mixed on the CPU")
        return self
