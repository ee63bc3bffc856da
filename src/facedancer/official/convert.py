"""``facedancer convert-official``: the authors' Keras files -> one ordinary facedancer model directory.

The directory is what ``--model DIR`` and ``Generator.from_pretrained(DIR)`` load: ``config.json`` +
``model.safetensors`` (the generator, fp32, its meta naming the identity encoder and the source file),
``identity_encoder/`` (the converted ArcFace-Res50, when given), ``discriminator/`` (when given or found
beside the generator in the official checkpoint layout, so the model can be fine-tuned with its D) and a
model card with the source files' sha256, the configuration read from them, and their licence. Every
file is read and checked before anything is written; the directory then appears complete or not at all.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

from facedancer.assets.store import sha256_of
from facedancer.atomic import atomic_dir
from facedancer.bundle import CARD_NAME
from facedancer.errors import ConversionError, OutputError
from facedancer.identity import EMBEDDING_DIMS, ENCODER_DIR, KerasResNet
from facedancer.keras import read_keras
from facedancer.nn import Discriminator, Generator, parameter_count
from facedancer.official.load import as_role, load_keras_discriminator, load_keras_generator

ENCODER = "arcface-keras-r50"
DISCRIMINATOR_DIR = "discriminator"
LICENCE = "CC BY-NC-SA 4.0"
LICENCE_URL = "https://creativecommons.org/licenses/by-nc-sa/4.0/"
#: the official train.py's checkpoints: <run>/gen/gen_<N>.h5 + gen.json, <run>/dis/dis_<N>.h5 + dis.json
_CHECKPOINT = re.compile(r"gen_(\d+)\.h5")


def official_checkpoint(generator_h5: Path) -> tuple[Path | None, Path | None, Path | None]:
    """(generator JSON, discriminator .h5, discriminator JSON) beside a ``gen/gen_<N>.h5`` of the official
    train.py, where they exist; Nones for any other file."""
    found = _CHECKPOINT.fullmatch(generator_h5.name)
    if not found or generator_h5.parent.name != "gen":
        return None, None, None
    dis = generator_h5.parent.parent / "dis"

    candidates = (generator_h5.with_name("gen.json"), dis / f"dis_{found[1]}.h5", dis / "dis.json")
    gen_json, d_h5, d_json = (path if path.is_file() else None for path in candidates)
    return gen_json, d_h5, d_json


def convert_official(
    generator_h5: str | Path,
    out_dir: str | Path,
    arcface_h5: str | Path | None = None,
    discriminator_h5: str | Path | None = None,
    model_json: str | Path | None = None,
) -> Path:
    """Convert an official generator (and its ArcFace and discriminator) into the model directory ``out_dir``.

    ``model_json`` is the architecture of a weights-only generator checkpoint (``gen.json``); in the official
    checkpoint layout it, the discriminator and its JSON are found on their own.
    """
    generator_h5, out = Path(generator_h5), Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputError(f"{out} exists; convert into a new directory")
    gen_json, found_d, found_d_json = official_checkpoint(generator_h5)
    generator = load_keras_generator(generator_h5, model_json or gen_json)
    config = generator.config

    encoder = None
    if arcface_h5 is not None:
        encoder = as_role(
            "identity encoder", read_keras(arcface_h5), partial(KerasResNet.from_graph, source=arcface_h5)
        )
        if encoder.embedding_dim != config.identity_dim:
            raise ConversionError(
                f"{Path(arcface_h5).name} gives {encoder.embedding_dim}-d identities but {generator_h5.name} "
                f"takes {config.identity_dim}-d: they were not trained together"
            )
    elif config.identity_dim != EMBEDDING_DIMS[ENCODER]:
        raise ConversionError(
            f"{generator_h5.name} takes {config.identity_dim}-d identities, not ArcFace-Res50's "
            f"{EMBEDDING_DIMS[ENCODER]}: give the encoder it was trained with (--arcface)"
        )

    discriminator, d_path = None, Path(discriminator_h5) if discriminator_h5 is not None else found_d
    if d_path is not None:
        d_json = found_d_json if discriminator_h5 is None else None
        discriminator = load_keras_discriminator(d_path, d_json)
        if discriminator.config.image_size != config.image_size:
            raise ConversionError(
                f"{d_path.name} judges {discriminator.config.image_size} px images, "
                f"{generator_h5.name} makes {config.image_size} px ones"
            )

    sources = {"generator": generator_h5, "identity encoder": arcface_h5, "discriminator": d_path}
    files = {role: _describe(Path(p)) for role, p in sources.items() if p is not None}
    meta = {"identity_encoder": ENCODER, "name": generator_h5.stem, "source": files, "licence": LICENCE}
    with atomic_dir(out) as staging:
        generator.save_pretrained(staging, meta=meta)
        if encoder is not None:
            encoder.save(staging / ENCODER_DIR)
        if discriminator is not None:
            discriminator.save_pretrained(staging / DISCRIMINATOR_DIR, meta=meta)
        card = _card(generator, encoder, discriminator, files, out.name)
        (staging / CARD_NAME).write_text(card, encoding="utf-8")
    return out


def _describe(path: Path) -> dict:
    return {"file": path.name, "bytes": path.stat().st_size, "sha256": sha256_of(path)}


def _card(
    generator: Generator, encoder: KerasResNet | None, discriminator: Discriminator | None, files: dict, out: str
) -> str:
    cfg = generator.config
    stages = ", ".join(f"{r} px: {kind}" for r, kind in zip(cfg.stage_resolutions, cfg.stage_fusions, strict=True))
    lines = [
        f"# {files['generator']['file']}: an official FaceDancer model, converted",
        "",
        "The FaceDancer authors' Keras weights (Rosberg, Aksoy, Alonso-Fernandez, Englund, WACV 2023), converted "
        "to facedancer's PyTorch networks by `facedancer convert-official` (without TensorFlow; layers matched by "
        "structure, every weight checked for shape).",
        "",
        "## Licence",
        "",
        f"The weights are the authors' and keep their licence, {LICENCE} ({LICENCE_URL}): attribution, "
        "**non-commercial use only**, and adaptations (this conversion, and models fine-tuned from it) may only be "
        "shared under the same licence. The facedancer code is MIT; that does not extend to these weights.",
        "",
        "## Source files",
        "",
        *(f"- {role}: `{f['file']}`, {f['bytes']:,} bytes, sha256 {f['sha256']}" for role, f in files.items()),
        "",
        "## Read from the files",
        "",
        f"- generator: {cfg.image_size} px, {parameter_count(generator):,} parameters; "
        f"identity {cfg.identity_dim}-d; mapping depth {cfg.mapping_depth}, width {cfg.mapping_width}; "
        f"channels {cfg.base_channels}..{cfg.max_channels}",
        f"- fusion per decoder stage (by the resolution it fuses at): {stages}",
        f"- identity encoder: {ENCODER}"
        + (
            f" ({ENCODER_DIR}/: {encoder.embedding_dim}-d, blocks {list(encoder.config.blocks)}, "
            f"widths {list(encoder.config.filters)}, {parameter_count(encoder):,} parameters)"
            if encoder is not None
            else f" (not converted here: `facedancer models add {ENCODER} --file ArcFace-Res50.h5`)"
        ),
    ]
    if discriminator is not None:
        lines.append(f"- discriminator ({DISCRIMINATOR_DIR}/): {parameter_count(discriminator):,} parameters")
    lines += [
        "",
        "## Use",
        "",
        f"    facedancer swap -s SOURCE -t TARGET -o OUT --model {out}",
        f"    facedancer train PRESET --init {out} --set data.root=DATA",
        "",
        "to fine-tune it, with a preset of the same generator (`facedancer-official` for the released 256 px "
        "models; the run starts from these weights with a new optimiser).",
        "",
        "Every image or video made with it is labelled as synthetic media (`facedancer inspect`).",
        "",
    ]
    return "\n".join(lines)
