"""Model presets: YAML files in ``facedancer/configs`` validated into :class:`Preset`.

They ship inside the package (not in a top-level ``configs/``) so that ``facedancer describe
facedancer`` works from an installed wheel, not only from a checkout.

A preset's sections are strict dataclasses: the networks' own (``nn``), and here those of the identity
encoder, IFSR, the data and training. Defaults are the official code's (PAPER.md §3); where the paper and
the code differ, the other variant is a named option, and each field says which is which (PAPER.md §5
gives the row numbers). The training sections live here, not in ``train``, so that reading a preset
never imports the trainer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

from facedancer.config import apply_overrides, from_dict, load_yaml
from facedancer.errors import ConfigError
from facedancer.identity import EMBEDDING_DIMS
from facedancer.nn import DiscriminatorConfig, GeneratorConfig


@dataclass
class AugmentConfig:
    """Photometric jitter, drawn independently for targets and sources (PAPER.md §3.5, §5 row 16)."""

    #: additive brightness delta U(-b, b) on [-1, 1] images (so +-0.15 on a [0, 1] scale)
    brightness: float = 0.3
    contrast: tuple[float, float] = (0.9, 1.1)
    saturation: tuple[float, float] = (0.9, 1.1)
    #: "batch": one draw per batch and stream (the official stateless TF ops); "sample": one per image
    per: Literal["batch", "sample"] = "batch"
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.brightness < 0 or self.contrast[0] > self.contrast[1] or self.saturation[0] > self.saturation[1]:
            raise ValueError("augment: brightness must be >= 0 and ranges must be (low, high)")
        if min(*self.contrast, *self.saturation) < 0:
            raise ValueError("augment: contrast and saturation factors must be >= 0")


@dataclass
class DataConfig:
    #: a folder written by ``facedancer prepare`` (crops/ + manifest.csv)
    root: str | None = None
    #: read the crops from "crops/" or from the WebDataset tars ``prepare --tar-samples`` wrote
    source: Literal["crops", "tars"] = "crops"
    #: per-sample probability that the source is the target image itself (at least one per batch)
    same_ratio: float = 0.2
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    #: identities held out for validation (chosen by the seed)
    val_identities: int = 16
    #: fixed validation pairs drawn from the held-out identities
    val_pairs: int = 32
    #: DataLoader worker processes per training process
    workers: int = 2

    def __post_init__(self) -> None:
        if not 0.0 <= self.same_ratio <= 1.0:
            raise ValueError("data.same_ratio must be in [0, 1]")
        if self.val_identities < 0 or self.val_pairs < 0 or self.workers < 0:
            raise ValueError("data.val_identities, val_pairs and workers must be >= 0")


@dataclass
class LossConfig:
    """Loss terms and weights: L_G = adv + 5 rec + 10 id + 1 cyc + 0.2 p + IFSR (PAPER.md §3.1)."""

    #: "logistic": non-saturating softplus + R1 on real sources (official code, §5 row 1);
    #: "hinge": the paper's hinge loss
    adversarial: Literal["logistic", "hinge"] = "logistic"
    #: R1 penalty gamma on the real (source) images; applied every step, to either adversarial loss
    r1_gamma: float = 10.0
    adversarial_weight: float = 1.0
    reconstruction_weight: float = 5.0
    identity_weight: float = 10.0
    cycle_weight: float = 1.0
    perceptual_weight: float = 0.2
    #: "plain": mean L1 over same pairs; "official": 0.5 x masked mean (denominator + 1e-3), clipped to
    #: [0, 5] (§3.1, §5 row 4); the official form halves the effective weight
    reconstruction: Literal["plain", "official"] = "plain"
    #: the perceptual loss's mean over same pairs: "plain" divides by their count, "official" by the
    #: count + 1e-3 as the official code (§3.1), a hair below the plain mean
    perceptual_mean: Literal["plain", "official"] = "plain"
    #: "auto": VGG16 when the user added torchvision VGG16 weights (`facedancer models add vgg16`), else
    #: the identity encoder's early blocks; resolved once at the start of a run and written to its config
    perceptual: Literal["auto", "vgg16", "identity", "none"] = "auto"
    #: the official 0.85 factor inside the perceptual L1
    perceptual_scale: float = 0.85
    #: "raw": feed [-1, 1] images to VGG16 as the official code does; "imagenet": the weights' own
    #: normalisation (torchvision weights expect it)
    vgg_input: Literal["imagenet", "raw"] = "imagenet"
    #: identity-encoder blocks for the "identity" perceptual loss; empty = the shallowest third
    identity_blocks: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        weights = ("r1_gamma", "adversarial_weight", "reconstruction_weight", "identity_weight", "cycle_weight")
        for name in (*weights, "perceptual_weight", "perceptual_scale"):
            if getattr(self, name) < 0:
                raise ValueError(f"loss.{name} must be >= 0, got {getattr(self, name)}")


@dataclass
class TrainConfig:
    #: where numbered run directories are created
    out_dir: str = "runs"
    #: optimiser steps to run (the official runs ~300k at batch 10)
    steps: int = 300_000
    #: images per process per micro-batch
    batch_size: int = 10
    #: micro-batches per optimiser step
    accumulate: int = 1
    lr: float = 1e-4
    betas: tuple[float, float] = (0.0, 0.99)
    #: Keras' Adam epsilon (PyTorch's default is 1e-8)
    eps: float = 1e-7
    #: continuous decay lr * decay ** (step / decay_steps): x0.97 per 100k steps
    lr_decay: float = 0.97
    lr_decay_steps: int = 100_000
    #: "simultaneous": one forward pass, G and D stepped together (official); "alternating": D then G
    update: Literal["simultaneous", "alternating"] = "simultaneous"
    loss: LossConfig = field(default_factory=LossConfig)
    device: str = "auto"
    #: "auto": bf16 autocast on CUDA when supported, else fp32; CPU runs must stay fp32
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    #: "auto": on for CUDA, off on CPU (where it slows training about 2x)
    channels_last: Literal["auto", "on", "off"] = "auto"
    compile: bool = False
    seed: int = 0
    #: torch.use_deterministic_algorithms; needed for bit-exact resume
    deterministic: bool = False
    checkpoint_every: int = 1000
    #: how many step checkpoints to keep (the newest)
    keep_checkpoints: int = 2
    log_every: int = 100
    image_every: int = 1000
    val_every: int = 1000
    tensorboard: bool = True
    #: a model directory to start from (``facedancer train --init``): G's weights, and D's from its
    #: ``discriminator/`` when it has one; weights only, in a new run with fresh optimiser state
    init: str | None = None

    def __post_init__(self) -> None:
        positive = ("steps", "batch_size", "accumulate", "lr_decay_steps", "checkpoint_every", "keep_checkpoints")
        for name in (*positive, "log_every", "image_every", "val_every", "seed"):
            bound = 1 if name in positive else 0
            if getattr(self, name) < bound:
                raise ValueError(f"train.{name} must be >= {bound}, got {getattr(self, name)}")
        # what Adam and the schedule would reject mid-run (or silently turn into a diverging run)
        if not self.lr > 0:
            raise ValueError(f"train.lr must be > 0, got {self.lr}")
        if not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"train.betas must both be in [0, 1), got {list(self.betas)}")
        if not self.eps > 0:
            raise ValueError(f"train.eps must be > 0, got {self.eps}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"train.lr_decay must be in (0, 1] (a factor per lr_decay_steps), got {self.lr_decay}")


@dataclass
class IdentityConfig:
    #: the frozen encoder that gives z_s and drives the identity loss and IFSR
    encoder: str = "arcface-iresnet50"

    def __post_init__(self) -> None:
        if self.encoder not in EMBEDDING_DIMS:
            raise ValueError(f"unknown identity encoder {self.encoder!r}; choose from {', '.join(EMBEDDING_DIMS)}")


@dataclass
class IFSRConfig:
    """Interpreted Feature Similarity Regularization (PAPER.md §2)."""

    enabled: bool = True
    #: margins are multiplied by this; lower forces harder similarity to the target
    scale: float = 1.2
    #: a margins file (JSON from ``facedancer calibrate-ifsr``) or a registered name; null = not calibrated
    margins: str | None = None
    #: "batch": hinge on the batch-mean distance (official code); "sample": mean of per-sample hinges
    reduction: Literal["batch", "sample"] = "batch"
    #: lambda_ifsr in the generator objective
    weight: float = 1.0

    def __post_init__(self) -> None:
        if not self.scale > 0 or self.weight < 0:
            raise ValueError(f"ifsr.scale must be > 0 and ifsr.weight >= 0, got {self.scale} and {self.weight}")


@dataclass
class Preset:
    name: str = ""
    description: str = ""
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    identity: IdentityConfig = field(default_factory=IdentityConfig)
    ifsr: IFSRConfig = field(default_factory=IFSRConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        dim = EMBEDDING_DIMS[self.identity.encoder]
        if self.generator.identity_dim != dim:
            raise ValueError(
                f"generator.identity_dim is {self.generator.identity_dim} but {self.identity.encoder} "
                f"embeddings have {dim} dimensions"
            )
        if self.discriminator.image_size != self.generator.image_size:
            raise ValueError("generator and discriminator image_size differ")


def preset_dir() -> Path:
    return Path(str(resources.files("facedancer") / "configs"))


def list_presets() -> list[str]:
    return sorted(p.stem for p in preset_dir().glob("*.yaml"))


def preset_path(name_or_path: str | Path) -> Path:
    """A preset name (``facedancer``) or a path to a YAML file."""
    path = Path(name_or_path)
    if str(name_or_path) and (path.suffix in (".yaml", ".yml") or path.exists()):
        if path.is_dir():
            raise ConfigError(f"{path} is a folder, not a preset file (nor a model directory: no config.json)")
        if not path.exists():
            raise ConfigError(f"config file not found: {path}")
        if not path.is_file():
            raise ConfigError(f"{path} is not a regular file (a pipe or a device)")
        return path
    candidate = preset_dir() / f"{name_or_path}.yaml"
    if not candidate.is_file():
        raise ConfigError(f"unknown preset {str(name_or_path)!r}; presets: {', '.join(list_presets())}")
    return candidate


def load_preset(name_or_path: str | Path, overrides: Sequence[str] = ()) -> Preset:
    """A preset by name or YAML path, with ``key.sub=value`` overrides (``--set``) applied before validation."""
    path = preset_path(name_or_path)
    data = load_yaml(path)
    data.setdefault("name", path.stem)
    return from_dict(Preset, apply_overrides(data, list(overrides)))
