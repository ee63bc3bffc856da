"""Hostile inputs against ``prepare``, ``train`` and ``calibrate-ifsr`` (issue 15).

Every case builds its inputs at run time (LFW photos, the prepared LFW crops, synthetic bytes), runs the CLI
in-process and asserts: the exit code, exactly one line on stderr and no traceback, no file created,
changed or left half-written anywhere in the workspace, and every input byte-identical afterwards.
Inputs that ``prepare`` survives (skipping what it cannot read) are one test at the end.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from support import HostileCase as Case
from support import png_with_size, snapshot


class Workspace:
    """Inputs under ``in/``; outputs would go under ``out/`` (which must not appear when a case is refused)."""

    def __init__(self, root: Path, lfw: Path, crops: Path, micro_config: Callable) -> None:
        self.root, self.lfw, self.crops, self.micro_config = root, lfw, crops, micro_config
        self.inp = root / "in"
        self.inp.mkdir(parents=True)
        self.out = root / "out"

    def file(self, name: str, data: bytes | str) -> Path:
        path = self.inp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path

    def people(self, count: int = 2) -> Path:
        """An identity-folder dataset: two LFW photos of each of ``count`` people."""
        root = self.inp / "people"
        for person in sorted(p for p in self.lfw.iterdir() if p.is_dir() and len(list(p.glob("*.jpg"))) >= 2)[:count]:
            for photo in sorted(person.glob("*.jpg"))[:2]:
                self.file(f"people/{person.name}/{photo.name}", photo.read_bytes())
        return root

    def dataset(self, manifest: bytes | None = None, record: bool = True) -> Path:
        """The prepared LFW crops (crops linked, not copied), optionally with another manifest."""
        data = self.inp / "data"
        data.mkdir()
        (data / "crops").symlink_to(self.crops / "crops")
        (data / "manifest.csv").write_bytes(
            (self.crops / "manifest.csv").read_bytes() if manifest is None else manifest
        )
        if record:
            (data / "prepared.json").write_bytes((self.crops / "prepared.json").read_bytes())
        return data

    def manifest(self) -> bytes:
        return (self.crops / "manifest.csv").read_bytes()

    def prepare(self, *extra, src: object = None, dst: object = None) -> list:
        return ["prepare", self.people() if src is None else src, self.out / "data" if dst is None else dst, *extra]

    def train(self, *sets: str, data: object = None, config: object = "tiny-64") -> list:
        data = self.inp / "no-data-needed" if data is None else data
        base = [f"data.root={data}", f"train.out_dir={self.out}"]
        return ["train", config, *[a for s in (*base, *sets) for a in ("--set", s)]]

    def run_dir(self) -> Path:
        """A run directory as ``train`` leaves it before its first checkpoint: config.yaml only."""
        run = self.inp / "runs" / "00000-micro"
        run.mkdir(parents=True)
        config = self.micro_config(self.crops, self.inp / "runs")
        (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        return run

    def resume(self, *sets: str) -> list:
        return ["train", "--resume", self.run_dir(), *[a for s in sets for a in ("--set", s)]]

    def calibrate(self, *extra, data: object = None, out: object = None) -> list:
        data = self.dataset() if data is None else data
        return ["calibrate-ifsr", data, "--out", self.out / "m.json" if out is None else out, *extra]

    def triplets(self, names: tuple[str, ...] = ("a.png",), missing: str = "") -> Path:
        root = self.inp / "triplets"
        crop = (self.crops / read_rows(self.crops)[0]["file"]).read_bytes()
        for part in ("target", "source", "changed"):
            (root / part).mkdir(parents=True)
            for name in names:
                if part != missing:
                    (root / part / name).write_bytes(crop)
        return root


def read_rows(root: Path) -> list[dict]:
    with (root / "manifest.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def _margins(ws: Workspace, doc: object) -> Path:
    return ws.file("margins.json", json.dumps(doc))


def _loose_files(ws: Workspace) -> Path:
    """Photos and notes directly in SRC: no identity folder to take a name from."""
    ws.file("a.jpg", (ws.lfw / "Aaron_Peirsol/Aaron_Peirsol_0001.jpg").read_bytes())
    ws.file("notes.txt", "x")
    return ws.inp


PREPARE_CASES = [
    Case("prepare-src-missing", lambda ws: ws.prepare(src=ws.inp / "none"), says="is not a directory"),
    Case("prepare-src-is-a-file", lambda ws: ws.prepare(src=ws.file("p.jpg", "x")), says="is not a directory"),
    Case("prepare-src-empty", lambda ws: ws.prepare(src=ws.inp), says="holds no photos"),
    Case("prepare-src-only-loose-files", lambda ws: ws.prepare(src=_loose_files(ws)), says="holds no photos"),
    Case("prepare-dst-is-a-file", lambda ws: ws.prepare(dst=ws.file("d", "x")), says="is a file"),
    Case("prepare-dst-is-src", lambda ws: ws.prepare(dst=ws.inp / "people"), says="inside the source folder"),
    Case("prepare-dst-inside-src", lambda ws: ws.prepare(dst=ws.inp / "people" / "aligned"), says="inside"),
    Case("prepare-dst-under-a-file", lambda ws: ws.prepare(dst=ws.file("f", "x") / "out"), says="cannot create"),
    Case("prepare-shard-text", lambda ws: ws.prepare("--shard", "half"), says="--shard"),
    Case("prepare-shard-beyond", lambda ws: ws.prepare("--shard", "3/3"), says="0 <= K < N"),
    Case("prepare-shard-of-zero", lambda ws: ws.prepare("--shard", "0/0"), says="0 <= K < N"),
    Case("prepare-every-zero", lambda ws: ws.prepare("--every", "0"), says="every"),
    Case("prepare-workers-zero", lambda ws: ws.prepare("--workers", "0"), says="workers"),
    Case("prepare-min-face-negative", lambda ws: ws.prepare("--min-face", "-1"), says="min_face"),
    Case("prepare-size-tiny", lambda ws: ws.prepare("--size", "8"), says="size"),
    Case("prepare-tar-samples-negative", lambda ws: ws.prepare("--tar-samples", "-4"), says="tar_samples"),
    Case("prepare-quality-zero", lambda ws: ws.prepare("--format", "jpg", "--quality", "0"), says="quality"),
    Case("prepare-quality-above-100", lambda ws: ws.prepare("--format", "webp", "--quality", "101"), says="quality"),
]

TRAIN_CASES = [
    # --- every numeric setting, validated before anything is created -----------------------------------
    Case("train-lr-negative", lambda ws: ws.train("train.lr=-0.001"), says="train.lr must be > 0"),
    Case("train-lr-zero", lambda ws: ws.train("train.lr=0"), says="train.lr must be > 0"),
    Case("train-lr-nan", lambda ws: ws.train("train.lr=.nan"), says="finite"),
    Case("train-lr-inf", lambda ws: ws.train("train.lr=.inf"), says="finite"),
    Case("train-lr-text", lambda ws: ws.train("train.lr=fast"), says="expected a number"),
    Case("train-betas-one-value", lambda ws: ws.train("train.betas=[0.5]"), says="expected 2 values"),
    Case("train-betas-above-one", lambda ws: ws.train("train.betas=[0.5, 1.5]"), says="train.betas"),
    Case("train-eps-zero", lambda ws: ws.train("train.eps=0"), says="train.eps"),
    Case("train-lr-decay-zero", lambda ws: ws.train("train.lr_decay=0"), says="train.lr_decay"),
    Case("train-lr-decay-steps-zero", lambda ws: ws.train("train.lr_decay_steps=0"), says="lr_decay_steps"),
    Case("train-steps-negative", lambda ws: ws.train("train.steps=-5"), says="train.steps"),
    Case("train-batch-size-zero", lambda ws: ws.train("train.batch_size=0"), says="train.batch_size"),
    Case("train-batch-size-float", lambda ws: ws.train("train.batch_size=2.5"), says="train.batch_size"),
    Case("train-accumulate-zero", lambda ws: ws.train("train.accumulate=0"), says="train.accumulate"),
    Case("train-seed-negative", lambda ws: ws.train("train.seed=-1"), says="train.seed"),
    Case("train-checkpoint-every-zero", lambda ws: ws.train("train.checkpoint_every=0"), says="checkpoint_every"),
    Case("train-keep-checkpoints-zero", lambda ws: ws.train("train.keep_checkpoints=0"), says="keep_checkpoints"),
    Case("train-log-every-negative", lambda ws: ws.train("train.log_every=-1"), says="log_every"),
    Case("train-identity-weight-negative", lambda ws: ws.train("train.loss.identity_weight=-1"), says="identity"),
    Case("train-r1-gamma-negative", lambda ws: ws.train("train.loss.r1_gamma=-10"), says="r1_gamma"),
    Case("train-perceptual-scale-nan", lambda ws: ws.train("train.loss.perceptual_scale=.nan"), says="finite"),
    Case("train-ifsr-scale-zero", lambda ws: ws.train("ifsr.scale=0"), says="ifsr.scale"),
    Case("train-ifsr-weight-negative", lambda ws: ws.train("ifsr.weight=-1"), says="ifsr.weight"),
    Case("train-brightness-inf", lambda ws: ws.train("data.augment.brightness=.inf"), says="finite"),
    Case("train-contrast-negative", lambda ws: ws.train("data.augment.contrast=[-1, 1]"), says="contrast"),
    Case("train-contrast-three-values", lambda ws: ws.train("data.augment.contrast=[1, 1, 1]"), says="2 values"),
    Case("train-same-ratio-above-one", lambda ws: ws.train("data.same_ratio=2"), says="same_ratio"),
    Case("train-workers-negative", lambda ws: ws.train("data.workers=-1"), says="workers"),
    Case("train-channels-zero", lambda ws: ws.train("generator.base_channels=0"), says="base_channels"),
    Case("train-device-foo", lambda ws: ws.train("train.device=foo"), says="train.device"),
    Case("train-device-cuda", lambda ws: ws.train("train.device=cuda"), says="not available"),
    # --- config files and --set --------------------------------------------------------------------------
    Case("train-config-binary", lambda ws: ws.train(config=ws.file("c.yaml", b"\xff\xfe\x00\x81")), says="c.yaml"),
    Case("train-config-a-list", lambda ws: ws.train(config=ws.file("c.yaml", "- 1\n- 2\n")), says="mapping"),
    Case("train-config-missing", lambda ws: ws.train(config=ws.inp / "none.yaml"), says="none.yaml"),
    Case("train-set-without-equals", lambda ws: ws.train("train.lr"), says="key=value"),
    Case("train-set-unknown-key", lambda ws: ws.train("train.stpes=7"), says="did you mean 'steps'"),
    Case("train-set-into-a-number", lambda ws: ws.train("train.steps.x=1"), says="not a section"),
    # --- data --------------------------------------------------------------------------------------------
    Case("train-data-missing", lambda ws: ws.train(data=ws.inp / "none"), says="manifest.csv is missing"),
    Case("train-data-is-a-file", lambda ws: ws.train(data=ws.file("d", "x")), says="not a prepared dataset"),
    Case(
        "train-manifest-binary",
        lambda ws: ws.train(data=ws.dataset(manifest=os.urandom(3000))),
        says="truncated or changed",
    ),
    Case(
        "train-manifest-truncated",
        lambda ws: ws.train(data=ws.dataset(manifest=ws.manifest()[: len(ws.manifest()) // 2])),
        says="rerun `facedancer prepare",
    ),
    Case("train-no-completion-record", lambda ws: ws.train(data=ws.dataset(record=False)), says="completion record"),
    Case(
        "train-more-held-out-than-identities",
        lambda ws: ws.train("data.val_identities=500", data=ws.dataset()),
        says="cannot hold out",
    ),
    Case(
        "train-batch-bigger-than-the-data",
        lambda ws: ws.train("train.batch_size=5000", data=ws.dataset()),
        says="fewer than one batch",
    ),
    Case("train-margins-missing", lambda ws: ws.train("ifsr.margins=/no/such.json", data=ws.dataset())),
    Case(
        "train-margins-without-margins",
        lambda ws: ws.train(f"ifsr.margins={_margins(ws, {'format': 'facedancer-ifsr-margins'})}", data=ws.dataset()),
        says="margins",
    ),
    Case("train-out-dir-is-a-file", lambda ws: ws.train(f"train.out_dir={ws.file('o', 'x')}", data=ws.dataset())),
    # --- resume ------------------------------------------------------------------------------------------
    Case("resume-missing", lambda ws: ["train", "--resume", ws.inp / "none"], says="not a training run"),
    Case("resume-with-a-config", lambda ws: ["train", "tiny-64", "--resume", ws.run_dir()], says="drop CONFIG"),
    Case(
        "resume-config-binary",
        lambda ws: ["train", "--resume", ws.file("runs/r/config.yaml", os.urandom(100)).parent],
        says="config.yaml",
    ),
    Case("resume-without-checkpoints", lambda ws: ws.resume(), says="nothing to resume"),
    Case(
        "resume-with-another-batch-size",
        lambda ws: ws.resume("train.batch_size=4"),
        says="train.batch_size cannot change",
    ),
    Case(
        "resume-with-another-seed",
        lambda ws: ws.resume("train.seed=3"),
        says="train.seed cannot change",
    ),
    Case(
        "resume-with-another-generator",
        lambda ws: ws.resume("generator.base_channels=4"),
        says="generator.base_channels cannot change",
    ),
    Case(
        "resume-with-other-held-out-identities",
        lambda ws: ws.resume("data.val_identities=2"),
        says="data.val_identities cannot change",
    ),
    Case(
        "resume-with-another-encoder",
        lambda ws: ws.resume("identity.encoder=arcface-iresnet50"),
    ),
    Case(
        "resume-with-a-negative-lr",
        lambda ws: ws.resume("train.lr=-1"),
        says="train.lr must be > 0",
    ),
]

CALIBRATE_CASES = [
    Case("calibrate-data-missing", lambda ws: ws.calibrate(data=ws.inp / "none"), says="neither a prepared dataset"),
    Case(
        "calibrate-manifest-binary",
        lambda ws: ws.calibrate(data=ws.dataset(manifest=b"\x00\xff" * 500)),
        says="not a complete prepared dataset",
    ),
    Case(
        "calibrate-manifest-truncated",
        lambda ws: ws.calibrate(data=ws.dataset(manifest=ws.manifest()[:700])),
        says="rerun `facedancer prepare",
    ),
    Case("calibrate-pairs-zero", lambda ws: ws.calibrate("--pairs", "0"), says="--pairs"),
    Case("calibrate-pairs-negative", lambda ws: ws.calibrate("--pairs", "-3"), says="--pairs"),
    Case("calibrate-eer-nan", lambda ws: ws.calibrate("--eer-max", "nan"), says="--eer-max"),
    Case("calibrate-eer-above-one", lambda ws: ws.calibrate("--eer-max", "2"), says="--eer-max"),
    Case(
        "calibrate-out-over-the-manifest",
        lambda ws: ws.calibrate(data=ws.dataset(), out=ws.inp / "data" / "manifest.csv"),
        says="inside the data folder",
    ),
    Case("calibrate-out-is-a-folder", lambda ws: ws.calibrate(out=ws.inp), says="is a folder"),
    Case(
        "calibrate-out-is-the-plot",
        lambda ws: ws.calibrate("--plot", ws.out / "m.json"),
        says="--out and --plot are the same file",
    ),
    Case("calibrate-no-changed-images", lambda ws: ws.calibrate(data=ws.triplets(names=())), says="holds no images"),
    Case(
        "calibrate-triplet-without-target",
        lambda ws: ws.calibrate(data=ws.triplets(missing="target")),
        says="missing or unreadable",
    ),
    Case("calibrate-unknown-encoder", lambda ws: ws.calibrate("--encoder", "vgg"), says="unknown identity encoder"),
    Case(
        "calibrate-unknown-block",
        lambda ws: ws.calibrate("--blocks", "conv_99", data=ws.triplets()),
        says="unknown blocks",
    ),
    Case("calibrate-swapper-missing", lambda ws: ws.calibrate("--swapper", ws.inp / "none", "--pairs", "2")),
]

CASES = PREPARE_CASES + TRAIN_CASES + CALIBRATE_CASES


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 75 and len({c.name for c in CASES}) == len(CASES)


@pytest.fixture
def ws(tmp_path, lfw, lfw_crops, micro_config, monkeypatch) -> Workspace:
    monkeypatch.chdir(tmp_path)  # anything written relative to the working directory is seen too
    return Workspace(tmp_path, lfw, lfw_crops, micro_config)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_hostile_input_is_refused_cleanly(case, ws, run, one_thread):
    case.check(ws, run)


def test_prepare_skips_what_it_cannot_read_and_stays_inside_its_output(ws, run):
    """Hostile files inside a dataset: each is skipped with its reason (or left out, for a named pipe that
    would block and a folder link that would loop), the dataset is complete, the source unchanged."""
    src = ws.people()
    person = next(p for p in sorted(src.iterdir()))
    ws.file("people/Broken/text.jpg", "not a photo")
    ws.file("people/Broken/empty.png", b"")
    ws.file("people/Broken/bomb.png", png_with_size(60_000, 60_000))
    ws.file("people/Broken/cut.jpg", next(person.glob("*.jpg")).read_bytes()[:1500])
    ws.file("people/Broken/clip.mp4", os.urandom(4000))
    (src / "Broken" / "gone.jpg").symlink_to(src / "nowhere.jpg")
    (src / "Broken" / "loop").symlink_to(src)
    os.mkfifo(src / "Broken" / "pipe.jpg")
    before = snapshot(ws.inp)
    code, out, err = run("prepare", src, ws.out, "--min-face", "64", "--workers", "1")
    assert code == 0 and "Traceback" not in err and not err.strip(), err
    assert snapshot(ws.inp) == before
    with (ws.out / "skipped.csv").open() as f:
        skipped = {row["source"]: row["reason"] for row in csv.DictReader(f)}
    broken = {k.removeprefix("Broken/"): v for k, v in skipped.items() if k.startswith("Broken/")}
    assert set(broken) == {"text.jpg", "empty.png", "bomb.png", "gone.jpg", "clip.mp4"} | (
        {"cut.jpg"} if "cut.jpg" in broken else set()
    ), skipped
    assert broken["bomb.png"].startswith("unreadable image (") and "No such file" in broken["gone.jpg"]
    assert broken["clip.mp4"].startswith("unreadable video (")
    rows = read_rows(ws.out)
    assert rows and all(not r["source"].startswith("Broken/loop") for r in rows)  # each folder once
    assert json.loads((ws.out / "prepared.json").read_text())["rows"] == len(rows)
    assert "skipped" in out
