"""``facedancer swap`` as users run it: outputs, labels, and one clear line for every bad input."""

from fractions import Fraction

import numpy as np
import pytest

from facedancer.io import read_image, read_label, write_image
from support import png_with_size


@pytest.fixture
def pair(lfw):
    return lfw / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg", lfw / "Adrien_Brody" / "Adrien_Brody_0001.jpg"


def _one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_classical_swap_writes_a_labelled_image(run, pair, tmp_path):
    code, _, err = run("swap", "-s", pair[0], "-t", pair[1], "-o", tmp_path / "out.png", "--model", "classical")
    assert code == 0, err
    assert read_image(tmp_path / "out.png").shape == read_image(pair[1]).shape
    assert "classical" in str(read_label(tmp_path / "out.png"))
    code, out, _ = run("inspect", tmp_path / "out.png")
    assert code == 0 and "compositeSynthetic" in out


def test_retinaface_detector_swaps(run, pair, shared, tmp_path):
    from facedancer import assets

    assets.add("retinaface-mnet025", shared / "weights" / "retinaface_mnet025" / "mobilenet0.25_Final.pth")
    out = tmp_path / "out.png"
    code, _, err = run(
        "swap", "-s", pair[0], "-t", pair[1], "-o", out, "--model", "classical", "--detector", "retinaface"
    )
    assert code == 0, err
    assert read_image(out).shape == read_image(pair[1]).shape and read_label(out) is not None


def test_no_label_only_on_request(run, pair, tmp_path):
    code, _, _ = run(
        "swap", "-s", pair[0], "-t", pair[1], "-o", tmp_path / "o.jpg", "--model", "classical", "--no-label"
    )
    assert code == 0 and read_label(tmp_path / "o.jpg") is None


