"""Errors a user can act on. The CLI prints ``str(error)`` on one line and exits with ``exit_code``.

Anything else that escapes is a bug in facedancer and keeps its traceback.
"""

from __future__ import annotations


class FacedancerError(Exception):
    exit_code = 2


class CheckpointError(FacedancerError):
    """A model directory that is missing, truncated, corrupt or does not fit its config."""


class ConversionError(CheckpointError):
    """A file the Keras converter cannot read or map: not HDF5, truncated, or another architecture."""


class ConfigError(FacedancerError):
    """A preset or config file with unknown keys, wrong types or impossible values."""


class AssetError(FacedancerError):
    """An external file that is not installed, fails its checksum, or cannot be fetched."""


class InputError(FacedancerError):
    """An input file that cannot be read, is of an unsupported format, or is unsafe to decode."""


class NoFaceError(InputError):
    """No usable face where one is required (for example in the source image)."""


class OutputError(FacedancerError):
    """An output path that cannot be written."""


class TrainingError(FacedancerError):
    """A training run that cannot go on: a non-finite loss, or replicas that drifted apart."""


class NothingSwappedError(FacedancerError):
    """A swap that found no face to swap (none detected, or none selected): nothing is written (exit 1).

    Writing the unchanged target would make a copy that carries a face-swap label but shows no swap.
    """

    exit_code = 1
