"""Read and analyse the image in a thread started before the explorer is imported.

Importing Textual and building the first screen takes 0.5 s or more of this process's time, and the
read of a large image spends most of its time in worker processes and C code: started first, the
two overlap. The explorer then asks for the result with `load(progress)`, as it would call a loader
of its own: the progress seen so far is replayed into its callbacks, later progress goes straight to
them, and raising from a callback (the explorer does, to cancel) stops the read as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from slimscope.sources import Progress

ABANDON_WAIT = 1.0  # seconds abandon() waits for the read to reach its next progress report
CHECK_EVERY = 0.1  # seconds between the calls of progress.check while load() waits


class Abandoned(Exception):
    """The read was given up before anyone asked for it (the explorer never started)."""


class EarlyRead:
    """`work(progress)` running in a thread now; `load(progress)` waits for it and returns its result."""

    def __init__(self, work: Callable[[Progress], Any]) -> None:
        self._lock = threading.Lock()
        self._target: Progress | None = None
        self._started: tuple[str, int | None] | None = None
        self._bytes = 0
        self._blobs = 0
        self._abandoned = False
        self._result: Any = None
        self._error: BaseException | None = None
        relay = Progress(start=self._start, advance=self._advance, blob=self._blob)
        # A daemon: a read stuck in a stalled pipe (a FIFO whose writer went quiet) must not hold the
        # process's exit up once the user has quit (see abandon).
        self._thread = threading.Thread(
            target=self._run, args=(work, relay), name="slimscope-early-read", daemon=True
        )
        self._thread.start()

    def _run(self, work: Callable[[Progress], Any], relay: Progress) -> None:
        try:
            self._result = work(relay)
        except BaseException as exc:  # handed to load(), in the explorer's thread
            self._error = exc

    def _relay(self) -> Progress | None:
        """Where progress goes now (None: keep it); raises Abandoned once the read is given up."""
        if self._abandoned:
            raise Abandoned
        return self._target

    def _start(self, what: str, total: int | None) -> None:
        with self._lock:
            target = self._relay()
            if target is None:
                self._started = (what, total)
                return
        if target.start is not None:
            target.start(what, total)

    def _advance(self, n: int) -> None:
        with self._lock:
            target = self._relay()
            if target is None:
                self._bytes += n
                return
        if target.advance is not None:
            target.advance(n)

    def _blob(self, name: str) -> None:
        with self._lock:
            target = self._relay()
            if target is None:
                self._blobs += 1
                return
        if target.blob is not None:
            target.blob(name)

    def load(self, progress: Progress) -> Any:
        """Replay the progress so far into `progress`, send it the rest, and return the result (or raise
        what the read raised, or what a callback of `progress` raised: `progress.check`, called while
        this waits, gives the wait up even when the read makes no more reports)."""
        with self._lock:
            started, done, blobs = self._started, self._bytes, self._blobs
            self._target = progress
        if started is not None and progress.start is not None:
            progress.start(*started)
        if done and progress.advance is not None:
            progress.advance(done)
        for _ in range(blobs if progress.blob is not None else 0):
            progress.blob("")  # type: ignore[misc]
        while self._thread.is_alive():
            self._thread.join(CHECK_EVERY)
            if progress.check is not None and self._thread.is_alive():
                try:
                    progress.check()
                except BaseException:
                    with self._lock:
                        self._abandoned = True  # the read stops at its next report, if it makes one
                    raise
        if self._error is not None:
            raise self._error
        return self._result

    def abandon(self, timeout: float = ABANDON_WAIT) -> bool:
        """Give the read up (at its next progress report) and wait up to `timeout` seconds for its thread
        to end; returns whether it did. A read blocked on input that does not come is left behind: it
        holds no temporary file, and the process exits without it."""
        with self._lock:
            self._abandoned = True
        self._thread.join(timeout)
        return not self._thread.is_alive()
