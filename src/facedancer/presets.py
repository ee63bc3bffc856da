"""Model presets: YAML files in ``facedancer/configs`` validated into :class:`Preset`.

They ship inside the package (not in a top-level ``configs/``) so that ``facedancer describe
facedancer`` works from an installed wheel, not only from a checkout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

from facedancer.config import from_dict, load_yaml
from facedancer.errors import ConfigError
from facedancer.identity import EMBEDDING_DIMS
from facedancer.nn import DiscriminatorConfig, GeneratorConfig
from facedancer.train.config import DataConfig, TrainConfig


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


def load_preset(name_or_path: str | Path) -> Preset:
    path = preset_path(name_or_path)
    data = load_yaml(path)
    data.setdefault("name", path.stem)
    return from_dict(Preset, data)
