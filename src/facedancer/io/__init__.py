"""Reading and writing images and videos safely, and labelling every output as synthetic."""

from facedancer.io.formats import (
    IMAGE_OUTPUT_SUFFIXES,
    IMAGE_SUFFIXES,
    VIDEO_OUTPUT_SUFFIXES,
    VIDEO_SUFFIXES,
    media_kind,
    output_suffix,
)
from facedancer.io.image import DEFAULT_MAX_PIXELS, decode_image, read_image, write_image
from facedancer.io.provenance import (
    COMPOSITE_SYNTHETIC,
    COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA,
    TRAINED_ALGORITHMIC_MEDIA,
    ProvenanceLabel,
    read_label,
)
from facedancer.io.video import VideoWriter, transcode
from facedancer.io.video_reader import VideoInfo, VideoReader

__all__ = [
    "COMPOSITE_SYNTHETIC",
    "COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA",
    "DEFAULT_MAX_PIXELS",
    "IMAGE_OUTPUT_SUFFIXES",
    "IMAGE_SUFFIXES",
    "TRAINED_ALGORITHMIC_MEDIA",
    "VIDEO_OUTPUT_SUFFIXES",
    "VIDEO_SUFFIXES",
    "ProvenanceLabel",
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "decode_image",
    "media_kind",
    "output_suffix",
    "read_image",
    "read_label",
    "transcode",
    "write_image",
]
