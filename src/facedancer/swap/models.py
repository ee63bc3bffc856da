"""What turns an aligned target crop into a swapped one: a trained generator, or the classical reference.

Both sit behind :class:`CropSwapper`, so the face pipeline (detection, tracking, blending, video) is the
same whichever model runs. A model is named by ``--model``: a model shipped inside the package, a model
directory (``config.json`` + ``model.safetensors``), or ``classical``, the parameter-free landmark-warp
+ Poisson swap that needs no weights at all.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from facedancer.errors import CheckpointError, ConfigError
from facedancer.faces.align import align
from facedancer.identity import EMBEDDING_DIMS, IdentityEncoder, embed_crops, from_uint8, load_model_encoder
from facedancer.io import COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA
from facedancer.nn import Generator
from facedancer.nn.pretrained import CONFIG_NAME, read_meta
from facedancer.swap.backends import Backend, GeneratorRunner, Precision
from facedancer.swap.classical import CLASSICAL, ClassicalSwapper

#: the model ``facedancer swap`` uses when none is named
DEFAULT_MODEL = "facedancer-lite"


class CropSwapper(Protocol):
    """Swaps faces on aligned crops (ArcFace template scaled to ``crop_size``, shrink 1.0)."""

    name: str
    crop_size: int
    device: torch.device
    #: the IPTC digital source type of a frame with faces from this swapper pasted in (the output's label)
    source_type: str

    def source(self, image: np.ndarray, landmarks: np.ndarray) -> object:
        """Whatever this swapper keeps of a source face (an embedding, a crop), computed once."""
        ...

    def swap(self, crops: np.ndarray, sources: list[object]) -> np.ndarray:
        """(B, S, S, 3) uint8 target crops and one source per crop -> swapped crops, same shape."""
        ...


def bundled_models() -> dict[str, Path]:
    """Models shipped inside the package (``facedancer/weights/<name>/``)."""
    root = Path(str(resources.files("facedancer") / "weights"))
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir()) if (p / CONFIG_NAME).is_file()}


def model_directory(spec: str | Path) -> Path:
    """The directory of a bundled model name or a path; a clear error for anything else."""
    path = Path(spec)
    if (path / CONFIG_NAME).is_file():
        return path
    bundled = bundled_models()
    if str(spec) in bundled:
        return bundled[str(spec)]
    if path.exists():
        raise CheckpointError(f"{path} is not a facedancer model: {CONFIG_NAME} is missing")
    choices = ", ".join([*bundled, CLASSICAL, "or a model directory"])
    if str(spec) == DEFAULT_MODEL:
        raise CheckpointError(
            f"the default model {DEFAULT_MODEL} is not bundled with this version of facedancer; "
            f"use --model {CLASSICAL} (parameter-free reference swap) or --model PATH to a trained model"
        )
    raise CheckpointError(f"unknown model {str(spec)!r}; choose {choices}")


class GeneratorSwapper:
    """A trained FaceDancer generator: ``G(x_t, z_s)`` on 256 crops, ``z_s`` from the identity encoder.

    The generator runs on the backend and precision :class:`~facedancer.swap.backends.GeneratorRunner`
    resolves (``auto``: the fastest installed runtime that is exact for this model, bf16 where native).
    """

    source_type = COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA  # a generated face in a real photo or video

    def __init__(
        self,
        generator: Generator,
        encoder: IdentityEncoder,
        name: str,
        device: torch.device,
        precision: Precision = "auto",
        backend: Backend = "auto",
    ) -> None:
        self.name = name
        self.device = device
        self.crop_size = generator.config.image_size
        self.runner = GeneratorRunner(generator, device, backend, precision)
        self.encoder = encoder.to(device)

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        device: str | torch.device = "cpu",
        precision: Precision = "auto",
        backend: Backend = "auto",
    ) -> GeneratorSwapper:
        generator = Generator.from_pretrained(directory)
        meta = read_meta(directory)
        dim = generator.config.identity_dim
        encoder_name = meta.get("identity_encoder") or _encoder_for(dim)
        encoder = load_model_encoder(directory, encoder_name)
        if encoder.embedding_dim != dim:
            raise CheckpointError(
                f"{directory}: identity encoder {encoder_name!r} gives {encoder.embedding_dim}-d embeddings, "
                f"the generator takes {dim}-d"
            )
        return cls(generator, encoder, model_name(directory, meta), torch.device(device), precision, backend)

    def source(self, image: np.ndarray, landmarks: np.ndarray) -> torch.Tensor:
        """The raw embedding of the source face, aligned straight to the encoder's size (the official recipe)."""
        crop = align(image, landmarks, self.encoder.input_size)[0]
        return embed_crops(self.encoder, crop, self.device)[0].float().cpu()  # once: the runner takes CPU inputs

    @torch.inference_mode()
    def swap(self, crops: np.ndarray, sources: list[object]) -> np.ndarray:
        x = from_uint8(crops) * 2 - 1
        z = torch.stack([torch.as_tensor(s) for s in sources])
        y = self.runner(x, z)
        # the output layer is linear (PAPER.md §1.3): map [-1, 1] to pixels and clip only here
        out = ((y + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        return out.permute(0, 2, 3, 1).cpu().numpy()


def model_name(directory: str | Path, meta: dict) -> str:
    """How outputs and reports name a model: a converted model by its source file (``meta.name``), a
    training checkpoint (whose directory is just "generator") by preset and step, else by its directory."""
    if meta.get("name"):
        return str(meta["name"])
    return f"{meta['preset']}@step{meta['step']}" if {"preset", "step"} <= set(meta) else Path(directory).name


def _encoder_for(identity_dim: int) -> str:
    names = [n for n, d in EMBEDDING_DIMS.items() if d == identity_dim]
    if not names:
        raise ConfigError(f"no identity encoder gives {identity_dim}-d embeddings")
    return names[0]


def load_crop_swapper(
    model: str | Path = DEFAULT_MODEL,
    device: str | torch.device = "cpu",
    precision: Precision = "auto",
    compile: bool = False,
    backend: Backend = "auto",
) -> CropSwapper:
    """``compile=True`` is the older spelling of ``backend="compile"``."""
    if str(model) == CLASSICAL:
        return ClassicalSwapper()
    backend = "compile" if compile and backend == "auto" else backend
    return GeneratorSwapper.from_pretrained(model_directory(model), device, precision, backend)
