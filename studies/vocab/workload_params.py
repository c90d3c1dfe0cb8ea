"""Each workload's parameters (a spec's ``workload_params``) as a typed, bounded pydantic model (torch-free).

A spec names a workload and gives it parameters; without a model those were free-form, so
``n_train: 1e12`` or ``hidden: -5`` was accepted and failed (or exhausted memory) only when a trial
ran. Each model here lists a workload's parameters with their defaults and bounds; unknown keys are
refused. The bounds are generous for real studies and stop a value that could exhaust memory or time
(a billion-unit layer, a trillion samples). ``validate_params`` is what the spec calls; the models
also appear in the spec's JSON schema (and so in the HTTP API's OpenAPI document).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

__all__ = ["PARAMS", "PIXELS", "WorkloadParams", "params_model", "validate_params"]

PIXELS = 784  # MNIST's 28 × 28 binary pixels: the VAE's chance NLL is PIXELS · log 2 nats


class WorkloadParams(BaseModel):
    """Base of every workload's parameters: no unknown keys, no infinities, and strict types (an
    integer parameter takes neither ``true`` nor ``"128"`` nor ``4.0``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)

    def chance_levels(self) -> tuple[float, float]:
        """(metric, loss) of a model that guesses: the failure scores y_fail of a diverged trial.
        Default: a uniform guess over ``class_count`` classes, error 1 − 1/k and cross-entropy log k."""
        classes = float(self.class_count)
        return 1.0 - 1.0 / classes, math.log(classes)

    @property
    def class_count(self) -> int:
        """How many classes a classifier workload tells apart (10 unless a workload says otherwise)."""
        return 10


class SyntheticParams(WorkloadParams):
    """``synthetic``: Gaussian clusters, softmax regression (or one hidden layer)."""

    n_train: int = Field(default=256, ge=2, le=100_000, description="training samples (val and test: half each)")
    features: int = Field(default=8, ge=1, le=4096, description="input features")
    classes: int = Field(default=3, ge=2, le=1000, description="number of classes")
    hidden: int = Field(default=0, ge=0, le=4096, description="hidden units (0: a linear model)")

    @property
    def class_count(self) -> int:
        return self.classes

    hold: str | None = Field(
        default=None,
        max_length=4096,
        description="a file path: while that file exists each trial waits before it trains (tests use it to "
        "hold a study at a known point instead of racing the clock)",
    )


class DigitsMLPParams(WorkloadParams):
    """``digits_mlp``: a 64 → hidden → hidden → 10 MLP."""

    hidden: int = Field(default=64, ge=1, le=4096, description="units per hidden layer")


class DigitsCNNParams(WorkloadParams):
    """``digits_cnn``: conv(1 → c) - conv(c → 2c) - pool - linear."""

    channels: int = Field(default=16, ge=1, le=512, description="channels of the first convolution")


class WineMLPParams(WorkloadParams):
    """``wine_mlp``: 13 features → hidden → 3 classes."""

    hidden: int = Field(default=32, ge=1, le=4096, description="units of the hidden layer")

    @property
    def class_count(self) -> int:
        return 3


class BreastCancerMLPParams(WorkloadParams):
    """``breast_cancer_mlp``: 30 features → hidden → 2 classes."""

    hidden: int = Field(default=32, ge=1, le=4096, description="units of the hidden layer")

    @property
    def class_count(self) -> int:
        return 2


class SyntheticFamilyParams(WorkloadParams):
    """``synthetic_family``: Gaussian classes with a set input condition number and label noise."""

    condition: float = Field(default=1.0, ge=1, le=1e8, description="condition number of the inputs' covariance")
    label_noise: float = Field(default=0.0, ge=0, lt=1, description="share of labels replaced by a random class")
    n_train: int = Field(default=512, ge=2, le=100_000, description="training samples (val and test: half each)")
    features: int = Field(default=16, ge=1, le=4096, description="input features")
    classes: int = Field(default=4, ge=2, le=1000, description="number of classes")
    hidden: int = Field(default=32, ge=0, le=4096, description="hidden units (0: softmax regression)")
    separation: float = Field(default=1.0, gt=0, le=100, description="standard deviation of the class centres")
    data_seed: int = Field(default=2024, ge=0, le=2**31 - 1, description="seed of the data draw (not the trials')")

    @property
    def class_count(self) -> int:
        return self.classes


