"""Hostile inputs against ``swap``, ``inspect``, ``describe``, ``export`` and ``eval`` (issue 15).

Every case builds its inputs at run time (from the photos and videos in ../shared/data and synthetic bytes),
runs the CLI in-process and asserts: the exit code, exactly one line on stderr and no traceback, no file
created, changed or left half-written anywhere in the workspace, and every input byte-identical afterwards.
Cases that need a subprocess (signals) are at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from support import HostileCase as Case
from support import one_line, png_with_size, snapshot

REPO = Path(__file__).resolve().parents[2]
SOURCE = "Aaron_Peirsol/Aaron_Peirsol_0001.jpg"
TARGET = "Adrien_Brody/Adrien_Brody_0001.jpg"


class Workspace:
    """Where a case builds its inputs (``in/``) and where outputs would go (``out/`` and beside the inputs)."""

    def __init__(self, root: Path, lfw: Path, clip: Path) -> None:
        self.root, self.lfw, self._clip = root, lfw, clip
        self.inp = root / "in"
        self.inp.mkdir(parents=True)
        self.out = root / "out"

    def copy(self, src: Path, name: str) -> Path:
        path = self.inp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(src.read_bytes())
        return path

    def source(self, name: str = "src.jpg") -> Path:
        return self.copy(self.lfw / SOURCE, name)

    def target(self, name: str = "tgt.jpg") -> Path:
        return self.copy(self.lfw / TARGET, name)

    def clip(self, name: str = "clip.mp4") -> Path:
        return self.copy(self._clip, name)

    def file(self, name: str, data: bytes | str) -> Path:
        path = self.inp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path

    def image(self, name: str, size: tuple[int, int], value: int = 128) -> Path:
        path = self.inp / name
        Image.new("RGB", size, (value, value // 2 + 20, 255 - value)).save(path)
        return path

    def swap(self, *extra, s: object = None, t: object = None, o: object = None, model: str = "classical") -> list:
        s = self.source() if s is None else s
        t = self.target() if t is None else t
        o = self.out / "o.png" if o is None else o
        return ["swap", "-s", s, "-t", t, "-o", o, "--model", model, *extra]


def _subfolder(ws: Workspace) -> Path:
    (ws.inp / "sub").mkdir()
    return ws.inp / "sub"


def _fifo(ws: Workspace, name: str) -> Path:
    path = ws.inp / name
    os.mkfifo(path)
    return path


def _symlink(ws: Workspace, name: str, to: Path) -> Path:
    link = ws.inp / name
    link.symlink_to(to)
    return link


def _tiny_model(ws: Workspace, name: str = "model") -> Path:
    from facedancer.nn import Generator, GeneratorConfig

    path = ws.inp / name
    Generator(
        GeneratorConfig(
            image_size=64, base_channels=8, max_channels=16, mapping_width=16, identity_dim=16, fusion={64: "concat"}
        )
    ).save_pretrained(path)
    return path


def _lfw_folders(ws: Workspace, people: int = 3) -> Path:
    """A tiny identity-folder dataset (LFW layout): four photos of each of a few people."""
    root = ws.inp / "people"
    names = sorted(p for p in ws.lfw.iterdir() if p.is_dir() and len(list(p.glob("*.jpg"))) >= 4)[:people]
    for person in names:
        for photo in sorted(person.glob("*.jpg"))[:4]:
            ws.copy(photo, f"people/{person.name}/{photo.name}")
    return root


def _under_file(ws: Workspace) -> list:
    blocker = ws.file("blocker", "x")
    return ws.swap(o=blocker / "o.png")


def _deep_under_file(ws: Workspace) -> list:
    blocker = ws.file("blocker", "x")
    return ws.swap(o=blocker / "a" / "b" / "o.png")


def _out_is_dir(ws: Workspace) -> list:
    (ws.out / "o.png").mkdir(parents=True)
    return ws.swap()


def _folder_into_itself(ws: Workspace) -> list:
    ws.target("album/a.jpg")
    return ws.swap(t=ws.inp / "album", o=ws.inp / "album")


def _folder_into_a_subfolder(ws: Workspace) -> list:
    ws.target("album/a.jpg")
    return ws.swap(t=ws.inp / "album", o=ws.inp / "album" / "swapped")


def _folder_through_a_link(ws: Workspace) -> list:
    ws.target("album/a.jpg")
    return ws.swap(t=ws.inp / "album", o=_symlink(ws, "alias", ws.inp / "album"))


def _folder_over_the_source(ws: Workspace) -> list:
    """The folder's output for ``album/src.jpg`` would be ``-s`` itself."""
    ws.target("album/src.jpg")
    source = ws.source("out/src.jpg")
    return ws.swap(s=source, t=ws.inp / "album", o=ws.inp / "out")


