from fractions import Fraction
from itertools import islice

import av
import numpy as np
import pytest
from PIL import Image

from facedancer.errors import InputError, OutputError
from facedancer.io import ProvenanceLabel, VideoReader, VideoWriter, read_label, transcode
from facedancer.io import video as video_module

LABEL = ProvenanceLabel(model="facedancer-lite", note="io test")
FAST = {"preset": "ultrafast"}
N = 12  # frames per short output
CONTAINERS = (".mp4", ".mov", ".mkv", ".webm", ".gif", ".webp")


@pytest.fixture(scope="module")
def videos(shared):
    return shared / "data" / "videos"


@pytest.fixture(scope="module")
def short_outputs(videos, tmp_path_factory):
    """The first N frames of a talking head with audio (480x480, 30 fps, AAC) in every output format."""
    out = tmp_path_factory.mktemp("short")
    for suffix in CONTAINERS:
        assert transcode(videos / "liveportrait/d18.mp4", out / f"d18{suffix}", LABEL, max_frames=N, **FAST) == N
    return {suffix: out / f"d18{suffix}" for suffix in CONTAINERS}


def remux(src, dst, rotation=None, options=None):
    """Copy ``src``'s packets into ``dst`` unchanged (optionally with a display rotation)."""
    with av.open(str(src)) as i, av.open(str(dst), "w", options=options or {}) as o:
        streams = {s: o.add_stream_from_template(s) for s in i.streams if s.type in ("video", "audio")}
        if rotation is not None:
            streams[i.streams.video[0]].set_display_rotation(rotation)
        for packet in i.demux(*streams):
            if packet.dts is not None:
                packet.stream = streams[packet.stream]
                o.mux(packet)
    return dst


