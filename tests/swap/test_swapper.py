import shutil

import av
import numpy as np
import pytest
import torch

from facedancer.errors import NoFaceError
from facedancer.faces import BlendConfig, YuNetDetector, face_mask, transform_points
from facedancer.faces.align import alignment_matrix, footprint, unwarp
from facedancer.identity import from_uint8, load_encoder
from facedancer.io import VideoReader, read_image, read_label, write_image
from facedancer.swap import FaceSwapper, Selection
from facedancer.swap.video import MAX_QUEUED_FRAMES

NO_COLOUR = BlendConfig(colour=False)  # painted test faces must stay their colour


def _alpha(frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The default blend mask of one face, in frame coordinates (0 where the frame must be untouched)."""
    m = alignment_matrix(landmarks, 256)
    mask = face_mask("landmarks", 256, transform_points(landmarks, m))
    alpha = np.zeros(frame.shape[:2], np.float32)
    rows, cols = footprint(m, 256, *frame.shape[:2])
    alpha[rows, cols] = unwarp(mask, m, (rows, cols))
    return alpha


def _first_frame(path, index=0):
    with VideoReader(path) as reader:
        for i, frame in enumerate(reader):
            if i == index:
                return frame
    raise AssertionError("clip too short")


@pytest.mark.parametrize("clip", [None, "3ddfa/obama.mp4"])
def test_identity_generator_pastes_back_exactly(echo, lfw_pair, shared, clip):
    frame = read_image(lfw_pair[1]) if clip is None else _first_frame(shared / "data/videos" / clip)
    out = FaceSwapper(echo).swap_image(frame, frame)
    alpha = _alpha(frame, YuNetDetector().detect(frame).landmarks[0])
    diff = np.abs(out.astype(np.float64) - frame).mean(axis=2)
    outside, inside = alpha == 0, alpha > 0
    assert inside.sum() > 2000  # the face region is really there
    assert diff[outside].mean() < 1 / 255
    inside_mean = (diff * alpha).sum() / alpha.sum()
    print(f"echo paste-back: outside {diff[outside].mean():.5f}, inside (mask-weighted) {inside_mean:.3f} levels")
    assert inside_mean < 2.0  # two bilinear resamplings of the face: frame -> crop -> frame


def test_classical_swap_moves_identity_to_the_source(lfw_pair):
    source, target = (read_image(p) for p in lfw_pair)
    out = FaceSwapper.from_pretrained("classical").swap_image(source, target)
    encoder, det = load_encoder("sface"), YuNetDetector()

    def emb(img):
        from facedancer.faces import align

        crop, _ = align(img, det.detect(img).landmarks[0], 112)
        z = encoder(from_uint8(crop))[0].detach().numpy()
        return z / np.linalg.norm(z)

    z_s, z_t, z_o = emb(source), emb(target), emb(out)
    print(f"SFace cosine to source: target {z_t @ z_s:.3f}, swap {z_o @ z_s:.3f}")
    assert z_o @ z_s > z_t @ z_s + 0.2
    assert np.array_equal(out[:40], target[:40])  # far from the face nothing changes


def test_generator_model_end_to_end_with_label(random_model, lfw_pair, tmp_path):
    swapper = FaceSwapper.from_pretrained(random_model)
    report = swapper.swap_file(lfw_pair[0], lfw_pair[1], tmp_path / "out.jpg")
    assert report.faces_swapped == 1 and report.frames == 1
    out = read_image(tmp_path / "out.jpg")
    assert out.shape == read_image(lfw_pair[1]).shape
    label = read_label(tmp_path / "out.jpg")
    assert label is not None and "random-init" in str(label)


def test_source_without_a_face_is_a_clear_error(echo, tmp_path):
    blank = tmp_path / "wall.png"
    write_image(blank, np.full((200, 200, 3), 128, np.uint8), None)
    with pytest.raises(NoFaceError, match="no face found in the source image"):
        FaceSwapper(echo).source(blank)


@pytest.fixture(scope="module")
def crowd(shared):
    """A dirtydancing frame with many faces (the crowd scene at ~frame 150)."""
    frame = _first_frame(shared / "data/videos/ghost/dirtydancing.mp4", 150)
    found = YuNetDetector().detect(frame)
    assert len(found) >= 5
    return frame, found


def _changed_faces(out, frame, found):
    """Which detected faces were painted (their centre pixel changed)."""
    centres = found.landmarks[:, 2].round().astype(int)  # nose tips
    return [i for i, (x, y) in enumerate(centres) if np.abs(out[y, x].astype(int) - frame[y, x]).sum() > 60]


def test_face_selection_on_a_crowd(paint, crowd, lfw_pair, tmp_path):
    frame, found = crowd
    swapper = FaceSwapper(paint, blend=NO_COLOUR)
    src = swapper.source(lfw_pair[0])
    everyone = _changed_faces(swapper.swap_image(src, frame), frame, found)
    assert len(everyone) >= len(found) - 1  # tiny faces may fall under the mask's centre threshold
    areas = (found.boxes[:, 2] - found.boxes[:, 0]) * (found.boxes[:, 3] - found.boxes[:, 1])
    assert _changed_faces(swapper.swap_image(src, frame, Selection("largest")), frame, found) == [int(areas.argmax())]
    leftmost = int(np.argmin(found.boxes[:, 0] + found.boxes[:, 2]))
    assert _changed_faces(swapper.swap_image(src, frame, Selection("index", index=0)), frame, found) == [leftmost]


def test_reference_pairs_swap_each_person_with_their_own_source(paint, crowd, lfw_pair, tmp_path):
    frame, found = crowd
    big = np.argsort(-(found.boxes[:, 2] - found.boxes[:, 0]))[:2]  # the two largest faces
    refs = []
    for k, i in enumerate(big):
        x1, y1, x2, y2 = found.boxes[i].astype(int)
        pad = (x2 - x1) // 2
        ref = frame[max(y1 - pad, 0) : y2 + pad, max(x1 - pad, 0) : x2 + pad]
        write_image(tmp_path / f"ref{k}.png", ref, None)
        refs.append(tmp_path / f"ref{k}.png")
    swapper = FaceSwapper(paint, blend=NO_COLOUR)
    sources = [swapper.source(lfw_pair[0]), swapper.source(lfw_pair[1])]  # colours red, blue
    selection = Selection("reference", references=np.stack([swapper.reference(r) for r in refs]))
    out = swapper.swap_image(sources, frame, selection)
    assert sorted(_changed_faces(out, frame, found)) == sorted(big.tolist())
    for k, i in enumerate(big):
        x, y = found.landmarks[i, 2].round().astype(int)
        assert tuple(out[y, x]) == paint.colours[k]


def test_swap_faces_at_given_points_is_the_swap_of_swap_image(paint, crowd, lfw_pair):
    """The public "swap the faces at these points" step: what swap_image does once it has found the faces."""
    frame, found = crowd
    before = frame.copy()
    swapper = FaceSwapper(paint, blend=NO_COLOUR)
    sources = [swapper.source(lfw_pair[0]), swapper.source(lfw_pair[1])]  # colours red, blue
    out = swapper.swap_faces(frame, found.landmarks, sources[0])
    assert np.array_equal(out, swapper.swap_image(sources[0], frame))
    assert np.array_equal(frame, before)  # the caller's frame is left as it was
    # each face to the source it is assigned, or left alone (None)
    which = [None, 1, 0] + [None] * (len(found) - 3)
    out = swapper.swap_faces(frame, found.landmarks, sources, assigned=which)
    assert _changed_faces(out, frame, found) == [1, 2]
    for i, k in ((1, 1), (2, 0)):
        x, y = found.landmarks[i, 2].round().astype(int)
        assert tuple(out[y, x]) == paint.colours[k]
    assert np.array_equal(swapper.swap_faces(frame, found.landmarks[:0], sources), frame)


def test_swap_frames_shares_generator_batches_across_frames(paint, crowd, lfw_pair):
    frame, found = crowd
    swapper = FaceSwapper(paint, blend=NO_COLOUR)
    source = swapper.source(lfw_pair[0])
    calls = []
    original = paint.swap
    paint.swap = lambda crops, sources: calls.append(len(crops)) or original(crops, sources)
    frames = [frame, frame[:, ::-1].copy(), frame]
    points = [found.landmarks[:2], found.landmarks[:1], found.landmarks[:0]]
    out = swapper.swap_frames(frames, points, source, batch_size=2)
    assert calls == [2, 1] and len(out) == 3
    assert np.array_equal(out[0], swapper.swap_faces(frame, found.landmarks[:2], source))
    assert np.array_equal(out[2], frame)


def test_video_keeps_frame_count_fps_audio_and_label(random_model, lfw_pair, shared, tmp_path):
    clip = shared / "data/videos/video_retalking/5.mp4"
    out = tmp_path / "swap.mp4"
    report = FaceSwapper.from_pretrained(random_model).swap_video(lfw_pair[0], clip, out)
    with av.open(str(clip)) as a, av.open(str(out)) as b:
        frames_in = sum(1 for _ in a.decode(video=0))
        frames_out = sum(1 for _ in b.decode(video=0))
        assert b.streams.video[0].average_rate == a.streams.video[0].average_rate
        assert len(b.streams.audio) == 1
    assert frames_out == frames_in == report.frames
    assert report.faces_swapped >= frames_in - 5 and report.frames_without_faces <= 5
    assert read_label(out) is not None
    assert set(report.seconds) >= {"decode", "detect", "align", "generate", "blend", "encode"}


def test_multi_face_video_batches_faces_across_frames(paint, lfw_pair, shared, tmp_path):
    swapper = FaceSwapper(paint, blend=NO_COLOUR, batch_size=8)
    calls = []
    original = paint.swap

    def counting(crops, sources):
        calls.append(len(crops))
        return original(crops, sources)

    paint.swap = counting
    report = swapper.swap_video(
        lfw_pair[0], shared / "data/videos/ghost/dirtydancing.mp4", tmp_path / "o.mkv", max_frames=40
    )
    assert report.frames == 40
    with av.open(str(tmp_path / "o.mkv")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 40 and len(c.streams.audio) == 1
    # single-face frames were gathered into full batches rather than one generator call per frame
    assert max(calls) == 8 and len(calls) <= report.faces_swapped // 8 + 40 // MAX_QUEUED_FRAMES + 1


def test_progress_callback_counts_every_frame(echo, lfw_pair, shared, tmp_path):
    """A callable ``progress`` (a web page's bar) hears of each frame as it is written, in order."""
    told: list[int] = []
    report = FaceSwapper(echo, batch_size=2).swap_video(
        lfw_pair[0],
        shared / "data/videos/video_retalking/5.mp4",
        tmp_path / "o.mp4",
        progress=told.append,
        max_frames=7,
    )
    assert sum(told) == report.frames == 7 and len(told) > 1


def test_folder_finishes_good_files_and_reports_bad_ones(paint, lfw_pair, tmp_path):
    src = tmp_path / "in"
    (src / "a" / "b").mkdir(parents=True)
    for i, p in enumerate([lfw_pair[1], lfw_pair[0]]):
        (src / ("a/b" if i else "a") / f"face{i}.jpg").write_bytes(p.read_bytes())
    (src / "broken.jpg").write_bytes(lfw_pair[1].read_bytes()[:3000])
    (src / "notes.txt").write_text("not an image")
    result = FaceSwapper(paint, blend=NO_COLOUR).swap_folder(lfw_pair[0], src, tmp_path / "out")
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in result.written) == [
        "a/b/face1.jpg",
        "a/face0.jpg",
    ]
    assert sorted(p.name for p, _ in result.failed) == ["broken.jpg", "notes.txt"]
    assert not (tmp_path / "out" / "broken.jpg").exists()
    assert all(read_label(p) is not None for p in result.written)


# --- issue 15: reliability ---------------------------------------------------------------------------------


class _StubDetector:
    """Returns fixed detections (of the frame it was made for): faces placed exactly where a test wants them."""

    def __init__(self, found) -> None:
        self.found = found

    def detect(self, image):
        return self.found


def test_colour_matching_of_a_later_face_reads_its_own_target_crop(lfw_pair):
    """Defect 12: the second face's colour statistics come from the original frame, not from pixels pasted for
    the first face (here two overlapping faces; the first is painted black)."""
    from facedancer.faces import Detections

    frame = read_image(lfw_pair[1])
    face = YuNetDetector().detect(frame).select([0])
    shift = np.array([0.35 * (face.boxes[0, 2] - face.boxes[0, 0]), 0], np.float32)
    two = Detections(
        np.concatenate([face.boxes, face.boxes + np.tile(shift, 2)]),
        np.concatenate([face.scores, face.scores]),
        np.concatenate([face.landmarks, face.landmarks + shift]),
    )

    class BlackThenInverted:  # the first face of a batch black, the others their crop inverted
        name, crop_size, device = "test", 256, torch.device("cpu")

        def source(self, image, landmarks):
            return 0

        def swap(self, crops, sources):
            out = 255 - crops
            if len(crops) == 2:
                out[0] = 0
            return out

    both = FaceSwapper(BlackThenInverted(), _StubDetector(two), batch_size=8).swap_image(frame, frame)
    alone = FaceSwapper(BlackThenInverted(), _StubDetector(two.select([1])), batch_size=8).swap_image(frame, frame)
    second = _alpha(frame, two.landmarks[1]) > 0.999  # pixels that are the second face's alone
    assert second.sum() > 2000
    diff = np.abs(both[second].astype(int) - alone[second]).max()
    assert diff == 0, f"the second face changed by up to {diff} levels because of the first"


def test_video_selection_by_size_is_decided_per_track(paint, lfw_pair, tmp_path):
    """Defect 11: with --faces largest, the face chosen when it appears stays chosen while its track lasts, even
    when the other face grows larger (two people side by side, sizes crossing halfway)."""
    import cv2

    from facedancer.io import VideoWriter

    faces = [read_image(p) for p in lfw_pair]
    clip = tmp_path / "crossing.mp4"
    n = 12
    with VideoWriter(clip, None, fps=10) as writer:
        for i in range(n):
            canvas = np.full((320, 640, 3), 200, np.uint8)
            for k, (face, x0) in enumerate(zip(faces, (20, 340), strict=True)):
                size = round(300 - 60 * i / (n - 1)) if k == 0 else round(240 + 60 * i / (n - 1))
                canvas[10 : 10 + size, x0 : x0 + size] = cv2.resize(face, (size, size))
            writer.write(canvas)
    out = tmp_path / "out.mp4"
    FaceSwapper(paint, blend=NO_COLOUR).swap_video(lfw_pair[0], clip, out, Selection("largest"))
    with VideoReader(out) as reader:
        red = [(f[..., 0] > 200) & (f[..., 1] < 80) & (f[..., 2] < 80) for f in reader]
    painted = [tuple(bool(half.sum() > 1000) for half in np.split(r, 2, axis=1)) for r in red]
    # the left face was the larger one when both appeared: it alone is swapped in every frame
    assert painted == [(True, False)] * n


def test_nothing_swapped_writes_nothing_and_says_why(echo, lfw_pair, tmp_path, small_clip):
    """Defect 6: an output in which no face was swapped is not written (it would be an unchanged copy
    labelled as a face swap); the error says how many faces there were."""
    from facedancer.errors import NothingSwappedError

    wall = tmp_path / "wall.png"
    write_image(wall, np.full((240, 320, 3), 90, np.uint8), None)
    swapper = FaceSwapper(echo)
    with pytest.raises(NothingSwappedError, match="no face found"):
        swapper.swap_file(lfw_pair[0], wall, tmp_path / "out.png")
    with pytest.raises(NothingSwappedError, match="has 1 face"):
        swapper.swap_file(lfw_pair[0], lfw_pair[1], tmp_path / "out.png", Selection("index", index=2))
    with pytest.raises(NothingSwappedError, match="at most 1 face"):
        swapper.swap_file(lfw_pair[0], small_clip, tmp_path / "out.mp4", Selection("index", index=3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wall.png"]


def test_labels_name_the_iptc_term_of_each_swapper(random_model, lfw_pair, tmp_path):
    """Defect 6: a generator's face in a real photo is compositeWithTrainedAlgorithmicMedia; the classical swap
    (a warp and Poisson blend of real pixels, no trained model) is compositeSynthetic."""
    iptc = "http://cv.iptc.org/newscodes/digitalsourcetype/"
    for model, term in ((random_model, "compositeWithTrainedAlgorithmicMedia"), ("classical", "compositeSynthetic")):
        out = tmp_path / f"{term}.png"
        FaceSwapper.from_pretrained(model).swap_file(lfw_pair[0], lfw_pair[1], out)
        label = read_label(out)
        assert label is not None and label.source_type == iptc + term
    assert "made by AI" not in read_label(tmp_path / "compositeSynthetic.png").text


def test_folder_of_unwritable_suffixes_is_written_as_png_and_mp4(paint, lfw_pair, small_clip, tmp_path):
    """Defect 9: BMP, TIFF and AVI inputs are written as PNG and MP4 beside the others, and the report says so;
    a name that would collide keeps its old suffix before the new one."""
    from PIL import Image

    src = tmp_path / "in"
    src.mkdir()
    photo = Image.open(lfw_pair[1])
    photo.save(src / "a.bmp")
    photo.save(src / "b.tif")
    photo.save(src / "c.png")
    photo.save(src / "c.tiff")
    shutil.copy(small_clip, src / "clip.m4v")
    result = FaceSwapper(paint, blend=NO_COLOUR).swap_folder(lfw_pair[0], src, tmp_path / "out")
    assert result.failed == []
    names = sorted(p.name for p in result.written)
    assert names == ["a.png", "b.png", "c.png", "c.tiff.png", "clip.mp4"]
    assert sorted((p.name, q.name) for p, q in result.renamed) == [
        ("a.bmp", "a.png"),
        ("b.tif", "b.png"),
        ("c.tiff", "c.tiff.png"),
        ("clip.m4v", "clip.mp4"),
    ]
    assert all(read_label(p) is not None for p in result.written)


@pytest.mark.parametrize("how", ["same", "dotted", "symlink", "folder-inside"])
def test_outputs_never_overwrite_inputs(echo, lfw_pair, tmp_path, how):
    """Defect 1 (library side): the swap API refuses an output that is one of its inputs, however spelled."""
    from facedancer.errors import OutputError

    target = tmp_path / "t.jpg"
    target.write_bytes(lfw_pair[1].read_bytes())
    swapper = FaceSwapper(echo)
    with pytest.raises(OutputError, match="overwrite|inside"):
        if how == "same":
            swapper.swap_file(lfw_pair[0], target, target)
        elif how == "dotted":
            swapper.swap_file(lfw_pair[0], target, tmp_path / "." / "t.jpg")
        elif how == "symlink":
            (tmp_path / "l.jpg").symlink_to(target)
            swapper.swap_file(lfw_pair[0], tmp_path / "l.jpg", target)
        else:
            swapper.swap_folder(lfw_pair[0], tmp_path, tmp_path / "out")
    assert target.read_bytes() == lfw_pair[1].read_bytes()


def test_devices_are_checked_before_any_work(monkeypatch):
    """Defect 2: an unknown device, or a GPU index beyond the GPUs there are, is one ConfigError."""
    from facedancer.errors import ConfigError
    from facedancer.swap.swapper import resolve_device

    for bad in ("foo", "", "cuda:-1", "meta", "mps"):
        with pytest.raises(ConfigError, match="--device"):
            resolve_device(bad)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ConfigError, match="there are 2 CUDA GPUs"):
        resolve_device("cuda:2")