def _empty_folder(ws: Workspace) -> list:
    (ws.inp / "empty").mkdir()
    return ws.swap(t=ws.inp / "empty", o=ws.out)


def _hard_link(ws: Workspace) -> list:
    target = ws.target()
    os.link(target, ws.inp / "hard.jpg")
    return ws.swap(t=target, o=ws.inp / "hard.jpg")


def _target_link_output_real(ws: Workspace) -> list:
    real = ws.target("real.jpg")
    return ws.swap(t=_symlink(ws, "link.jpg", real), o=real)


def _animated_webp(ws: Workspace, name: str = "anim.webp", frames: int = 6) -> Path:
    from PIL import Image

    still = Image.open(ws.lfw / TARGET).convert("RGB")
    images = [still.rotate(i) for i in range(frames)]
    path = ws.inp / name
    images[0].save(path, save_all=True, append_images=images[1:], duration=80, loop=0)
    return path


def _model_dir_with(ws: Workspace, config: str | bytes) -> Path:
    path = _tiny_model(ws)
    (path / "config.json").write_bytes(config.encode() if isinstance(config, str) else config)
    return path


def _truncated_weights(ws: Workspace) -> Path:
    path = _tiny_model(ws)
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    return path


def _yaml(ws: Workspace, text: str, name: str = "preset.yaml") -> Path:
    return ws.file(name, text)


def _eval(ws: Workspace, *extra, protocol: str = "folders", data: object = None) -> list:
    data = _lfw_folders(ws) if data is None else data
    return ["eval", protocol, data, "-o", ws.out, *extra]