def test_no_face_in_source_exits_2(cli, pair, tmp_path):
    wall = tmp_path / "wall.png"
    write_image(wall, np.full((300, 300, 3), 90, np.uint8), None)
    r = cli("swap", "-s", wall, "-t", pair[1], "-o", tmp_path / "out.png", "--model", "classical")
    assert r.returncode == 2
    assert "no face found in the source image" in _one_line(r.stderr)
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("case", ["truncated", "unsupported", "bomb", "missing", "truncated-video"])
def test_bad_targets_exit_2_without_output(run, pair, shared, tmp_path, case):
    target = (
        tmp_path
        / {
            "truncated": "t.jpg",
            "unsupported": "t.txt",
            "bomb": "t.png",
            "missing": "none.jpg",
            "truncated-video": "t.mp4",
        }[case]
    )
    if case == "truncated":
        target.write_bytes(pair[1].read_bytes()[:2500])
    elif case == "unsupported":
        target.write_text("hello")
    elif case == "bomb":
        target.write_bytes(png_with_size(50_000, 50_000))
    elif case == "truncated-video":
        clip = (shared / "data/videos/video_retalking/5.mp4").read_bytes()
        target.write_bytes(clip[: len(clip) // 3])
    out = tmp_path / ("out.mp4" if case == "truncated-video" else "out.png")
    code, _, err = run("swap", "-s", pair[0], "-t", target, "-o", out, "--model", "classical")
    assert code == 2, err
    line = _one_line(err)
    assert str(target.name) in line
    assert list(tmp_path.glob("out*")) == [] and list(tmp_path.glob(".out*")) == []


@pytest.mark.parametrize("output", ["missing-dir-is-fine", "under-a-file", "wrong-kind"])
def test_output_paths(run, pair, tmp_path, output):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = {
        "missing-dir-is-fine": tmp_path / "new" / "dir" / "o.png",
        "under-a-file": blocker / "o.png",
        "wrong-kind": tmp_path / "o.mp4",
    }[output]
    code, _, err = run("swap", "-s", pair[0], "-t", pair[1], "-o", out, "--model", "classical")
    if output == "missing-dir-is-fine":
        assert code == 0 and out.is_file()
    else:
        assert code == 2 and "cannot write" in _one_line(err)


def test_folder_with_bad_files_finishes_and_exits_1(run, pair, tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "ok.jpg").write_bytes(pair[1].read_bytes())
    (src / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage")
    code, _, err = run("swap", "-s", pair[0], "-t", src, "-o", tmp_path / "out", "--model", "classical")
    assert code == 1
    assert (tmp_path / "out" / "sub" / "ok.jpg").is_file() and not (tmp_path / "out" / "bad.jpg").exists()
    assert "skipped" in err and "bad.jpg" in err


def test_selection_arguments(run, pair, tmp_path):
    code, _, err = run("swap", "-t", pair[1], "-o", tmp_path / "o.png", "--model", "classical")
    assert code == 2 and "missing -s/--source" in _one_line(err)
    code, _, err = run("swap", "-s", pair[0], "-t", pair[1], "-o", tmp_path / "o.png", "--faces", "eldest")
    assert code == 2 and "--faces 'eldest'" in _one_line(err)
    code, _, err = run(
        "swap", "-s", pair[0], "-t", pair[1], "-o", tmp_path / "o.png", "--model", "classical", "--faces", pair[1]
    )  # the target's own face as the reference: it is swapped
    assert code == 0, err


def test_default_model_missing_is_explained(run, pair, tmp_path):
    code, _, err = run("swap", "-s", pair[0], "-t", pair[1], "-o", tmp_path / "o.png")
    assert code == 2 and "--model classical" in _one_line(err)


def test_help_shows_flags_as_flags_and_h_is_help(run):
    code, out, _ = run("swap", "-h")
    assert code == 0 and "--no-label" in out and "--max-frames" in out
    assert "<bool>" not in out and "<list[" not in out and "<str>" not in out
    for command in (["inspect"], ["describe"], ["eval", "folders"], ["models", "list"], []):
        code, out, _ = run(*command, "-h")
        assert code == 0 and "Usage: facedancer" in out and "<bool>" not in out


def test_folder_of_bmps_just_works_and_says_how_it_was_written(run, pair, tmp_path):
    from PIL import Image

    src = tmp_path / "in"
    src.mkdir()
    Image.open(pair[1]).save(src / "photo.bmp")
    code, _, err = run("swap", "-s", pair[0], "-t", src, "-o", tmp_path / "out", "--model", "classical")
    assert code == 0, err
    assert (tmp_path / "out" / "photo.png").is_file() and "written as .png" in err


def test_our_own_animated_webp_swaps_again_with_every_frame(run, pair, small_clip, tmp_path):
    """Defect 3: a swapped clip written as animated WebP, swapped again, keeps its 12 frames and their timing."""
    from facedancer.io import VideoReader

    first, second = tmp_path / "first.webp", tmp_path / "second.webp"
    for target, out in ((small_clip, first), (first, second)):
        code, _, err = run("swap", "-s", pair[0], "-t", target, "-o", out, "--model", "classical")
        assert code == 0, err
        assert "in 12 frames" in err
    with VideoReader(second) as reader:
        frames = list(reader)
        stamps = [reader.pop_timestamp() * reader.time_base for _ in frames]
    assert len(frames) == 12 and stamps == [Fraction(i, 25) for i in range(12)]  # the clip's 25 fps
    assert read_label(second) is not None


def test_timings_say_where_the_time_went(run, pair, small_clip, tmp_path):
    code, _, err = run(
        "swap", "-s", pair[0], "-t", small_clip, "-o", tmp_path / "out.mp4", "--model", "classical", "--timings"
    )
    assert code == 0, err
    lines = err.strip().splitlines()
    assert lines[0].startswith("wrote ") and "for 12 frames" in lines[1] and "ms per frame" in lines[1]
    for stage in ("decode", "detect", "align", "generate", "blend", "encode"):
        assert any(line.split()[0] == stage and "ms per frame" in line for line in lines[2:]), err
    code, _, err = run("swap", "-s", pair[0], "-t", pair[1], "-o", tmp_path / "out.png", "--model", "classical")
    assert code == 0 and "ms per frame" not in err  # only when asked
