import av
import numpy as np
import pytest

from facedancer.errors import NoFaceError
from facedancer.faces import BlendConfig, YuNetDetector, face_mask, transform_points
from facedancer.faces.align import alignment_matrix, footprint, unwarp
from facedancer.identity import from_uint8, load_encoder
from facedancer.io import VideoReader, read_image, read_label, write_image
from facedancer.swap import FaceSwapper, Selection
from facedancer.swap.swapper import MAX_QUEUED_FRAMES

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