SWAP_CASES = [
    # --- defect 1: outputs that are inputs -------------------------------------------------------------
    Case("output-is-target", lambda ws: ws.swap(t=ws.target(), o=ws.inp / "tgt.jpg"), says="overwrite"),
    Case("output-is-source", lambda ws: ws.swap(s=ws.source(), o=ws.inp / "src.jpg"), says="overwrite"),
    Case("output-is-target-dotted", lambda ws: ws.swap(t=ws.target(), o=ws.inp / "." / "tgt.jpg"), says="overwrite"),
    Case("output-is-target-dotdot", lambda ws: ws.swap(t=ws.target(), o=_subfolder(ws) / ".." / "tgt.jpg")),
    Case("output-links-to-target", lambda ws: ws.swap(t=ws.target(), o=_symlink(ws, "l.jpg", ws.inp / "tgt.jpg"))),
    Case("target-link-output-real", _target_link_output_real, says="overwrite"),
    Case("output-hard-link-of-target", _hard_link, says="overwrite"),
    Case(
        "output-is-reference",
        lambda ws: ws.swap("--faces", ws.target("ref.jpg"), o=ws.inp / "ref.jpg"),
        says="overwrite",
    ),
    Case(
        "output-is-pair-source",
        lambda ws: [
            "swap",
            "--pair",
            f"{ws.source()}={ws.target('ref.jpg')}",
            "-t",
            ws.target(),
            "-o",
            ws.inp / "src.jpg",
            "--model",
            "classical",
        ],
        says="overwrite",
    ),
    Case("folder-into-itself", _folder_into_itself, says="inside"),
    Case("folder-into-a-subfolder", _folder_into_a_subfolder, says="inside"),
    Case("folder-through-a-link", _folder_through_a_link, says="inside"),
    Case("folder-over-the-source", _folder_over_the_source, says="overwrite"),
    Case("folder-into-a-file", lambda ws: ws.swap(t=ws.target("album/a.jpg").parent, o=ws.file("f.png", "x"))),
    # --- defect 2: numbers and devices ------------------------------------------------------------------
    Case("device-foo", lambda ws: ws.swap("--device", "foo"), says="--device"),
    Case("device-empty", lambda ws: ws.swap("--device", ""), says="--device"),
    Case("device-cuda-negative", lambda ws: ws.swap("--device", "cuda:-1"), says="--device"),
    Case("device-cuda-99", lambda ws: ws.swap("--device", "cuda:99"), says="--device"),  # fails with a GPU too
    Case("device-cpu-index", lambda ws: ws.swap("--device", "cpu:x"), says="--device"),
    Case("device-mps", lambda ws: ws.swap("--device", "mps"), says="--device"),
    Case("batch-size-zero", lambda ws: ws.swap("--batch-size", "0"), says="--batch-size"),
    Case("batch-size-negative", lambda ws: ws.swap("--batch-size", "-5"), says="--batch-size"),
    Case("batch-size-text", lambda ws: ws.swap("--batch-size", "many"), says="--batch-size"),
    Case("batch-size-float", lambda ws: ws.swap("--batch-size", "1.5"), says="--batch-size"),
    Case("max-frames-zero", lambda ws: ws.swap("--max-frames", "0", t=ws.clip(), o=ws.out / "o.mp4")),
    Case("max-frames-negative", lambda ws: ws.swap("--max-frames", "-1", t=ws.clip(), o=ws.out / "o.mp4")),
    Case("max-frames-on-a-photo", lambda ws: ws.swap("--max-frames", "5"), says="--max-frames"),
    Case("threshold-nan", lambda ws: ws.swap("--threshold", "nan"), says="--threshold"),
    Case("threshold-inf", lambda ws: ws.swap("--threshold", "inf"), says="--threshold"),
    Case("threshold-minus-inf", lambda ws: ws.swap("--threshold", "-inf"), says="--threshold"),
    Case("threshold-above-one", lambda ws: ws.swap("--threshold", "1.5"), says="--threshold"),
    Case("threshold-below-minus-one", lambda ws: ws.swap("--threshold", "-2"), says="--threshold"),
    Case("threshold-text", lambda ws: ws.swap("--threshold", "high"), says="--threshold"),
    Case("faces-beyond-the-faces", lambda ws: ws.swap("--faces", "3"), code=1, says="1 face"),
    Case("faces-negative", lambda ws: ws.swap("--faces", "-1"), says="--faces"),
    Case("faces-empty", lambda ws: ws.swap("--faces", ""), says="--faces"),
    Case("faces-missing-reference", lambda ws: ws.swap("--faces", ws.inp / "nobody.jpg"), says="--faces"),
    Case(
        "faces-reference-without-a-face",
        lambda ws: ws.swap("--faces", ws.image("wall.png", (200, 200))),
        says="no face found in the reference",
    ),
    Case("faces-reference-is-text", lambda ws: ws.swap("--faces", ws.file("ref.jpg", "not a photo")), says="ref.jpg"),
    # --- models, precision, detector, blend ------------------------------------------------------------------
    Case("model-unknown", lambda ws: ws.swap(model="no-such-model"), says="unknown model"),
    Case("model-empty", lambda ws: ws.swap(model=""), says="model"),
    Case("model-folder-without-config", lambda ws: ws.swap(model=str(ws.inp)), says="config.json"),
    Case("model-is-a-file", lambda ws: ws.swap(model=str(ws.file("m.safetensors", b"\0" * 64))), says="model"),
    Case("model-config-garbage", lambda ws: ws.swap(model=str(_model_dir_with(ws, b"\xff\xfe{"))), says="config"),
    Case("model-weights-truncated", lambda ws: ws.swap(model=str(_truncated_weights(ws))), says="model.safetensors"),
    Case("precision-fp8", lambda ws: ws.swap("--precision", "fp8"), says="--precision"),
    Case("detector-unknown", lambda ws: ws.swap("--detector", "haar"), says="--detector"),
    Case("detector-weights-missing", lambda ws: ws.swap("--detector", "retinaface"), says="retinaface"),
    Case("blend-unknown", lambda ws: ws.swap("--blend", "alpha"), says="--blend"),
    Case("unknown-option", lambda ws: ws.swap("--fast"), says="--fast"),
    Case("missing-target", lambda ws: ["swap", "-s", ws.source(), "-o", ws.out / "o.png"], says="--target"),
    Case("missing-output", lambda ws: ["swap", "-s", ws.source(), "-t", ws.target()], says="--output"),
    Case("missing-source", lambda ws: ["swap", "-t", ws.target(), "-o", ws.out / "o.png"], says="-s/--source"),
    # --- sources ------------------------------------------------------------------------------------
    Case("source-missing", lambda ws: ws.swap(s=ws.inp / "nobody.jpg"), says="nobody.jpg"),
    Case("source-is-a-folder", lambda ws: ws.swap(s=ws.inp), says="folder"),
    Case("source-empty-file", lambda ws: ws.swap(s=ws.file("s.jpg", b"")), says="empty"),
    Case("source-text-as-jpg", lambda ws: ws.swap(s=ws.file("s.jpg", "hello")), says="s.jpg"),
    Case("source-one-pixel", lambda ws: ws.swap(s=ws.image("dot.png", (1, 1), 200)), says="no face"),
    Case("source-tiny", lambda ws: ws.swap(s=ws.image("tiny.png", (8, 5), 90)), says="no face"),
    Case("source-zero-size", lambda ws: ws.swap(s=ws.file("zero.png", png_with_size(0, 0))), says="zero.png"),
    Case("source-bomb", lambda ws: ws.swap(s=ws.file("bomb.png", png_with_size(60_000, 60_000))), says="bomb.png"),
    Case("source-huge-width", lambda ws: ws.swap(s=ws.file("wide.png", png_with_size(2**31 - 1, 1))), says="wide"),
    Case(
        "source-truncated-jpeg",
        lambda ws: ws.swap(s=ws.file("cut.jpg", (ws.lfw / SOURCE).read_bytes()[:3000])),
        says="cut.jpg",
    ),
    Case("source-no-face", lambda ws: ws.swap(s=ws.image("wall.png", (300, 300))), says="no face found"),
    Case("source-is-a-video", lambda ws: ws.swap(s=ws.clip()), says="clip.mp4"),
    Case("source-fifo", lambda ws: ws.swap(s=_fifo(ws, "pipe.jpg")), says="pipe.jpg"),
    Case("source-link-loop", lambda ws: ws.swap(s=_symlink(ws, "loop.jpg", ws.inp / "loop.jpg")), says="loop.jpg"),
    Case("source-dangling-link", lambda ws: ws.swap(s=_symlink(ws, "gone.jpg", ws.inp / "x.jpg")), says="gone.jpg"),
    Case("source-name-with-newline", lambda ws: ws.swap(s=ws.file("a\nb.jpg", "text")), says="b.jpg"),
    Case("pair-without-equals", lambda ws: ["swap", "--pair", ws.source(), "-t", ws.target(), "-o", ws.out / "o.png"]),
    Case(
        "pair-empty-side", lambda ws: ["swap", "--pair", f"{ws.source()}=", "-t", ws.target(), "-o", ws.out / "o.png"]
    ),
    Case(
        "pair-and-source",
        lambda ws: ws.swap("--pair", f"{ws.source('b.jpg')}={ws.target('r.jpg')}"),
        says="not both",
    ),
    Case("two-sources-no-pair", lambda ws: ws.swap("-s", ws.source("b.jpg")), says="--pair"),
    # --- targets ------------------------------------------------------------------------------------
    Case("target-missing", lambda ws: ws.swap(t=ws.inp / "none.jpg"), says="none.jpg"),
    Case("target-empty-file", lambda ws: ws.swap(t=ws.file("t.jpg", b"")), says="empty"),
    Case("target-text-as-jpg", lambda ws: ws.swap(t=ws.file("t.jpg", "hello")), says="t.jpg"),
    Case("target-text-as-png", lambda ws: ws.swap(t=ws.file("t.png", "hello")), says="t.png"),
    Case("target-unsupported-suffix", lambda ws: ws.swap(t=ws.file("t.txt", "hello")), says="t.txt"),
    Case("target-no-suffix", lambda ws: ws.swap(t=ws.copy(ws.lfw / TARGET, "photo")), says="photo"),
    Case("target-zero-size", lambda ws: ws.swap(t=ws.file("z.png", png_with_size(0, 5))), says="z.png"),
    Case("target-bomb", lambda ws: ws.swap(t=ws.file("b.png", png_with_size(50_000, 50_000))), says="b.png"),
    Case(
        "target-truncated-jpeg",
        lambda ws: ws.swap(t=ws.file("t.jpg", (ws.lfw / TARGET).read_bytes()[:2500])),
        says="t.jpg",
    ),
    Case("target-one-pixel", lambda ws: ws.swap(t=ws.image("dot.png", (1, 1))), code=1, says="no face"),
    Case("target-without-a-face", lambda ws: ws.swap(t=ws.image("wall.png", (320, 240))), code=1, says="no face"),
    Case("target-fifo", lambda ws: ws.swap(t=_fifo(ws, "pipe.png")), says="pipe.png"),
    Case("target-link-loop", lambda ws: ws.swap(t=_symlink(ws, "loop.png", ws.inp / "loop.png")), says="loop.png"),
    Case("target-empty-folder", _empty_folder, says="empty"),
    Case("target-video-empty", lambda ws: ws.swap(t=ws.file("v.mp4", b""), o=ws.out / "o.mp4"), says="empty"),
    Case("target-video-garbage", lambda ws: ws.swap(t=ws.file("v.mp4", os.urandom(5000)), o=ws.out / "o.mp4")),
    Case(
        "target-video-truncated",
        lambda ws: ws.swap(t=ws.file("v.mp4", ws.clip().read_bytes()[:4000]), o=ws.out / "o.mp4"),
        says="v.mp4",
    ),
    Case("target-photo-named-mp4", lambda ws: ws.swap(t=ws.copy(ws.lfw / TARGET, "v.mp4"), o=ws.out / "o.mp4")),
    Case("target-video-named-jpg", lambda ws: ws.swap(t=ws.copy(ws._clip, "v.jpg")), says="v.jpg"),
    Case(
        "video-faces-beyond-the-faces",
        lambda ws: ws.swap("--faces", "4", t=ws.clip(), o=ws.out / "o.mp4"),
        code=1,
        says="face",
    ),
    Case("animated-webp-to-png", lambda ws: ws.swap(t=_animated_webp(ws), o=ws.out / "o.png"), says="video output"),
    # --- outputs ------------------------------------------------------------------------------------
    Case("output-wrong-kind", lambda ws: ws.swap(o=ws.out / "o.mp4"), says="an image output"),
    Case("output-unsupported-suffix", lambda ws: ws.swap(o=ws.out / "o.bmp"), says="o.bmp"),
    Case("output-no-suffix", lambda ws: ws.swap(o=ws.out / "o"), says="an image output"),
    Case("output-video-as-png", lambda ws: ws.swap(t=ws.clip(), o=ws.out / "o.png"), says="a video output"),
    Case("output-video-as-avi", lambda ws: ws.swap(t=ws.clip(), o=ws.out / "o.avi"), says="a video output"),
    Case("output-under-a-file", _under_file, says="not a folder"),
    Case("output-deep-under-a-file", _deep_under_file, says="not a folder"),
    Case("output-is-a-folder", _out_is_dir, says="folder"),
]