class ImageParams(WorkloadParams):
    """The file-based image classifiers: augmentation and the validation holdout."""

    dataset_classes: ClassVar[int] = 10

    augment: StrictBool = Field(default=True, description="random crop + horizontal flip on the training set")
    val_size: int | None = Field(
        default=None,
        ge=0,
        le=100_000,
        description="training images held out for validation (default per dataset; 0 only with the spec's "
        "full_train: the paper's protocol, no validation split)",
    )
    num_classes: int | None = Field(default=None, ge=1, le=1000, description="fixed by the dataset; checked if given")

    @model_validator(mode="after")
    def _dataset_classes(self) -> ImageParams:
        if self.num_classes is not None and self.num_classes != self.dataset_classes:
            raise ValueError(f"num_classes: {self.num_classes} given, the dataset has {self.dataset_classes}")
        return self

    @property
    def class_count(self) -> int:
        return self.dataset_classes


class ResNet20Params(ImageParams):
    """``cifar10_resnet20``."""


class DropoutImageParams(ImageParams):
    """``stl10_wrn16_8`` (and, with 100 classes, ``cifar100_vgg16``): an image classifier with dropout."""

    dropout: float | None = Field(default=None, ge=0, lt=1, description="dropout rate (default per model)")


class Cifar100Params(DropoutImageParams):
    """``cifar100_vgg16``."""

    dataset_classes: ClassVar[int] = 100


class MnistVAEParams(WorkloadParams):
    """``mnist_vae``: a 784-hidden-latent VAE."""

    val_size: int = Field(
        default=5000,
        ge=0,
        le=59_999,
        description="training images held out for validation (0 only with the spec's full_train)",
    )
    hidden: int = Field(default=400, ge=1, le=8192, description="hidden units of encoder and decoder")
    latent: int = Field(default=20, ge=1, le=1024, description="latent dimensions")

    def chance_levels(self) -> tuple[float, float]:
        """A decoder that says 1/2 for every pixel: PIXELS · log 2 nats, as NLL and as loss."""
        return PIXELS * math.log(2.0), PIXELS * math.log(2.0)


class PtbParams(WorkloadParams):
    """``ptb_lstm``: an LSTM language model."""

    vocab_size: int = Field(default=10_000, ge=2, le=200_000, description="vocabulary size (>= the file's word types)")
    bptt: int = Field(default=35, ge=1, le=1000, description="backpropagation-through-time steps")
    hidden: int = Field(default=650, ge=1, le=8192, description="LSTM units per layer")
    layers: int = Field(default=2, ge=1, le=8, description="LSTM layers")
    dropout: float = Field(default=0.5, ge=0, lt=1, description="dropout rate")

    def chance_levels(self) -> tuple[float, float]:
        """A uniform guess over the vocabulary: perplexity V, cross-entropy log V."""
        return float(self.vocab_size), math.log(float(self.vocab_size))


PARAMS: dict[str, type[WorkloadParams]] = {
    "synthetic": SyntheticParams,
    "digits_mlp": DigitsMLPParams,
    "digits_cnn": DigitsCNNParams,
    "wine_mlp": WineMLPParams,
    "breast_cancer_mlp": BreastCancerMLPParams,
    "synthetic_family": SyntheticFamilyParams,
    "cifar10_resnet20": ResNet20Params,
    "cifar100_vgg16": Cifar100Params,
    "stl10_wrn16_8": DropoutImageParams,
    "mnist_vae": MnistVAEParams,
    "ptb_lstm": PtbParams,
}


def params_model(workload: str) -> type[WorkloadParams]:
    """The parameter model of ``workload`` (``KeyError`` for an unknown name)."""
    return PARAMS[workload]


def validate_params(workload: str, params: Any) -> dict[str, Any]:
    """``params`` checked against the workload's model: the keys given, typed (``ValidationError``
    naming each bad key otherwise). Defaults stay implicit so stored specs keep what the user wrote."""
    model = params_model(workload).model_validate(params)
    return model.model_dump(exclude_unset=True, exclude_none=True)
