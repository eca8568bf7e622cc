"""Handing the memory a process freed back to the system (glibc's ``malloc_trim``).

A media server frees large buffers in bursts: frames and codec contexts when a slide show or a
recording ends, rings of recent packets and whole peer connections when people leave. glibc
keeps what is freed in its heaps for reuse and gives pages back to the system only from the top
of a heap, so resident memory ratchets up with fragmentation while nothing leaks. In the soak
(``benchmarks/soak.py``: a meeting with slides, a lesson with WHEP viewers and library uploads
every ~11 s) the worker sat at 190-250 MiB at the ends of cycles and kept creeping up;
``malloc_trim(0)``, which returns every free page of every heap (``madvise``), brought it back
to 127-163 MiB each time.

A closed peer connection is a web of reference cycles (aiortc's objects), freed only by the
cyclic garbage collector, whose full collections come when the process's object count has
grown by a quarter, i.e. at moments unrelated to rooms ending. So the trim after a room
empties first runs a full collection: what the room held is then really gone, and the
resident memory after a room ends is the same whatever the collector happened to do before
(in the soak, boundaries otherwise varied by ~25 MiB between cycles). The objects the server
made while starting are frozen out of every collection (``gc.freeze`` in ``mcu.app.main``),
so a full collection walks only what rooms and connections made.

So the server trims a second after a room empties (when most is freed; :func:`released`) and
once a minute anyway (a lesson whose viewers come and go never empties), never twice within
two seconds. A trim runs on the event loop's thread: 4-9 ms for the 26-50 MiB it gave back
in that soak (2-core VM), 2-13 ms with the collection before it. On a C library without
``malloc_trim`` (musl, macOS) nothing is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import gc
import logging
import time
from collections.abc import Callable
from pathlib import Path

from mcu.infra import metrics

logger = logging.getLogger(__name__)

INTERVAL_SECONDS = 60.0
"A trim at least this often while the server runs."
AFTER_RELEASE_SECONDS = 1.0
"How long after a room empties its trim runs (rooms ending together share one)."
MIN_GAP_SECONDS = 2.0
"Never two trims closer than this."

_STATM = Path("/proc/self/statm")
_PAGE = 4096


def _libc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


def resident_bytes() -> int:
    """This process's resident memory (0 where ``/proc`` is missing)."""
    try:
        return int(_STATM.read_text().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


class HeapTrimmer:
    """Trims this process's heaps periodically and soon after :meth:`released`."""

    def __init__(
        self,
        interval: float = INTERVAL_SECONDS,
        after_release: float = AFTER_RELEASE_SECONDS,
        min_gap: float = MIN_GAP_SECONDS,
        *,
        trim: Callable[[int], int] | None = None,
        collect: Callable[[], object] = gc.collect,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.after_release = after_release
        self.min_gap = min_gap
        self._trim = trim if trim is not None else _libc_trim()
        self._collect = collect
        self._clock = clock
        self._last = float("-inf")
        self._soon: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self.trims = 0

    @property
    def available(self) -> bool:
        """Whether the C library can trim at all."""
        return self._trim is not None

    def trim(self, *, collect: bool = False) -> int:
        """Trim now (unless one ran within ``min_gap``), after a full garbage collection if
        ``collect``; the resident bytes given back."""
        now = self._clock()
        if self._trim is None or now - self._last < self.min_gap:
            return 0
        self._last = now
        before = resident_bytes()
        started = time.perf_counter()
        if collect:
            self._collect()
        self._trim(0)
        took = time.perf_counter() - started
        returned = max(0, before - resident_bytes())
        self.trims += 1
        metrics.HEAP_TRIMS.inc()
        metrics.HEAP_TRIMMED_BYTES.inc(returned)
        logger.debug(
            "heap trimmed%s: %.1f MiB back in %.1f ms",
            " after a collection" if collect else "",
            returned / 2**20,
            took * 1e3,
        )
        return returned

    def released(self) -> None:
        """Much was just freed (a room emptied): collect and trim ``after_release`` seconds
        from now, or once ``min_gap`` has passed since the last trim if that is later."""
        if self._trim is None or self._soon is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        # Not dropped when one ran moments ago (another room's end): deferred past the gap.
        delay = max(self.after_release, self._last + self.min_gap - self._clock())
        self._soon = loop.call_later(delay, self._trim_soon)

    def _trim_soon(self) -> None:
        self._soon = None
        wait = self._last + self.min_gap - self._clock()
        if wait > 0:  # a periodic trim ran meanwhile: this one (with its collection) comes next
            self._soon = asyncio.get_running_loop().call_later(wait, self._trim_soon)
            return
        self.trim(collect=True)

    async def run(self) -> None:
        """Trim every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.interval)
            self.trim()

    def start(self) -> None:
        """Start the periodic trims on the running loop (idempotent)."""
        global _active
        _active = self
        if self._trim is not None and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self.run(), name="heap-trim")

    async def stop(self) -> None:
        """Stop trimming."""
        global _active
        if _active is self:
            _active = None
        if self._soon is not None:
            self._soon.cancel()
            self._soon = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


_active: HeapTrimmer | None = None


def released() -> None:
    """Tell the process's running trimmer (if any) that much was just freed."""
    if _active is not None:
        _active.released()