INSPECT_CASES = [
    Case("inspect-text-as-jpg", lambda ws: ["inspect", ws.file("t.jpg", "just some text\n")], says="t.jpg"),
    Case("inspect-text-as-png", lambda ws: ["inspect", ws.file("t.png", "just some text\n")], says="t.png"),
    Case("inspect-text-as-webp", lambda ws: ["inspect", ws.file("t.webp", "just some text\n")], says="t.webp"),
    Case("inspect-text-as-gif", lambda ws: ["inspect", ws.file("t.gif", "just some text\n")], says="t.gif"),
    Case("inspect-text-as-mp4", lambda ws: ["inspect", ws.file("t.mp4", "just some text\n")], says="t.mp4"),
    Case("inspect-random-bytes", lambda ws: ["inspect", ws.file("r.mkv", os.urandom(4096))], says="r.mkv"),
    Case("inspect-empty", lambda ws: ["inspect", ws.file("e.jpg", b"")], says="e.jpg"),
    Case("inspect-missing", lambda ws: ["inspect", ws.inp / "none.png"], says="none.png"),
    Case("inspect-folder", lambda ws: ["inspect", ws.inp], says="folder"),
    Case("inspect-fifo", lambda ws: ["inspect", _fifo(ws, "p.png")], says="p.png"),
    Case("inspect-link-loop", lambda ws: ["inspect", _symlink(ws, "l.png", ws.inp / "l.png")], says="l.png"),
    Case("inspect-png-header-only", lambda ws: ["inspect", ws.file("h.png", png_with_size(4, 4)[:20])], says="h.png"),
    Case("inspect-no-argument", lambda ws: ["inspect"], says="FILE"),
]

