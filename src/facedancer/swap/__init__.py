"""The inference pipeline: swap faces in images, folders and videos."""

from facedancer.swap.classical import CLASSICAL, ClassicalSwapper
from facedancer.swap.files import FolderReport
from facedancer.swap.models import DEFAULT_MODEL, CropSwapper, GeneratorSwapper
from facedancer.swap.report import SwapReport
from facedancer.swap.select import DEFAULT_THRESHOLD, FaceMatcher, Selection
from facedancer.swap.swapper import FaceSwapper, Source

__all__ = [
    "CLASSICAL",
    "DEFAULT_MODEL",
    "DEFAULT_THRESHOLD",
    "ClassicalSwapper",
    "CropSwapper",
    "FaceMatcher",
    "FaceSwapper",
    "FolderReport",
    "GeneratorSwapper",
    "Selection",
    "Source",
    "SwapReport",
]
