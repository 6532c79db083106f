"""The read started before the explorer: its result, its errors, its progress replayed, its abandonment."""

from __future__ import annotations

import os
import threading

import pytest

from slimscope.early_read import Abandoned, EarlyRead
from slimscope.sources import Progress


class Events:
    """A Progress that records what it is told."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.seen: list[tuple] = []
        self.fail_on = fail_on

    def progress(self) -> Progress:
        def note(*event):
            self.seen.append(event)
            if event[0] == self.fail_on:
                raise KeyboardInterrupt

        return Progress(
            start=lambda what, total: note("start", what, total),
            advance=lambda n: note("advance", n),
            blob=lambda name: note("blob"),
        )


def test_progress_before_the_explorer_asks_is_replayed_then_passed_on() -> None:
    attached = threading.Event()
    reported = threading.Event()

    def work(progress: Progress) -> str:
        progress.start("reading x", 100)
        progress.advance(30)
        progress.blob("b1")
        progress.advance(20)
        reported.set()
        attached.wait(5)
        progress.advance(50)
        progress.blob("b2")
        return "analysis"

    early = EarlyRead(work)
    assert reported.wait(5)
    events = Events()
    progress = events.progress()
    real_advance = progress.advance

    def advance(n: int) -> None:
        real_advance(n)
        attached.set()  # the replay reached the explorer: let the read go on

    progress.advance = advance
    assert early.load(progress) == "analysis"
    assert events.seen == [
        ("start", "reading x", 100),
        ("advance", 50),  # the bytes so far, summed
        ("blob",),
        ("advance", 50),
        ("blob",),
    ]
    early.abandon()  # after the end: returns at once


def test_an_error_of_the_read_is_raised_where_the_explorer_asks() -> None:
    from slimscope.errors import SourceError

    def work(progress: Progress) -> None:
        raise SourceError("no such image: nope")

    early = EarlyRead(work)
    with pytest.raises(SourceError, match=r"^no such image: nope$"):
        early.load(Progress())


def test_a_callback_that_raises_stops_the_read_and_the_explorer_gets_it() -> None:
    """The explorer cancels a read by raising from a progress callback (q while loading)."""
    attached = threading.Event()
    steps: list[int] = []

    def work(progress: Progress) -> None:
        progress.start("reading", None)
        attached.wait(5)
        for i in range(1000):
            steps.append(i)
            progress.advance(1)

    early = EarlyRead(work)
    events = Events(fail_on="advance")
    progress = events.progress()
    replayed_start = progress.start

    def start(what: str, total: int | None) -> None:
        replayed_start(what, total)
        attached.set()

    progress.start = start
    with pytest.raises(KeyboardInterrupt):
        early.load(progress)
    assert steps == [0]  # the first report after the explorer took over raised, in the read's thread


def test_an_abandoned_read_stops_at_its_next_report() -> None:
    go = threading.Event()
    after: list[str] = []

    def work(progress: Progress) -> None:
        go.wait(5)
        progress.advance(1)
        after.append("went on")

    early = EarlyRead(work)
    threading.Timer(0.05, go.set).start()
    early.abandon()
    assert after == []
    assert isinstance(early._error, Abandoned)


def test_a_read_blocked_on_input_is_left_behind_after_the_wait() -> None:
    """A read stuck in a stalled pipe sends no more reports: abandon() returns after its wait, and the
    thread is a daemon, so the process can exit without it."""
    released = threading.Event()
    read_end, write_end = os.pipe()

    def work(progress: Progress) -> bytes:
        data = os.read(read_end, 1)  # nothing comes until the test writes
        released.set()
        return data

    early = EarlyRead(work)
    assert early.abandon(timeout=0.2) is False  # it gave up waiting: the read is still blocked
    assert early._thread.daemon and early._thread.is_alive() and not released.is_set()
    os.write(write_end, b"x")
    assert released.wait(5)
    early._thread.join(5)
    assert early.abandon() is True
    os.close(read_end)
    os.close(write_end)


def test_check_gives_up_the_wait_for_a_read_blocked_on_input() -> None:
    """The explorer's cancel reaches load() through progress.check while the read is stuck."""
    read_end, write_end = os.pipe()
    early = EarlyRead(lambda progress: os.read(read_end, 1))
    cancelled = threading.Event()

    def check() -> None:
        if cancelled.is_set():
            raise KeyboardInterrupt

    threading.Timer(0.3, cancelled.set).start()
    with pytest.raises(KeyboardInterrupt):
        early.load(Progress(check=check))
    assert early._abandoned and early._thread.is_alive()  # given up while the read is still blocked
    os.write(write_end, b"x")
    early._thread.join(5)
    assert (early._result, early._error) == (b"x", None)  # it made no report, so it ran to its end
    os.close(read_end)
    os.close(write_end)
