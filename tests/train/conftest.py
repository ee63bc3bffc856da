"""Prepared LFW crops shared by the training tests (aligned once per session, never committed)."""

from __future__ import annotations

import pytest

from facedancer.train.prepare import PrepareOptions, prepare


@pytest.fixture(scope="session")
def lfw_crops(lfw, tmp_path_factory):
    """20 LFW identities (~160 photos) aligned to 256 px crops with ``facedancer prepare``."""
    src = tmp_path_factory.mktemp("lfw-src")
    for person in sorted(p for p in lfw.iterdir() if p.is_dir())[:20]:
        (src / person.name).symlink_to(person)
    dst = tmp_path_factory.mktemp("lfw-crops")
    prepare(src, dst, PrepareOptions(min_face=64))
    return dst
