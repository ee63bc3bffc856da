"""Turn a trained generator into a model directory fit to ship: fp16 weights and a model card.

A training checkpoint's ``generator/`` holds fp32 weights (twice the size a user needs) and no account of
where it came from. A shipped model is what ``facedancer swap`` loads by name from
``facedancer/weights/<name>/`` or from any path, so it has to say what it is: the card is the user's own
text (data, steps, hardware, metrics, licence) followed by facts read off the files themselves, so the
numbers in it cannot drift from the weights beside it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from facedancer.assets.store import sha256_of
from facedancer.atomic import atomic_dir
from facedancer.errors import CheckpointError, OutputError
from facedancer.identity import ENCODER_DIR
from facedancer.nn import Generator, parameter_count
from facedancer.nn.pretrained import CONFIG_NAME, WEIGHTS_NAME, read_meta

CARD_NAME = "README.md"


def bundle_model(generator_dir: str | Path, out_dir: str | Path, card: str = "") -> Path:
    """Write ``out_dir`` (config.json, fp16 model.safetensors, README.md) from a trained generator.

    ``out_dir`` must not exist yet: a model is replaced by a new directory, never partly overwritten;
    the directory appears complete or not at all.
    """
    source, out = Path(generator_dir), Path(out_dir)
    if out.exists():
        raise OutputError(f"{out} exists; bundle into a new directory")
    generator = Generator.from_pretrained(source)
    meta = read_meta(source)
    if "identity_encoder" not in meta:
        raise CheckpointError(f"{source}/{CONFIG_NAME} does not name its identity encoder (meta.identity_encoder)")
    with atomic_dir(out) as staging:
        generator.save_pretrained(staging, dtype=torch.float16, meta=meta)
        if (source / ENCODER_DIR).is_dir():  # a converted model's own identity encoder goes with it
            shutil.copytree(source / ENCODER_DIR, staging / ENCODER_DIR)
        (staging / CARD_NAME).write_text(_card(generator, meta, staging / WEIGHTS_NAME, card), encoding="utf-8")
    return out


def _card(generator: Generator, meta: dict, weights: Path, text: str) -> str:
    cfg = generator.config
    digest = sha256_of(weights)
    facts = [
        f"- preset: {meta.get('preset', 'unknown')}, training step {meta.get('step', 'unknown')}",
        f"- generator parameters: {parameter_count(generator):,} ({cfg.image_size} px, "
        f"fusion {', '.join(f'{res}: {kind}' for res, kind in sorted(cfg.fusion.items()))})",
        f"- identity encoder: {meta['identity_encoder']} ({cfg.identity_dim}-d)",
        f"- weights: {WEIGHTS_NAME}, float16, {weights.stat().st_size:,} bytes, sha256 {digest}",
        *(
            [f"- licence of the weights it started from ({meta.get('init', 'converted')}): {meta['licence']}"]
            if "licence" in meta
            else []
        ),
        "- every image or video made with it is labelled as synthetic media (`facedancer inspect`)",
    ]
    body = text.strip() or "# FaceDancer model\n\n(No description was given when this model was bundled.)"
    return f"{body}\n\n## Facts (written by `facedancer models bundle`)\n\n" + "\n".join(facts) + "\n"
