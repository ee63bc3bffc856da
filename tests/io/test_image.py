import numpy as np
import pytest
from PIL import Image

from facedancer.errors import InputError, OutputError
from facedancer.io import ProvenanceLabel, decode_image, read_image, read_label, write_image
from facedancer.io.formats import media_kind, output_suffix
from support import png_with_size

LABEL = ProvenanceLabel(model="facedancer-lite", note="test")


@pytest.fixture(scope="module")
def photo(lfw):
    return lfw / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg"


@pytest.fixture(scope="module")
def rgb(photo):
    return np.asarray(Image.open(photo).convert("RGB"))


def one_line_input_error(path, **kwargs) -> str:
    with pytest.raises(InputError) as e:
        read_image(path, **kwargs)
    message = str(e.value)
    assert "\n" not in message and str(path) in message
    return message


def test_reads_lfw_photo_as_rgb_uint8(photo, rgb):
    image = read_image(photo)
    assert image.dtype == np.uint8 and image.shape == (250, 250, 3) and image.flags.writeable
    np.testing.assert_array_equal(image, rgb)


def test_exif_orientation_is_applied(tmp_path, rgb):
    crop = rgb[:, :180]  # not square, so a rotation shows in the shape
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: display turns it 90 degrees clockwise
    Image.fromarray(crop).save(tmp_path / "o.jpg", exif=exif, quality=100)
    image = read_image(tmp_path / "o.jpg")
    assert image.shape == (180, 250, 3)
    assert np.abs(image.astype(int) - np.rot90(crop, -1)).mean() < 3


def test_grayscale_palette_alpha_and_16_bit_become_rgb(tmp_path, rgb):
    gray = np.asarray(Image.fromarray(rgb).convert("L"))
    Image.fromarray(gray).save(tmp_path / "gray.png")
    np.testing.assert_array_equal(read_image(tmp_path / "gray.png"), np.repeat(gray[..., None], 3, 2))

    Image.fromarray(rgb).quantize(64).save(tmp_path / "palette.png")
    assert np.abs(read_image(tmp_path / "palette.png").astype(int) - rgb).mean() < 8

    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    rgba[:50, :, 3] = 0  # transparent band flattens onto white
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    flat = read_image(tmp_path / "alpha.png")
    assert (flat[:50] == 255).all()
    np.testing.assert_array_equal(flat[50:], rgb[50:])

    sixteen = gray.astype(np.uint16) * 257  # scaled to 16 bits, must come back scaled, not clipped at 255
    Image.fromarray(sixteen).save(tmp_path / "g16.png")
    assert Image.open(tmp_path / "g16.png").mode == "I;16"
    np.testing.assert_array_equal(read_image(tmp_path / "g16.png")[..., 0], gray)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_image_is_one_line_input_error(tmp_path, rgb, suffix):
    Image.fromarray(rgb).save(tmp_path / f"full{suffix}")
    data = (tmp_path / f"full{suffix}").read_bytes()
    (tmp_path / f"cut{suffix}").write_bytes(data[: len(data) // 2])
    assert "truncated" in one_line_input_error(tmp_path / f"cut{suffix}")


def test_zero_byte_missing_and_unsupported_files(tmp_path, rgb, shared):
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert "empty" in one_line_input_error(tmp_path / "empty.jpg")
    assert "No such file" in one_line_input_error(tmp_path / "missing.png")
    Image.fromarray(rgb).save(tmp_path / "icon.tga")  # a real image in a format we do not read
    assert "supported format" in one_line_input_error(tmp_path / "icon.tga")
    video = shared / "data/videos/liveportrait/d18.mp4"
    assert "supported format" in one_line_input_error(video)


def test_decompression_bomb_refused_from_header(tmp_path, photo):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_with_size(12_000, 12_000))  # 144 MP claimed in 80 bytes
    assert bomb.stat().st_size < 200
    assert "decompression bomb" in one_line_input_error(bomb)
    assert "MP limit" in one_line_input_error(photo, max_pixels=250 * 249)  # the cap is configurable
    assert read_image(photo, max_pixels=250 * 250).shape == (250, 250, 3)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".jpeg", ".webp"])
def test_write_image_round_trip_with_label(tmp_path, rgb, suffix):
    out = write_image(tmp_path / f"out{suffix}", rgb, LABEL)
    back = read_image(out)
    tolerance = 0 if suffix == ".png" else 4
    assert np.abs(back.astype(int) - rgb).mean() <= tolerance
    assert read_label(out) == LABEL
    assert [p.name for p in tmp_path.iterdir()] == [f"out{suffix}"]  # no temporary file left


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp"])
def test_label_none_writes_an_unlabelled_image(tmp_path, rgb, suffix):
    assert read_label(write_image(tmp_path / f"plain{suffix}", rgb, None)) is None


def test_unwritable_output_is_one_line_output_error(tmp_path, rgb):
    (tmp_path / "file").write_text("not a folder")
    (tmp_path / "folder.png").mkdir()
    for target in (tmp_path / "file" / "out.png", tmp_path / "folder.png", tmp_path / "out.tga"):
        with pytest.raises(OutputError) as e:
            write_image(target, rgb, LABEL)
        assert "\n" not in str(e.value) and str(target) in str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder.png"]
    assert list((tmp_path / "folder.png").iterdir()) == []


def test_media_kind_by_suffix():
    assert media_kind("a/b.JPG") == "image" and media_kind("x.webp") == "image"
    assert media_kind("clip.MP4") == "video" and media_kind("loop.gif") == "video"
    assert media_kind("notes.txt") is None


def test_output_suffix_is_the_own_suffix_else_the_kinds_fallback(tmp_path):
    """One rule for the CLI's folders and the web UI: an animated PNG is written as an animated WebP."""
    frames = [Image.new("RGB", (32, 24), (40 * i, 90, 200)) for i in range(3)]
    for name in ("anim.png", "anim.webp"):
        frames[0].save(tmp_path / name, save_all=True, append_images=frames[1:], duration=80, loop=0)
    frames[0].save(tmp_path / "still.png")
    assert output_suffix(tmp_path / "anim.png") == ".webp" and output_suffix(tmp_path / "anim.webp") == ".webp"
    assert output_suffix(tmp_path / "still.png") == ".png" and output_suffix("a/photo.JPG") == ".JPG"
    assert output_suffix("photo.bmp") == ".png" and output_suffix("photo.TIFF") == ".png"
    assert output_suffix("clip.avi") == ".mp4" and output_suffix("clip.webm") == ".webm"
    assert output_suffix("notes.txt") == ".txt"
    assert output_suffix(tmp_path / "still.png", "video") == ".webp"  # a kind already known is not looked up


def test_decode_image_reads_bytes_as_read_image_reads_files(tmp_path, photo, rgb):
    """A training set's crops (a folder or a tar shard's members) come through the same reader as photos."""
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    Image.fromarray(rgb[:, :180]).save(rotated, exif=exif)
    for path in (photo, rotated):
        np.testing.assert_array_equal(decode_image(path.read_bytes(), "member.jpg"), read_image(path))
    for data, says in ((b"", "the file is empty"), (b"not an image", "not an image in a supported format")):
        with pytest.raises(InputError, match=f"^cannot read image shard.tar/member.png: {says}"):
            decode_image(data, "shard.tar/member.png")
    with pytest.raises(InputError, match="truncated or corrupt"):
        decode_image(photo.read_bytes()[:3000], "cut.jpg")
    with pytest.raises(InputError, match="above the 0.01 MP limit"):
        decode_image(photo.read_bytes(), "big.jpg", max_pixels=10_000)
