"""How much bf16 changes a swap, on real faces: PSNR of the pasted-back face and SFace identity cosine vs fp32.

    python benchmarks/bench_bf16_fidelity.py                        # 24 LFW pairs, paper-width generator
    python benchmarks/bench_bf16_fidelity.py --pairs 100 --paths openvino-bf16 eager-bf16

``--precision auto`` takes bf16 only where this loss is invisible (PSNR >= 40 dB, BF16_MIN_PSNR). Each
LFW pair (a photo of person A as the source, of person B as the target) is swapped by the same pipeline
twice, in fp32 (torch eager, the reference) and in bf16 on each path; reported per path, over the pairs:

* face PSNR: over the pixels the fp32 swap changed (the pasted-back face and its feathered edge), in dB;
* crop PSNR: the generator's 256 px output itself, before blending ([-1, 1] clipped, as the auto check);
* identity: cosine between SFace embeddings of the bf16 and the fp32 result, and the change bf16 makes
  to the result's cosine to the source (the number identity metrics report).

No trained FaceDancer exists yet: the generator has random weights at the ``facedancer-sface`` preset's
size (the paper's widths, SFace identity). bf16 rounding compounds through the same layers whatever the
weights, but a trained model's activations differ in scale, so rerun this with a trained model (``--model
DIR``) before relying on the margin. A model converted from the official Keras fixtures would be a 64 px toy.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from _common import SHARED
from facedancer.faces import YuNetDetector
from facedancer.faces.align import align
from facedancer.identity import from_uint8
from facedancer.io import read_image
from facedancer.nn import Generator
from facedancer.presets import load_preset
from facedancer.swap import FaceMatcher, FaceSwapper
from facedancer.swap.backends import BF16_MIN_PSNR, installed, psnr

PATHS = {"openvino-bf16": ("openvino", "bf16"), "eager-bf16": ("eager", "bf16"), "compile-bf16": ("compile", "bf16")}


def lfw_pairs(root: Path, count: int) -> list[tuple[Path, Path]]:
    """(source, target): the first photo of consecutive people, so every pair is two different people."""
    people = sorted(p for p in root.iterdir() if p.is_dir())
    firsts = [min(p.glob("*.jpg")) for p in people[: 2 * count]]
    return list(zip(firsts[0::2], firsts[1::2], strict=True))


def image_psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=24)
    parser.add_argument("--paths", nargs="+", choices=list(PATHS), default=["openvino-bf16", "eager-bf16"])
    parser.add_argument("--model", default=None, help="a model directory (default: facedancer-sface, random)")
    args = parser.parse_args()

    console = Console(width=150)
    detector, matcher = YuNetDetector(), FaceMatcher()

    def identity(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """The unit SFace embedding of the one face at ``landmarks`` (5, 2)."""
        return matcher.embed(image, landmarks[None])[0]

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            torch.manual_seed(0)
            preset = load_preset("facedancer-sface")
            model = Path(tmp) / "facedancer-sface-random"
            Generator(preset.generator).save_pretrained(model, meta={"identity_encoder": preset.identity.encoder})
        reference = FaceSwapper.from_pretrained(model, backend="eager", precision="fp32")
        paths = {n: p for n, p in PATHS.items() if n in args.paths and (p[0] != "openvino" or installed("openvino"))}
        swappers = {n: FaceSwapper.from_pretrained(model, backend=b, precision=p) for n, (b, p) in paths.items()}
        rows: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in swappers}
        for source_path, target_path in lfw_pairs(SHARED / "data" / "lfw", args.pairs):
            source, target = read_image(source_path), read_image(target_path)
            prepared = reference.source(source)
            want = reference.swap_image(prepared, target)
            face = np.any(want != target, axis=2)
            # the swapped photos are embedded at the target's face (a random-init face may not be detected)
            at_source, at_target = (detector.detect(image).landmarks[0] for image in (source, target))
            z_source, z_want = identity(source, at_source), identity(want, at_target)
            crop = from_uint8(align(target, at_target, reference.swapper.crop_size)[0])
            z = torch.as_tensor(prepared.state)[None].float()
            want_crop = reference.swapper.runner(crop * 2 - 1, z)
            for name, swapper in swappers.items():
                got = swapper.swap_image(prepared, target)
                z_got = identity(got, at_target)
                rows[name].append(
                    (
                        image_psnr(want[face], got[face]),
                        psnr(want_crop, swapper.swapper.runner(crop * 2 - 1, z)),
                        float(z_got @ z_want),
                        float(z_got @ z_source - z_want @ z_source),
                    )
                )
            console.log(f"{source_path.parent.name} -> {target_path.parent.name}: {face.sum()} face pixels")

    what = "random-init facedancer-sface" if args.model is None else args.model
    table = Table(title=f"bf16 vs fp32 on {args.pairs} LFW pairs, {what}; auto keeps bf16 at >= {BF16_MIN_PSNR:.0f} dB")
    for col in (
        "path",
        "face PSNR dB median",
        "min",
        "crop PSNR dB median",
        "min",
        "cos(bf16, fp32) mean",
        "min",
        "Δ cos to source mean",
        "max |Δ|",
    ):
        table.add_column(col, justify="left" if col == "path" else "right")
    for name, values in rows.items():
        face_db, crop_db, cos, delta = (list(v) for v in zip(*values, strict=True))
        table.add_row(
            name,
            f"{statistics.median(face_db):.1f}",
            f"{min(face_db):.1f}",
            f"{statistics.median(crop_db):.1f}",
            f"{min(crop_db):.1f}",
            f"{statistics.mean(cos):.4f}",
            f"{min(cos):.4f}",
            f"{statistics.mean(delta):+.4f}",
            f"{max(abs(d) for d in delta):.4f}",
        )
    console.print(table)


if __name__ == "__main__":
    main()
