"""Loaded swappers kept between jobs: one per model and precision, each loading without holding up the others."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

import facedancer.swap.swapper
import facedancer.ui.swapping
from facedancer.faces import BlendConfig
from facedancer.swap import CLASSICAL
from facedancer.ui.choices import ModelChoice
from facedancer.ui.swapping import SwapOptions, Swappers

CLASSICAL_CHOICE = ModelChoice(CLASSICAL, CLASSICAL, "classical")


def test_a_model_is_loaded_once_and_each_job_gets_its_own_blend():
    swappers = Swappers()
    first = SwapOptions(model=CLASSICAL_CHOICE, blend=BlendConfig(mask="rect-image"))
    swapper = swappers.face_swapper(first)
    detector, matcher = swapper.detector, swapper.matcher
    second = replace(first, blend=BlendConfig(mask="landmarks", colour=False), faces="reference")
    again = swappers.face_swapper(second)
    assert again is swapper and again.blend == second.blend
    assert again.detector is detector and again.matcher is matcher  # neither rebuilt for the next job


def test_a_slow_load_holds_up_only_its_own_model(monkeypatch: pytest.MonkeyPatch):
    """Loading one model (seconds for a generator) must not stop another model's jobs from starting."""
    real = facedancer.swap.swapper.load_crop_swapper
    started, release = threading.Event(), threading.Event()

    def load(model, *args, **kwargs):
        if model == "slow":
            started.set()
            assert release.wait(30)
            model = CLASSICAL
        return real(model, *args, **kwargs)

    monkeypatch.setattr(facedancer.swap.swapper, "load_crop_swapper", load)
    monkeypatch.setattr(facedancer.ui.swapping, "load_crop_swapper", load, raising=False)
    swappers = Swappers()
    slow = threading.Thread(target=swappers.face_swapper, args=(SwapOptions(ModelChoice("slow", "slow", "directory")),))
    fast = threading.Thread(target=swappers.face_swapper, args=(SwapOptions(CLASSICAL_CHOICE),))
    slow.start()
    try:
        assert started.wait(30)
        fast.start()
        fast.join(10)
        assert not fast.is_alive(), "the classical swapper waited for another model's load"
    finally:
        release.set()
        slow.join(30)
        if fast.is_alive():
            fast.join(30)
