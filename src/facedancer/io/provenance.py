"""Label every output as synthetic, in the metadata each format's own tools read.

Images carry an XMP packet with the IPTC digital source type of the output (the term C2PA, Google and Meta
read) and a sentence naming facedancer and the model; MP4/MOV/MKV/WebM carry the same sentence as the
``comment`` tag and the IPTC term under ``digital_source_type``; GIF carries the sentence in a comment
extension. The sentence is both for people and machine-readable, so one parser reads the label back from
every format.

A face swap is a composite: a real photo or video with a made face pasted in. A trained generator's face
makes it ``compositeWithTrainedAlgorithmicMedia``; the classical swap (the source's own pixels warped and
Poisson-blended, no trained model) makes it ``compositeSynthetic``. The sentence says which.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import av
from PIL import Image, UnidentifiedImageError, WebPImagePlugin

from facedancer import __version__
from facedancer.errors import InputError
from facedancer.io.failures import reason, require_file
from facedancer.io.formats import STILL_IMAGE_DEMUXERS

IPTC_DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/"
TRAINED_ALGORITHMIC_MEDIA = IPTC_DIGITAL_SOURCE_TYPE + "trainedAlgorithmicMedia"
COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA = IPTC_DIGITAL_SOURCE_TYPE + "compositeWithTrainedAlgorithmicMedia"
ALGORITHMIC_MEDIA = IPTC_DIGITAL_SOURCE_TYPE + "algorithmicMedia"
COMPOSITE_SYNTHETIC = IPTC_DIGITAL_SOURCE_TYPE + "compositeSynthetic"
#: the IPTC terms that mean "made or changed by a model or an algorithm", each as ``facedancer inspect`` explains it
SOURCE_TYPE_MEANINGS = {
    TRAINED_ALGORITHMIC_MEDIA: "made by a trained model (generative AI)",
    COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA: "real media with parts made by a trained model (generative AI)",
    ALGORITHMIC_MEDIA: "made by an algorithm, no trained model",
    COMPOSITE_SYNTHETIC: "real media with synthetic parts made by an algorithm, no trained model",
}
SYNTHETIC_SOURCE_TYPES = frozenset(SOURCE_TYPE_MEANINGS)
_TRAINED = (TRAINED_ALGORITHMIC_MEDIA, COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA)
#: how the label's sentence starts: whether a trained model (AI) made the synthetic part
_HEADLINES = ("Synthetic media made by AI", "Synthetic media made by an algorithm (no AI model)")
VIDEO_SOURCE_TYPE_TAG = "digital_source_type"
LABELLED_IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
_PLUGINS = (WebPImagePlugin,)  # Image.open(formats=...) only sees plugins already imported

_NS = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "Iptc4xmpExt": "http://iptc.org/std/Iptc4xmpExt/2008-02-29/",
    "dc": "http://purl.org/dc/elements/1.1/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
}
_MAX_XMP_BYTES = 1 << 20
_TEXT = re.compile(
    rf"(?:{'|'.join(map(re.escape, _HEADLINES))}): faces swapped with (?P<tool>\S+) (?P<version>\S+), "
    r'model (?P<model>"(?:[^"\\]|\\.)*") \(IPTC digital source type (?P<source>\S+)\)\.'
    r"(?: Note: (?P<note>.*))?",
    re.DOTALL,
)


@dataclass(frozen=True)
class ProvenanceLabel:
    """Who made an output and that it is synthetic; ``note`` is free text added to the sentence."""

    model: str
    note: str = ""
    tool: str = "facedancer"
    version: str = __version__
    source_type: str = TRAINED_ALGORITHMIC_MEDIA

    @property
    def text(self) -> str:
        """The one-sentence label that people read and :meth:`from_text` parses back."""
        headline = _HEADLINES[0] if self.source_type in _TRAINED else _HEADLINES[1]
        text = (
            f"{headline}: faces swapped with {self.tool} {self.version}, "
            f"model {json.dumps(self.model)} (IPTC digital source type {self.source_type})."
        )
        return f"{text} Note: {self.note}" if self.note else text

    @classmethod
    def from_text(cls, text: str) -> ProvenanceLabel | None:
        if not (m := _TEXT.search(text)) or m["source"] not in SYNTHETIC_SOURCE_TYPES:
            return None
        return cls(json.loads(m["model"]), (m["note"] or "").strip(), m["tool"], m["version"], m["source"])

    def xmp(self) -> bytes:
        """An XMP packet for PNG (iTXt), JPEG (APP1) and WebP (``XMP `` chunk)."""
        ns = " ".join(f'xmlns:{k}="{v}"' for k, v in _NS.items() if k != "x")
        return (
            '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
            f'<x:xmpmeta xmlns:x="{_NS["x"]}">\n <rdf:RDF {ns}>\n  <rdf:Description rdf:about="">\n'
            f"   <Iptc4xmpExt:DigitalSourceType>{escape(self.source_type)}</Iptc4xmpExt:DigitalSourceType>\n"
            f"   <xmp:CreatorTool>{escape(f'{self.tool} {self.version}')}</xmp:CreatorTool>\n"
            f'   <dc:description><rdf:Alt><rdf:li xml:lang="x-default">{escape(self.text)}</rdf:li></rdf:Alt>'
            "</dc:description>\n  </rdf:Description>\n </rdf:RDF>\n</x:xmpmeta>\n"
            '<?xpacket end="w"?>'
        ).encode()

    @classmethod
    def from_xmp(cls, packet: bytes | str) -> ProvenanceLabel | None:
        """The label in an XMP packet (ours, or another tool's with a synthetic source type)."""
        if isinstance(packet, str):
            packet = packet.encode()
        if len(packet) > _MAX_XMP_BYTES:
            return None
        try:
            root = ET.fromstring(packet.strip(b"\x00 \n\r\t"))
        except ET.ParseError:
            return None
        source = _xmp_value(root, "Iptc4xmpExt", "DigitalSourceType")
        description = next((li.text or "" for li in root.iter(f"{{{_NS['rdf']}}}li")), "")
        return cls._from_parts(source, description, _xmp_value(root, "xmp", "CreatorTool"))

    def tags(self) -> dict[str, str]:
        """Container metadata for MP4/MOV (with ``movflags=use_metadata_tags``), MKV and WebM."""
        return {"comment": self.text, VIDEO_SOURCE_TYPE_TAG: self.source_type}

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> ProvenanceLabel | None:
        tags = {k.lower(): v for k, v in tags.items()}  # Matroska upper-cases tag names
        return cls._from_parts(
            tags.get(VIDEO_SOURCE_TYPE_TAG), tags.get("comment") or tags.get("description") or "", None
        )

    @classmethod
    def _from_parts(cls, source: str | None, text: str, tool: str | None) -> ProvenanceLabel | None:
        """Our sentence when present; otherwise a generic label for another tool's synthetic source type."""
        if label := cls.from_text(text):
            return label
        if source not in SYNTHETIC_SOURCE_TYPES:
            return None
        return cls(model="unknown", note=text, tool=tool or "unknown", version="", source_type=source)


def _xmp_value(root: ET.Element, prefix: str, name: str) -> str | None:
    """An XMP simple property, written either as an element or as an attribute of rdf:Description."""
    tag = f"{{{_NS[prefix]}}}{name}"
    for element in root.iter():
        if element.tag == tag and element.text:
            return element.text.strip()
        if tag in element.attrib:
            return element.attrib[tag].strip()
    return None


def add_gif_comment(src: Path, dst: Path, text: str) -> None:
    """Copy GIF ``src`` to ``dst`` with a comment extension right after the global colour table.

    FFmpeg's GIF muxer writes no metadata, so the extension is inserted here (GIF89a spec §24); the
    rest of the file is streamed through unchanged.
    """
    data = text.encode()
    blocks = b"".join(bytes([len(chunk)]) + chunk for chunk in (data[i : i + 255] for i in range(0, len(data), 255)))
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        head = fin.read(13)  # signature + logical screen descriptor
        if len(head) < 13 or head[:3] != b"GIF":
            raise ValueError(f"{src} is not a GIF")
        flags = head[10]
        table = 3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0
        fout.write(head + fin.read(table) + b"\x21\xfe" + blocks + b"\x00")
        shutil.copyfileobj(fin, fout)


def add_webp_xmp(path: Path, xmp: bytes) -> None:
    """Append an ``XMP `` chunk to an extended (VP8X) WebP in place and set its XMP flag.

    FFmpeg's animated-WebP muxer writes no metadata; Pillow only writes XMP for images it encodes.
    """
    with open(path, "r+b") as f:
        head = f.read(21)
        if head[:4] != b"RIFF" or head[8:16] != b"WEBPVP8X":
            raise ValueError(f"{path} is not an extended WebP")
        f.seek(0, os.SEEK_END)
        f.write(b"XMP " + struct.pack("<I", len(xmp)) + xmp + (b"\x00" if len(xmp) % 2 else b""))
        size = f.tell()
        f.seek(4)
        f.write(struct.pack("<I", size - 8))
        f.seek(20)
        f.write(bytes([head[20] | 0x04]))


def read_label(path: str | os.PathLike[str]) -> ProvenanceLabel | None:
    """The synthetic-media label of an image or video, ``None`` if it has none.

    Reads metadata only (no pixels are decoded). Raises :class:`InputError` for a file that is
    neither a readable image nor a readable video.
    """
    path = Path(path)
    require_file(path, "file")
    try:
        with Image.open(path, formats=LABELLED_IMAGE_FORMATS) as im:
            info = dict(im.info)
    except UnidentifiedImageError:
        return _read_video_label(path)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise InputError(f"cannot read {path}: {reason(e)}") from None
    if xmp := info.get("xmp"):
        return ProvenanceLabel.from_xmp(xmp)
    comment = info.get("comment", b"")
    return ProvenanceLabel.from_text(comment.decode(errors="replace") if isinstance(comment, bytes) else comment)


def _read_video_label(path: Path) -> ProvenanceLabel | None:
    try:
        with av.open(str(path)) as container:
            # FFmpeg "opens" any file named like an image as a one-picture stream; Pillow already could not
            if not container.streams.video or STILL_IMAGE_DEMUXERS.fullmatch(container.format.name):
                raise InputError(f"cannot read {path}: not a readable image or video")
            return ProvenanceLabel.from_tags(container.metadata)
    except (av.FFmpegError, OSError) as e:
        raise InputError(f"cannot read {path}: not a readable image or video ({reason(e)})") from None
