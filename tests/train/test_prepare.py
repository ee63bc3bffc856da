import csv
import json
import tarfile

import cv2
import numpy as np
import pytest

from facedancer.errors import InputError
from facedancer.faces import template, transform_points
from facedancer.faces.align import alignment_matrix
from facedancer.train.dataset_format import read_manifest, tar_key
from facedancer.train.prepare import PrepareOptions, discover, prepare

LFW_OPTIONS = PrepareOptions(min_face=64, workers=2)


@pytest.fixture
def lfw_subset(lfw, tmp_path):
    """Eight LFW identities (linked, not copied), a corrupt photo, and a stray top-level file."""
    src = tmp_path / "src"
    src.mkdir()
    for person in sorted(p for p in lfw.iterdir() if p.is_dir())[:8]:
        (src / person.name).symlink_to(person)
    (src / "Broken_Person").mkdir()
    (src / "Broken_Person" / "x.jpg").write_bytes(b"not a jpeg")
    (src / "notes.txt").write_text("ignored")
    return src


def test_lfw_subset_aligns_reports_and_reruns_as_a_no_op(lfw_subset, tmp_path, cli):
    dst = tmp_path / "out"
    r = cli("prepare", lfw_subset, dst, "--min-face", "64", "--workers", "2")
    assert r.returncode == 0, r.stderr
    photos = len(discover(lfw_subset))
    rows = read_manifest(dst)
    assert len(rows) >= 0.95 * (photos - 1)
    with (dst / "skipped.csv").open() as f:
        skipped = list(csv.DictReader(f))
    assert {"source": "Broken_Person/x.jpg", "frame": "-1", "reason": "unreadable image"} in skipped
    assert len(rows) + len(skipped) == photos

    row = rows[0]
    assert row["identity"] == row["source"].split("/")[0] and float(row["score"]) > 0.5
    crop = cv2.imread(str(dst / row["file"]))
    assert crop.shape == (256, 256, 3)
    points = np.array([[float(row[f"x{i}"]), float(row[f"y{i}"])] for i in range(5)])
    aligned = transform_points(points, alignment_matrix(points, 256))
    assert np.abs(aligned - template(256)).mean() < 8  # the stored landmarks are the ones that made the crop

    progress = (dst / "progress.jsonl").read_bytes()
    stamp = (dst / "manifest.csv").stat().st_mtime_ns
    again = cli("prepare", lfw_subset, dst, "--min-face", "64", "--workers", "2")
    assert again.returncode == 0, again.stderr
    assert f"0 processed, {photos} already done" in again.stdout
    assert (dst / "progress.jsonl").read_bytes() == progress
    assert (dst / "manifest.csv").stat().st_mtime_ns == stamp


def test_default_min_face_rejects_lfw_sized_faces_with_a_reason(lfw, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "p").symlink_to(sorted(p for p in lfw.iterdir() if p.is_dir())[0])
    summary = prepare(src, tmp_path / "out", PrepareOptions())
    assert summary.crops == 0 and summary.skipped["face too small"] == summary.items
    reasons = [r["reason"] for r in csv.DictReader((tmp_path / "out" / "skipped.csv").open())]
    assert all(r.startswith("face too small (") and r.endswith("< 128 px)") for r in reasons)


def test_shards_split_the_work_and_resume_across_them(lfw_subset, tmp_path):
    dst = tmp_path / "out"
    summaries = []
    for k in range(3):
        summaries.append(prepare(lfw_subset, dst, PrepareOptions(min_face=64, shard=(k, 3))))
        if k < 2:  # other shards still pending: a manifest, but not a dataset to train on yet
            assert summaries[-1].pending > 0 and (dst / "manifest.csv").is_file()
            with pytest.raises(InputError, match="other shards are not done.*rerun `facedancer prepare"):
                read_manifest(dst)
    assert summaries[-1].pending == 0 and read_manifest(dst)
    counts = [s.processed for s in summaries]
    total = len(discover(lfw_subset))
    assert sum(counts) == total and min(counts) > 0
    assert len(list(dst.glob("progress-*-of-0003.jsonl"))) == 3
    whole = prepare(lfw_subset, dst, PrepareOptions(min_face=64))
    assert whole.processed == 0 and whole.crops == len(read_manifest(dst))
    with pytest.raises(InputError, match="0 <= K < N"):
        PrepareOptions(shard=(3, 3))


def test_killed_run_resumes_where_it_stopped(lfw_subset, tmp_path):
    dst = tmp_path / "out"
    prepare(lfw_subset, dst, PrepareOptions(min_face=64, shard=(0, 2)))
    lines = (dst / "progress-0000-of-0002.jsonl").read_text().splitlines()
    # simulate a kill mid-write: a torn last line is ignored and that file is redone
    (dst / "progress.jsonl").write_text(lines[0] + "\n" + lines[1][:20])
    (dst / "progress-0000-of-0002.jsonl").unlink()
    summary = prepare(lfw_subset, dst, PrepareOptions(min_face=64))
    assert summary.already_done == 1 and summary.processed == summary.items - 1
    assert prepare(lfw_subset, dst, PrepareOptions(min_face=64)).processed == 0  # the torn line did not spread