DESCRIBE_CASES = [
    Case("describe-unknown-preset", lambda ws: ["describe", "nope"], says="unknown preset"),
    Case("describe-empty-name", lambda ws: ["describe", ""], says="preset"),
    Case("describe-yaml-unknown-key", lambda ws: ["describe", _yaml(ws, "generator:\n  colour: red\n")], says="colour"),
    Case("describe-yaml-binary", lambda ws: ["describe", ws.file("p.yaml", b"\xff\xfe\x00\x01garbage")], says="p.yaml"),
    Case("describe-yaml-list", lambda ws: ["describe", _yaml(ws, "- 1\n- 2\n")], says="preset.yaml"),
    Case("describe-yaml-empty", lambda ws: ["describe", _yaml(ws, "")], says="preset.yaml"),
    Case("describe-yaml-broken", lambda ws: ["describe", _yaml(ws, "generator: [unclosed\n")], says="preset.yaml"),
    Case("describe-size-text", lambda ws: ["describe", _yaml(ws, "generator:\n  image_size: big\n")]),
    Case("describe-size-negative", lambda ws: ["describe", _yaml(ws, "generator:\n  image_size: -256\n")]),
    Case("describe-size-huge", lambda ws: ["describe", _yaml(ws, "generator:\n  image_size: 1048576\n")]),
    Case("describe-channels-zero", lambda ws: ["describe", _yaml(ws, "generator:\n  base_channels: 0\n")]),
    Case("describe-model-config-garbage", lambda ws: ["describe", _model_dir_with(ws, "{not json")], says="config"),
    Case(
        "describe-model-config-discriminator",
        lambda ws: ["describe", _model_dir_with(ws, json.dumps({"class": "Discriminator", "config": {}}))],
    ),
    Case("describe-fifo", lambda ws: ["describe", _fifo(ws, "p.yaml")], says="p.yaml"),
]

