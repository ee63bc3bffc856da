"""Golden swaps: real photos and clips through the whole CLI, pinned to the pixel.

Restructuring the code (issue 11) must not change a single output pixel. Each case's decoded output is hashed
and compared with the hash recorded on a machine with the same fingerprint (CPU instruction sets and the
versions of every library that computes pixels: float round-off differs between AVX2 and AVX-512 kernels and
between releases). On a machine whose fingerprint was never recorded the hash cannot be expected to match,
so the case checks the recorded coarse statistics instead (per-channel means within half a grey level, the
share of pixels moved by more than 8 levels within 0.5 points), which still catches any real change in what is swapped.

Record this machine's hashes (after checking that a change *should* move pixels) with
``FACEDANCER_RECORD_GOLDEN=1 pytest tests/swap/test_golden.py -n 0``.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path

import numpy as np
import pytest
import torch

from support import SMALL_AFFA_GENERATOR

GOLDEN = Path(__file__).with_name("golden.json")
RECORD = os.environ.get("FACEDANCER_RECORD_GOLDEN") == "1"
#: instruction sets that change which float kernels torch, OpenCV and OpenVINO run
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile", "avx512_vnni")

SOURCE = "lfw/Aaron_Peirsol/Aaron_Peirsol_0001.jpg"
CASES: dict[str, tuple[str, list[str]]] = {
    # name: (target under data/, extra CLI options); every case swaps SOURCE into the target
    "photo-classical": ("lfw/Adrien_Brody/Adrien_Brody_0001.jpg", ["--model", "classical"]),
    "photo-classical-official-blend": (
        "lfw/Colin_Powell/Colin_Powell_0001.jpg",
        ["--model", "classical", "--blend", "rect-image", "--no-colour"],
    ),
    "photo-generator": ("lfw/Adrien_Brody/Adrien_Brody_0001.jpg", ["--model", "{generator}"]),
    "photo-generator-poisson": (
        "aflw2000/image00002.jpg",
        ["--model", "{generator}", "--poisson", "--detector", "retinaface"],
    ),
    "clip-classical": ("{clip}", ["--model", "classical"]),
    "clip-generator-largest": ("{clip}", ["--model", "{generator}", "--faces", "largest"]),
    "several-faces-classical": ("videos/ghost/dirtydancing.mp4", ["--model", "classical", "--max-frames", "6"]),
}


def fingerprint() -> str:
    import av
    import cv2
    import PIL

    flags = set()
    if Path("/proc/cpuinfo").is_file():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    isa = "+".join(f for f in ISA_FLAGS if f in flags) or "none"
    return (
        f"{platform.machine()} {isa} torch {torch.__version__} opencv {cv2.__version__} numpy {np.__version__} "
        f"pillow {PIL.__version__} av {av.__version__} ffmpeg {av.library_versions['libavcodec']}"
    )


@pytest.fixture(scope="module")
def generator(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 256 px AFFA generator whose weights come from one seeded stream per tensor name, so the model does not
    depend on the order in which modules are built (a refactor may reorder them; the weights stay)."""
    from facedancer.nn import Generator, GeneratorConfig

    cfg = GeneratorConfig(**SMALL_AFFA_GENERATOR)
    model = Generator(cfg)
    state = {}
    for name, value in sorted(model.state_dict().items()):
        seed = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
        fan_in = max(value[0].numel(), 1) if value.ndim > 1 else 1
        scale = (1.0 / fan_in) ** 0.5 if value.ndim > 1 else 0.1
        noise = np.random.default_rng(seed).standard_normal(tuple(value.shape)) * scale
        state[name] = torch.from_numpy(noise.astype(np.float32)) + (1.0 if name.endswith("norm.weight") else 0.0)
    model.load_state_dict(state)
    path = tmp_path_factory.mktemp("golden") / "golden-generator"
    model.save_pretrained(path, meta={"identity_encoder": "sface"})
    return path


def _decoded(path: Path) -> np.ndarray:
    from facedancer.io import VideoReader, media_kind, read_image

    if media_kind(path) == "image":
        return read_image(path)
    with VideoReader(path) as reader:
        return np.stack(list(reader))


def _stats(pixels: np.ndarray, target: np.ndarray) -> dict[str, object]:
    # more than 8 levels: a swapped pixel, not the video codec's re-encoding of an untouched one
    moved = np.abs(pixels.astype(np.int16) - target) > 8 if pixels.shape == target.shape else np.ones(1, bool)
    changed = moved.any(axis=-1).mean()
    return {
        "means": [round(float(m), 3) for m in pixels.reshape(-1, 3).mean(axis=0)],
        "changed": round(float(changed), 5),
    }


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_swap(case, run, shared, generator, small_clip, tmp_path, one_thread):
    target_spec, options = CASES[case]
    target = small_clip if target_spec == "{clip}" else shared / "data" / target_spec
    options = [str(generator) if o == "{generator}" else o for o in options]
    if "{generator}" in CASES[case][1]:
        options += ["--backend", "eager", "--precision", "fp32"]  # what torch computes, not a runtime's choice
    if "retinaface" in options:
        from facedancer import assets

        assets.add("retinaface-mnet025", shared / "weights" / "retinaface_mnet025" / "mobilenet0.25_Final.pth")
    out = tmp_path / f"out{'.png' if target.suffix.lower() in ('.jpg', '.png') else '.mp4'}"
    code, _, err = run("swap", "-s", shared / "data" / SOURCE, "-t", target, "-o", out, *options)
    assert code == 0, err
    pixels = _decoded(out)
    digest = hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()
    reference = _decoded(target)[: len(pixels)] if pixels.ndim == 4 else _decoded(target)
    stats = _stats(pixels, reference)

    golden = json.loads(GOLDEN.read_text()) if GOLDEN.is_file() else {"stats": {}, "sha256": {}}
    machine = fingerprint()
    if RECORD:
        golden["sha256"].setdefault(machine, {})[case] = digest
        golden["stats"][case] = stats
        GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")
        return
    assert case in golden["stats"], f"no golden output for {case}: record it (see the module docstring)"
    recorded = golden["sha256"].get(machine, {}).get(case)
    if recorded is not None:
        assert digest == recorded, f"{case}: the output pixels changed on this machine ({machine})"
        return
    # a machine never recorded: the same swap, within what round-off can move
    want = golden["stats"][case]
    assert np.abs(np.subtract(stats["means"], want["means"])).max() <= 0.5, (stats, want)
    assert abs(stats["changed"] - want["changed"]) <= 0.005, (stats, want)