def test_video_every_nth_frame_is_one_identity(shared, tmp_path):
    src = tmp_path / "src"
    (src / "clips").mkdir(parents=True)
    (src / "clips" / "obama.mp4").symlink_to(shared / "data" / "videos" / "3ddfa" / "obama.mp4")
    summary = prepare(src, tmp_path / "out", PrepareOptions(every=25))
    rows = read_manifest(tmp_path / "out")
    assert summary.crops == len(rows) >= 2
    assert {r["identity"] for r in rows} == {"clips/obama"}
    frames = sorted(int(r["frame"]) for r in rows)
    assert frames[0] == 0 and all(f % 25 == 0 for f in frames)


def test_webdataset_tars_are_readable_by_webdataset(lfw_subset, tmp_path):
    wds = pytest.importorskip("webdataset")
    dst = tmp_path / "out"
    prepare(lfw_subset, dst, PrepareOptions(min_face=64, tar_samples=40))
    rows = read_manifest(dst)
    tars = sorted(str(p) for p in (dst / "webdataset").glob("crops-*.tar"))
    assert len(tars) == -(-len(rows) // 40)
    samples = list(wds.WebDataset(tars, shardshuffle=False))
    assert len(samples) == len(rows)
    meta = json.loads(samples[0]["json"])
    assert meta["identity"] == rows[0]["identity"] and len(meta["landmarks"]) == 5
    assert cv2.imdecode(np.frombuffer(samples[0]["png"], np.uint8), cv2.IMREAD_COLOR).shape == (256, 256, 3)


@pytest.mark.parametrize("image_format", ["jpg", "webp"])
def test_compressed_crops_are_smaller_and_close_to_the_lossless_ones(lfw_subset, tmp_path, image_format):
    """--format jpg/webp: the same crops at a fraction of PNG's size, packed into tars under their own suffix."""
    lossless, small = tmp_path / "png", tmp_path / image_format
    prepare(lfw_subset, lossless, LFW_OPTIONS)
    options = PrepareOptions(min_face=64, workers=2, image_format=image_format, quality=90, tar_samples=20)
    prepare(lfw_subset, small, options)
    rows_png, rows = read_manifest(lossless), read_manifest(small)
    assert [r["file"].replace(".png", f".{image_format}") for r in rows_png] == [r["file"] for r in rows]
    size_png = sum((lossless / r["file"]).stat().st_size for r in rows_png)
    size = sum((small / r["file"]).stat().st_size for r in rows)
    assert size < size_png / 3
    a = cv2.imread(str(lossless / rows_png[0]["file"])).astype(np.float32)
    b = cv2.imread(str(small / rows[0]["file"])).astype(np.float32)
    assert np.abs(a - b).mean() < 4.0  # q90: a few levels, not a different picture
    members = set()
    for path in (small / "webdataset").glob("*.tar"):
        with tarfile.open(path) as tar:
            members.update(tar.getnames())
    assert f"{tar_key(rows[0]['file'])}.{image_format}" in members


def test_bad_crop_format_or_quality_is_a_clear_error():
    with pytest.raises(InputError, match="crop format"):
        PrepareOptions(image_format="gif")
    with pytest.raises(InputError, match="quality"):
        PrepareOptions(image_format="jpg", quality=0)


def _clip(frames: list[np.ndarray], path, rotation: int = 0):
    """An H.264 clip of ``frames``, stored turned clockwise by ``rotation`` with the display matrix undoing it,
    as a phone records a portrait video."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"preset": "ultrafast", "crf": "18"})
        stored = [np.ascontiguousarray(np.rot90(f, -(rotation // 90))) for f in frames]
        stream.height, stream.width = stored[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        if rotation:
            stream.set_display_rotation(rotation)
        for image in stored:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode())
    return path


def test_a_portrait_phone_clip_is_aligned_upright(shared, tmp_path):
    """Defect 10: prepare decoded videos itself and ignored the display rotation, so portrait clips were
    aligned sideways or skipped; through io.VideoReader they give the upright clip's faces."""
    from facedancer.io import VideoReader

    with VideoReader(shared / "data/videos/3ddfa/obama.mp4", max_frames=21) as reader:
        frames = [cv2.resize(f, (640, 360), interpolation=cv2.INTER_AREA) for f in reader]
    for name, rotation in (("upright", 0), ("portrait", 90)):
        (tmp_path / name / "clips").mkdir(parents=True)
        _clip(frames, tmp_path / name / "clips" / "obama.mp4", rotation)
        prepare(tmp_path / name, tmp_path / f"{name}-crops", PrepareOptions(every=10, min_face=64))
    with VideoReader(tmp_path / "portrait/clips/obama.mp4") as reader:
        assert reader.info.rotation == 90 and (reader.info.width, reader.info.height) == (640, 360)
    upright, portrait = read_manifest(tmp_path / "upright-crops"), read_manifest(tmp_path / "portrait-crops")
    assert [r["frame"] for r in portrait] == [r["frame"] for r in upright] == ["0", "10", "20"]
    for a, b in zip(upright, portrait, strict=True):
        points = [abs(float(a[k]) - float(b[k])) for k in (f"{axis}{i}" for i in range(5) for axis in "xy")]
        assert max(points) < 3  # the same landmarks, in the upright frame