EXPORT_CASES = [
    Case("export-missing-model", lambda ws: ["export", ws.inp / "none", "-o", ws.out / "g.onnx"], says="none"),
    Case("export-folder-without-config", lambda ws: ["export", ws.inp, "-o", ws.out / "g.onnx"], says="config.json"),
    Case("export-model-is-a-file", lambda ws: ["export", ws.file("m", "x"), "-o", ws.out / "g.onnx"]),
    Case(
        "export-truncated-weights",
        lambda ws: ["export", _truncated_weights(ws), "-o", ws.out / "g.onnx"],
        says="model.safetensors",
    ),
    Case(
        "export-garbage-config",
        lambda ws: ["export", _model_dir_with(ws, b"\x00\x01"), "-o", ws.out / "g.onnx"],
        says="config",
    ),
    Case(
        "export-over-its-weights",
        lambda ws: ["export", _tiny_model(ws), "-o", ws.inp / "model" / "model.safetensors"],
        says="overwrite",
    ),
    Case(
        "export-over-its-config",
        lambda ws: ["export", _tiny_model(ws), "-o", ws.inp / "model" / "config.json"],
        says="overwrite",
    ),
    Case("export-under-a-file", lambda ws: ["export", _tiny_model(ws), "-o", ws.file("f", "x") / "g.onnx"]),
    Case("export-to-a-folder", lambda ws: ["export", _tiny_model(ws), "-o", ws.inp], says="folder"),
    Case("export-opset-zero", lambda ws: ["export", _tiny_model(ws), "-o", ws.out / "g.onnx", "--opset", "0"]),
    Case("export-opset-negative", lambda ws: ["export", _tiny_model(ws), "-o", ws.out / "g.onnx", "--opset", "-3"]),
    Case("export-opset-huge", lambda ws: ["export", _tiny_model(ws), "-o", ws.out / "g.onnx", "--opset", "999"]),
    Case("export-opset-text", lambda ws: ["export", _tiny_model(ws), "-o", ws.out / "g.onnx", "--opset", "new"]),
    Case("export-wrong-suffix", lambda ws: ["export", _tiny_model(ws), "-o", ws.out / "g.pt"], says=".onnx"),
]

