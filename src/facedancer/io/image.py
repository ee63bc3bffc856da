"""Read any common photo as upright RGB uint8, and write labelled images atomically.

Every image facedancer reads goes through here: user photos (:func:`read_image`), and bytes already in
memory such as a training set's crops from a folder or a tar shard (:func:`decode_image`).

Reading refuses, with one line naming the file and the reason, anything that is not a complete image
in a supported format, and images above a pixel cap checked from the header before any decoding
(decompression bombs). Writing always goes through :func:`facedancer.atomic.atomic_path`.
"""

from __future__ import annotations

import os
import warnings
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import (
    AvifImagePlugin,
    Image,
    ImageOps,
    PngImagePlugin,
    TiffImagePlugin,
    UnidentifiedImageError,
    WebPImagePlugin,
)

from facedancer.atomic import atomic_path
from facedancer.errors import InputError, OutputError
from facedancer.io.failures import reason, require_file
from facedancer.io.provenance import ProvenanceLabel

DEFAULT_MAX_PIXELS = 100_000_000
# Image.open(formats=...) only sees plugins already imported (the JPEG one also opens MPO photos)
_PLUGINS = (AvifImagePlugin, TiffImagePlugin, WebPImagePlugin)
READ_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF", "AVIF")
WRITE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_BACKGROUND = (255, 255, 255)  # transparent pixels are flattened onto white


def read_image(path: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """The image at ``path`` as RGB uint8 (H, W, 3), turned upright by its EXIF orientation.

    Grayscale, palette and 16-bit images are converted (16-bit scaled, not clipped); alpha is
    flattened onto white. Pillow's own bomb limit (about 179 MP) also applies above ``max_pixels``.
    """
    path = Path(path)
    require_file(path, "image")
    return _decode(path, path, max_pixels)


def decode_image(data: bytes, name: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An encoded image already in memory (a member of a tar shard, a training crop) read exactly as
    :func:`read_image` reads a file; ``name`` says where it came from in errors."""
    if not data:
        raise InputError(f"cannot read image {name}: the file is empty")
    return _decode(BytesIO(data), name, max_pixels)


def _decode(source: Path | BytesIO, name: str | os.PathLike[str], max_pixels: int) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own cap decides below
            image = Image.open(source, formats=READ_FORMATS)
    except UnidentifiedImageError:
        raise InputError(
            f"cannot read image {name}: not an image in a supported format ({', '.join(READ_FORMATS)})"
        ) from None
    except Image.DecompressionBombError as e:
        raise InputError(f"cannot read image {name}: refused as a possible decompression bomb ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise InputError(f"cannot read image {name}: {reason(e)}") from None
    with image:
        width, height = image.size
        if width * height > max_pixels:
            raise InputError(
                f"cannot read image {name}: {width}x{height} is {width * height / 1e6:.0f} MP, above the "
                f"{max_pixels / 1e6:g} MP limit (a possible decompression bomb)"
            )
        try:
            return to_rgb(ImageOps.exif_transpose(image))
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise InputError(f"cannot read image {name}: truncated or corrupt ({reason(e)})") from None


def to_rgb(image: Image.Image) -> np.ndarray:
    """A Pillow image of any mode as RGB uint8 (H, W, 3): 16-bit scaled, alpha flattened onto white."""
    if image.mode in _SIXTEEN_BIT_MODES:
        # Pillow's I;16 -> L conversion clips at 255 instead of scaling
        gray = np.round(np.clip(np.asarray(image, dtype=np.float32), 0, 65535) / 257).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode == "F":
        raise ValueError("32-bit float pixels have no defined range")
    if image.has_transparency_data:
        flat = Image.new("RGBA", image.size, (*_BACKGROUND, 255))
        flat.alpha_composite(image.convert("RGBA"))
        image = flat
    return np.array(image.convert("RGB"), dtype=np.uint8)


def write_image(
    path: str | os.PathLike[str], rgb: np.ndarray, label: ProvenanceLabel | None, *, quality: int = 95
) -> Path:
    """Write RGB uint8 (H, W, 3) as PNG, JPEG or WebP (by suffix), atomically, with ``label`` as XMP.

    ``label=None`` is the only way to write an unlabelled image. ``quality`` applies to JPEG and WebP.
    """
    path = Path(path)
    image_format = WRITE_FORMATS.get(path.suffix.lower())
    if image_format is None:
        raise OutputError(
            f"cannot write {path}: unsupported image format {path.suffix!r} (use {', '.join(WRITE_FORMATS)})"
        )
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 (H, W, 3) image, got {rgb.dtype} {rgb.shape}")
    options: dict[str, object] = {} if image_format == "PNG" else {"quality": quality}
    if label is not None:
        if image_format == "PNG":  # Pillow has no xmp= for PNG; the iTXt key is the XMP standard's
            info = PngImagePlugin.PngInfo()
            info.add_itxt("XML:com.adobe.xmp", label.xmp().decode(), zip=False)
            options["pnginfo"] = info
        else:
            options["xmp"] = label.xmp()
    try:
        with atomic_path(path) as tmp:
            Image.fromarray(rgb).save(tmp, format=image_format, **options)
    except OSError as e:
        raise OutputError(f"cannot write {path}: {reason(e)}") from None
    return path
