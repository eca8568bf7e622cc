"""``mcu_asyncio_tasks`` and ``mcu_threads``: what a process holds, read at scrape time."""

from __future__ import annotations

import asyncio
import threading

from prometheus_client import CollectorRegistry

from mcu.infra.runtimegauges import RuntimeCollector


def _scrape(registry: CollectorRegistry) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in registry.collect()
        for sample in family.samples
        if sample.name in ("mcu_asyncio_tasks", "mcu_threads")
    }


async def test_tasks_and_threads_are_counted_when_scraped() -> None:
    registry = CollectorRegistry()
    registry.register(RuntimeCollector())
    before = _scrape(registry)
    assert before["mcu_asyncio_tasks"] >= 1  # this test's own task
    assert before["mcu_threads"] >= 1

    release = asyncio.Event()
    tasks = [asyncio.create_task(release.wait()) for _ in range(5)]
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, args=(10,))
    thread.start()
    try:
        during = _scrape(registry)
        assert during["mcu_asyncio_tasks"] == before["mcu_asyncio_tasks"] + 5
        # Native threads of other libraries may come and go; ours is one more at least.
        assert during["mcu_threads"] >= before["mcu_threads"] + 1
    finally:
        release.set()
        stop.set()
        await asyncio.gather(*tasks)
        thread.join(10)
    after = _scrape(registry)
    assert after["mcu_asyncio_tasks"] == before["mcu_asyncio_tasks"]


def test_without_a_running_loop_only_threads_are_reported() -> None:
    registry = CollectorRegistry()
    registry.register(RuntimeCollector())
    samples = _scrape(registry)
    assert "mcu_asyncio_tasks" not in samples
    assert samples["mcu_threads"] >= 1