EVAL_CASES = [
    Case("eval-missing-data", lambda ws: _eval(ws, data=ws.inp / "none"), says="none"),
    Case("eval-data-is-a-file", lambda ws: _eval(ws, data=ws.file("d.txt", "x")), says="d.txt"),
    Case("eval-empty-data", lambda ws: _eval(ws, data=ws.inp), says="in"),
    Case("eval-output-is-a-file", lambda ws: ["eval", "folders", _lfw_folders(ws), "-o", ws.file("r", "x")]),
    Case("eval-samples-zero", lambda ws: _eval(ws, "--samples", "0"), says="--samples"),
    Case("eval-samples-negative", lambda ws: _eval(ws, "--samples", "-5"), says="--samples"),
    Case("eval-batch-size-zero", lambda ws: _eval(ws, "--batch-size", "0"), says="--batch-size"),
    Case("eval-device-foo", lambda ws: _eval(ws, "--device", "foo"), says="--device"),
    Case("eval-device-cuda-99", lambda ws: _eval(ws, "--device", "cuda:99"), says="--device"),  # fails with a GPU too
    Case("eval-seed-negative", lambda ws: _eval(ws, "--seed", "-1"), says="--seed"),
    Case("eval-gallery-negative", lambda ws: _eval(ws, "--gallery-per-identity", "-1"), says="--gallery"),
    Case(
        "eval-frames-per-video-zero",
        lambda ws: _eval(ws, "--frames-per-video", "0", protocol="videos", data=ws.inp),
        says="--frames-per-video",
    ),
    Case("eval-metric-unknown", lambda ws: _eval(ws, "--metrics", "beauty"), says="beauty"),
    Case("eval-metrics-empty", lambda ws: _eval(ws, "--metrics", ","), says="metric"),
    Case("eval-shard-beyond", lambda ws: _eval(ws, "--shard", "4/4"), says="--shard"),
    Case("eval-shard-text", lambda ws: _eval(ws, "--shard", "half"), says="--shard"),
    Case("eval-model-unknown", lambda ws: _eval(ws, "--model", "nope"), says="nope"),
    Case("eval-identities-missing", lambda ws: _eval(ws, "--identities", ws.inp / "ids.txt"), says="ids.txt"),
    Case("eval-identities-empty", lambda ws: _eval(ws, "--identities", ws.file("ids.txt", "\n\n")), says="ids.txt"),
    Case(
        "eval-identities-binary", lambda ws: _eval(ws, "--identities", ws.file("ids.txt", b"\xff\xfe\xfa")), says="ids"
    ),
    Case("eval-pose-estimator-unknown", lambda ws: _eval(ws, "--pose-estimator", "guess"), says="--pose-estimator"),
    Case("eval-unknown-protocol", lambda ws: ["eval", "celeba", ws.inp, "-o", ws.out], says="celeba"),
    Case("eval-merge-missing", lambda ws: ["eval", "merge", ws.inp / "p.npz", "-o", ws.out], says="p.npz"),
    Case("eval-merge-garbage", lambda ws: ["eval", "merge", ws.file("p.npz", os.urandom(300)), "-o", ws.out]),
    Case("eval-merge-text", lambda ws: ["eval", "merge", ws.file("p.npz", "hello"), "-o", ws.out], says="p.npz"),
]

CASES = SWAP_CASES + INSPECT_CASES + DESCRIBE_CASES + EXPORT_CASES + EVAL_CASES


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 100 and len({c.name for c in CASES}) == len(CASES)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def ws(tmp_path, lfw, small_clip) -> Workspace:
    return Workspace(tmp_path / "ws", lfw, small_clip)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_hostile_input_is_refused_cleanly(case, ws, run):
    case.check(ws, run)


def test_unwritable_output_folder(ws, run):
    if os.geteuid() == 0:  # root writes into read-only folders, but nobody creates files in /proc
        out = Path("/proc/facedancer-test/o.png")
    else:
        locked = ws.root / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        out = locked / "o.png"
    args = ws.swap(o=out)
    before = snapshot(ws.root)
    code, _, err = run(*args)
    assert code == 2 and "cannot write" in one_line(err)
    assert snapshot(ws.root) == before and not out.exists()


# --- subprocesses: signals --------------------------------------------------------------------------------


def _start(*args: object) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "facedancer", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_a_video_swap_leaves_nothing_behind(signum, shared, lfw, tmp_path):
    """Defect 5: SIGTERM (like Ctrl-C) mid-video removes the hidden temporary file and writes no output."""
    clip = shared / "data/videos/liveportrait/d0.mp4"
    digest = _digest(clip)
    out = tmp_path / "out.mp4"
    proc = _start("swap", "-s", lfw / SOURCE, "-t", clip, "-o", out, "--model", "classical")
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.*")):  # the writer's temporary file: the video is being written
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the swap never started writing"
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == [], list(tmp_path.iterdir())
    assert _digest(clip) == digest
