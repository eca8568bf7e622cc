"""Gauges of what a server process holds: its asyncio tasks and its threads.

Both are read when ``/metrics`` is scraped, never counted on the way: a scrape walks the event
loop's task set once and reads one line of ``/proc/self/status``. A count that keeps rising
while rooms come and go is a leak (a task nobody cancels, a thread nobody joins); the soak
benchmark (``benchmarks/soak.py``) compares them at the ends of its cycles.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

_STATUS = Path("/proc/self/status")


def os_threads() -> int:
    """Threads of this process as the kernel counts them (native ones of PyAV, libvpx, x264 and
    the executors' alike); Python's own count where ``/proc`` is missing."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return threading.active_count()


class RuntimeCollector(Collector):
    """``mcu_asyncio_tasks`` (tasks of the running loop) and ``mcu_threads``, at scrape time.

    The task count needs the scrape to run on the event loop's thread, as the ``/metrics``
    handlers do; collected elsewhere (no running loop) only the threads are reported.
    """

    def collect(self) -> Iterator[Metric]:
        """One reading of each gauge."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            yield GaugeMetricFamily(
                "mcu_asyncio_tasks",
                "Asyncio tasks not yet done in this process's event loop.",
                len(asyncio.all_tasks(loop)),
            )
        yield GaugeMetricFamily(
            "mcu_threads", "Threads of this process (native ones included).", os_threads()
        )