def decoded(path):
    """(frames, fps, audio codec or None) of a file as PyAV sees it."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        count = sum(1 for _ in c.decode(stream))
        return count, stream.average_rate, c.streams.audio[0].codec_context.name if c.streams.audio else None


def one_line(error) -> str:
    assert "\n" not in str(error.value)
    return str(error.value)


def test_reader_metadata(videos):
    with VideoReader(videos / "liveportrait/d18.mp4") as r:
        info = r.info
        assert (info.width, info.height, info.fps, info.frames, info.rotation) == (480, 480, 30, 216, 0)
        assert info.has_audio and info.codec == "h264" and info.duration == pytest.approx(7.2)
    with VideoReader(videos / "face_recognition/short_hamilton_clip.mp4") as r:
        assert r.info.fps == Fraction(2997, 100) and r.info.frames == 275
    with VideoReader(videos / "deepfacelive/Obama_speaking.mp4") as r:
        assert not r.info.has_audio and (r.info.width, r.info.height) == (512, 388)


def test_whole_clip_keeps_frame_count_fps_and_audio(videos, tmp_path):
    src = videos / "3ddfa/obama.mp4"  # the MP4 index lists 158 frames; its edit list shows 55
    frames, fps, _ = decoded(src)
    with VideoReader(src) as r:
        assert r.info.frames == frames == 55
    out = tmp_path / "obama.mp4"
    assert transcode(src, out, LABEL, batch_size=8, **FAST) == frames
    assert decoded(out) == (frames, fps, "aac")
    with av.open(str(out)) as c:
        video, audio = c.streams.video[0], c.streams.audio[0]
        assert float(audio.duration * audio.time_base) == pytest.approx(
            float(video.duration * video.time_base), abs=0.1
        )


def test_audio_is_copied_or_reencoded_per_container(short_outputs, videos):
    expected = {".mp4": "aac", ".mov": "aac", ".mkv": "aac", ".webm": "opus", ".gif": None, ".webp": None}
    for suffix, codec in expected.items():
        if suffix != ".webp":  # FFmpeg here cannot decode animated WebP; Pillow reads it below
            assert decoded(short_outputs[suffix]) == (N, 30 if suffix != ".gif" else Fraction(100, 3), codec)
    with av.open(str(videos / "liveportrait/d18.mp4")) as i, av.open(str(short_outputs[".mp4"])) as o:
        source = [bytes(p) for p in islice(i.demux(audio=0), 5)]
        copied = [bytes(p) for p in islice(o.demux(audio=0), 5)]
        assert copied == source  # the same AAC packets, not a re-encode


def test_mp3_audio_is_copied_into_mp4(videos, tmp_path):
    out = tmp_path / "mp3.mp4"
    transcode(videos / "ghost/dirtydancing.mp4", out, LABEL, max_frames=4, **FAST)
    assert decoded(out)[2] in ("mp3", "mp3float")


def test_timestamps_start_offset_and_variable_frame_rate_survive(videos, tmp_path):
    for name, suffix in (("video_retalking/1.mp4", ".mp4"), ("face_recognition/short_hamilton_clip.mp4", ".mkv")):
        out = tmp_path / f"t{suffix}"
        transcode(videos / name, out, LABEL, max_frames=45, **FAST)
        with av.open(str(videos / name)) as a, av.open(str(out)) as b:
            src = [f.time for f in islice(a.decode(video=0), 45)]
            dst = [f.time for f in b.decode(video=0)]
        assert len(dst) == 45 and np.abs(np.subtract(src, dst)).max() < 1e-3
    assert np.ptp(np.diff(src)) < 1e-3 and src[0] > 0.8  # Hamilton's video starts 0.85 s in
    with av.open(str(videos / "video_retalking/1.mp4")) as a:
        steps = np.diff([f.time for f in a.decode(video=0)])
    assert np.ptp(steps) > 0.03  # clip 1 really has a variable frame rate


def test_rotation_is_kept_and_frames_come_upright(videos, tmp_path):
    src = remux(videos / "deepfacelive/Obama_speaking.mp4", tmp_path / "rot.mp4", rotation=-90)
    with av.open(str(src)) as c:
        coded = [f.to_ndarray(format="rgb24") for f in islice(c.decode(video=0), 6)]
    out = tmp_path / "rot_out.mp4"
    with VideoReader(src, max_frames=6) as r, VideoWriter(out, LABEL, like=r, **FAST) as w:
        assert (r.info.rotation, r.info.width, r.info.height) == (270, 388, 512)
        for i, frame in enumerate(r):
            np.testing.assert_array_equal(frame, np.rot90(coded[i], 3))
            w.write(frame)
    with av.open(str(out)) as c:
        frames = list(c.decode(video=0))
    assert len(frames) == 6 and frames[0].rotation == -90 and (frames[0].width, frames[0].height) == (512, 388)
    assert np.abs(frames[0].to_ndarray(format="rgb24").astype(int) - coded[0]).mean() < 3


def test_gif_and_webp_outputs_are_readable_animations(short_outputs, videos):
    with VideoReader(videos / "liveportrait/d18.mp4", max_frames=1) as r:
        first = next(iter(r))
    for suffix in (".gif", ".webp"):
        with Image.open(short_outputs[suffix]) as im:
            assert im.n_frames == N and im.size == (480, 480) and im.is_animated
            assert np.abs(np.asarray(im.convert("RGB")).astype(int) - first).mean() < 6
    with VideoReader(short_outputs[".gif"]) as r:
        assert sum(len(b) for b in r.batches(5)) == N


def test_every_video_output_is_labelled_unless_asked_not_to(short_outputs, videos, tmp_path, cli):
    for path in short_outputs.values():
        assert read_label(path) == LABEL, path
    for suffix in (".mp4", ".gif", ".webp"):
        out = tmp_path / f"plain{suffix}"
        transcode(videos / "liveportrait/d18.mp4", out, None, max_frames=2, **FAST)
        assert read_label(out) is None
    labelled = cli("inspect", short_outputs[".webm"])
    assert labelled.returncode == 0 and "model: facedancer-lite" in labelled.stdout


def test_batches_and_single_pass(videos):
    with VideoReader(videos / "liveportrait/d18.mp4", max_frames=10) as r:
        batches = list(r.batches(4))
        assert [b.shape for b in batches] == [(4, 480, 480, 3), (4, 480, 480, 3), (2, 480, 480, 3)]
        assert batches[0].dtype == np.uint8
        with pytest.raises(RuntimeError):
            next(iter(r))


def test_unreadable_videos_are_one_line_input_errors(videos, tmp_path):
    data = (videos / "liveportrait/d18.mp4").read_bytes()
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("not a video")
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])  # index at the end: nothing opens
    cases = {"empty.mp4": "empty", "text.mp4": "Invalid data", "cut.mp4": "Invalid data", "missing.mp4": "No such"}
    for name, why in cases.items():
        with pytest.raises(InputError) as e:
            transcode(tmp_path / name, tmp_path / "out.mp4", LABEL)
        assert why in one_line(e) and name in one_line(e)
    with pytest.raises(InputError, match="MP limit"):
        VideoReader(videos / "liveportrait/d18.mp4", max_pixels=480 * 479)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(set(cases) - {"missing.mp4"})


@pytest.mark.parametrize("container", [".mp4", ".mkv"])
def test_truncated_video_fails_midway_and_leaves_no_output(videos, tmp_path, container):
    full = remux(videos / "liveportrait/d18.mp4", tmp_path / f"full{container}", options={"movflags": "faststart"})
    data = full.read_bytes()
    cut = tmp_path / f"cut{container}"
    cut.write_bytes(data[: int(len(data) * 0.6)])  # index first (or none): the start decodes, the end is gone
    out = tmp_path / "out" / "swapped.mp4"
    with pytest.raises(InputError) as e:
        transcode(cut, out, LABEL, **FAST)
    assert "truncated" in one_line(e)
    assert not out.parent.exists()  # not even the folder made for it
    with pytest.warns(UserWarning, match="truncated"):
        kept = _transcode_allowing_truncation(cut, out)
    assert 80 < kept < 200 and decoded(out)[0] == kept


def _transcode_allowing_truncation(src, dst):
    with VideoReader(src, allow_truncated=True) as r, VideoWriter(dst, LABEL, like=r, **FAST) as w:
        for batch in r.batches(16):
            w.write(batch)
        return w.frames_written


def test_bad_outputs_are_one_line_output_errors_and_leave_nothing(videos, tmp_path):
    src = videos / "liveportrait/d18.mp4"
    (tmp_path / "file").write_text("")
    for target in (tmp_path / "out.avi", tmp_path / "file" / "out.mp4"):
        with pytest.raises(OutputError) as e:
            transcode(src, target, LABEL, max_frames=2)
        assert str(target) in one_line(e)
    with pytest.raises(OutputError, match="no frames"), VideoWriter(tmp_path / "o.mp4", LABEL, fps=25):
        pass
    with pytest.raises(KeyError), VideoReader(src) as r, VideoWriter(tmp_path / "o.mkv", LABEL, like=r, **FAST) as w:
        for i, frame in enumerate(r):
            w.write(frame)
            if i == 5:
                raise KeyError("a failure in the swap loop")
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_odd_sizes_and_the_encoder_fallback(videos, tmp_path, monkeypatch):
    crop = lambda batch: batch[:, :301, :201]  # noqa: E731
    transcode(videos / "liveportrait/d18.mp4", tmp_path / "odd.mp4", LABEL, crop, max_frames=3, **FAST)
    with av.open(str(tmp_path / "odd.mp4")) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (201, 301)
    monkeypatch.setattr(video_module, "has_encoder", lambda name: name != "libx264")
    transcode(videos / "liveportrait/d18.mp4", tmp_path / "mpeg4.mp4", LABEL, max_frames=N)
    with av.open(str(tmp_path / "mpeg4.mp4")) as c:
        assert c.streams.video[0].codec_context.name == "mpeg4"
    assert decoded(tmp_path / "mpeg4.mp4")[0] == N and read_label(tmp_path / "mpeg4.mp4") == LABEL


# --- issue 15, defect 3: animations keep every frame and its timing ----------------------------------------


def _durations(path):
    with Image.open(path) as im:
        out = []
        for i in range(getattr(im, "n_frames", 1)):
            im.seek(i)
            im.load()
            out.append(im.info.get("duration"))
        return out


def _animation(path, durations, size=(48, 40)):
    frames = [Image.new("RGB", size, (20 * i % 256, 128, 255 - 20 * i % 256)) for i in range(len(durations))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=list(durations), loop=0)
    return path


@pytest.mark.parametrize("suffix", [".webp", ".png"])
def test_animated_images_are_read_as_videos_with_their_timing(tmp_path, suffix):
    from facedancer.io import media_kind

    durations = [100, 200, 50, 100, 300]
    path = _animation(tmp_path / f"anim{suffix}", durations)
    assert media_kind(path) == "video"
    with VideoReader(path) as reader:
        frames = list(reader)
        stamps = [reader.pop_timestamp() for _ in frames]
    assert len(frames) == len(durations) and frames[0].shape == (40, 48, 3)
    assert [float(t * reader.time_base) for t in stamps] == [0.0, 0.1, 0.3, 0.35, 0.45]
    assert reader.info.frames == len(durations)
    assert media_kind(_animation(tmp_path / f"still{suffix}", [100])) == "image"


def test_our_own_animated_webp_round_trips_frames_and_timing(videos, tmp_path):
    """30 frames at 10 fps written as animated WebP, read back and written again: 30 frames, 100 ms each."""
    first = tmp_path / "first.webp"
    assert transcode(videos / "liveportrait/d18.mp4", first, LABEL, max_frames=30) == 30
    second = tmp_path / "second.webp"
    assert transcode(first, second, LABEL) == 30
    assert _durations(first) == _durations(second) and len(_durations(second)) == 30
    assert sum(_durations(second)) == pytest.approx(1000, abs=30)  # 30 frames of the 30 fps clip
    assert read_label(second) is not None
