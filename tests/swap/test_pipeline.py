"""The stage threads of a video swap: order, bounded queues, errors raised in the caller, no thread left."""

from __future__ import annotations

import random
import threading
import time

import pytest

from facedancer.errors import InputError
from facedancer.swap.pipeline import Pipeline


def _ours() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("facedancer-")]


def _jittered(scale: float):
    """A stage that passes items on after a random pause: stages then run at uneven speeds."""
    rng = random.Random(0)

    def work(items):
        for item in items:
            time.sleep(rng.random() * scale)
            yield item

    return work


def test_items_leave_in_order_through_uneven_stages():
    with Pipeline() as pipe:
        q = pipe.stage("source", lambda _: iter(range(60)))
        q = pipe.stage("a", _jittered(0.002), q)
        q = pipe.stage("batch", lambda items: ([i, i] for i in items), q)  # a stage may reshape what it passes
        q = pipe.stage("b", _jittered(0.002), q)
        assert list(pipe.results(q)) == [[i, i] for i in range(60)]
    assert _ours() == []


@pytest.mark.parametrize("where", ["source", "middle", "last"])
def test_a_stage_error_reaches_the_caller_as_itself_and_stops_every_thread(where):
    error = InputError("cannot read video x.mp4: decoding failed after 5 frames")

    def failing(items):
        for i, item in enumerate(items):
            if i == 5:
                raise error
            yield item

    def endless(_):
        i = 0
        while True:  # would run for ever if the pipeline did not stop it
            yield i
            i += 1

    def failing_source(_):
        return failing(endless(None))

    got = []
    with pytest.raises(InputError) as caught, Pipeline() as pipe:
        q = pipe.stage("source", failing_source if where == "source" else endless)
        q = pipe.stage("middle", failing if where == "middle" else (lambda items: items), q)
        q = pipe.stage("last", failing if where == "last" else (lambda items: items), q)
        got.extend(pipe.results(q))
    assert caught.value is error
    assert got == list(range(len(got))) and len(got) <= 5
    assert _ours() == []


def test_an_error_in_the_caller_stops_stages_blocked_on_full_queues():
    """Ctrl-C, SIGTERM (raised in the main thread) or a failing writer: every stage ends, none hangs."""
    with pytest.raises(KeyboardInterrupt), Pipeline() as pipe:
        q = pipe.stage("source", lambda _: iter(range(10**9)))
        q = pipe.stage("middle", lambda items: items, q)
        for i in pipe.results(q):
            if i == 3:
                time.sleep(0.2)  # every queue upstream is full by now
                raise KeyboardInterrupt
    assert _ours() == []


def test_queues_hold_only_a_few_items():
    """A fast source does not run ahead of a slow consumer by more than the queues between them hold."""
    produced = []

    def source(_):
        for i in range(100):
            produced.append(i)
            yield i

    with Pipeline(depth=2) as pipe:
        q = pipe.stage("middle", lambda items: items, pipe.stage("source", source))
        for i in pipe.results(q):
            time.sleep(0.005)
            # two queues of 2, one item in each stage's hands, one being produced
            assert len(produced) - (i + 1) <= 2 + 2 + 2 + 1
    assert len(produced) == 100


def test_wait_gives_up_when_the_pipeline_stops():
    never = threading.Semaphore(0)

    def source(_):
        pipe.wait(lambda seconds: never.acquire(timeout=seconds))
        yield "unreachable"

    with pytest.raises(RuntimeError, match="writer broke"), Pipeline() as pipe:
        pipe.stage("source", source)
        raise RuntimeError("writer broke")
    assert _ours() == []
