"""Event-loop lag: how late the loop runs a task that asked to wake every half second.

Forwarding, signalling and RTCP all share one event loop; when something blocks it (a slow
callback, a burst of packets, the garbage collector) every packet waits. A sleeper that notes
how late it woke measures exactly that delay, at the cost of one wake-up per interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from mcu.infra import metrics

INTERVAL_SECONDS = 0.5
SUSTAINED_SAMPLES = 8
"Wake-ups :meth:`LoopLagMonitor.sustained_lag` looks at (4 s at the default interval)."


class _Histogram(Protocol):
    def observe(self, amount: float) -> None: ...


class _Gauge(Protocol):
    def set(self, value: float) -> None: ...


class LoopLagMonitor:
    """Measures the event loop's scheduling delay every ``interval`` seconds.

    :meth:`record` is the pure part (given when the wake-up was due and when it happened);
    :meth:`start` runs it as a task on the running loop.
    """

    def __init__(
        self,
        interval: float = INTERVAL_SECONDS,
        *,
        histogram: _Histogram = metrics.EVENT_LOOP_LAG,
        gauge: _Gauge = metrics.EVENT_LOOP_LAST_LAG,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self._histogram = histogram
        self._gauge = gauge
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.last_lag: float | None = None
        "The most recent delay in seconds (None before the first wake-up)."
        self._recent: deque[float] = deque(maxlen=SUSTAINED_SAMPLES)

    def record(self, due: float, now: float) -> float:
        """A wake-up due at ``due`` ran at ``now``: observe and return the delay (never < 0)."""
        lag = max(0.0, now - due)
        self.last_lag = lag
        self._recent.append(lag)
        self._histogram.observe(lag)
        self._gauge.set(lag)
        return lag

    def sustained_lag(self) -> float:
        """The median delay of the last ``SUSTAINED_SAMPLES`` wake-ups (0 until there are that
        many): high only when the process is saturated, not after one garbage collection."""
        if len(self._recent) < SUSTAINED_SAMPLES:
            return 0.0
        return statistics.median(self._recent)

    async def run(self) -> None:
        """Measure until cancelled."""
        while True:
            due = self._clock() + self.interval
            await asyncio.sleep(self.interval)
            self.record(due, self._clock())

    def start(self) -> None:
        """Start measuring on the running loop (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run(), name="loop-lag")

    async def stop(self) -> None:
        """Stop measuring."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
