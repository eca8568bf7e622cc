"""Metric plumbing that needs no server: sampling, loop lag, sweeps of plain counters, JSON logs."""

from __future__ import annotations

import asyncio
import gc
import io
import json
import logging
import weakref
from dataclasses import dataclass, field

import pytest

from mcu.app.main import JsonFormatter
from mcu.infra.looplag import SUSTAINED_SAMPLES, LoopLagMonitor
from mcu.infra.metrics import CounterSweep, LatencySampler, new_metrics_id


@dataclass
class Recorded:
    """A histogram or gauge that keeps what it was given."""

    values: list[float] = field(default_factory=list)

    def observe(self, amount: float) -> None:
        self.values.append(amount)

    def set(self, value: float) -> None:
        self.values.append(value)


class Counting:
    """Stands for a consumer: plain integer counters."""

    def __init__(self, packets: int = 0, octets: int = 0) -> None:
        self.metrics_id = new_metrics_id()
        self.packets = packets
        self.octets = octets


# -- forwarding latency sampler --------------------------------------------------------------


def test_sampler_observes_one_packet_in_every() -> None:
    histogram = Recorded()
    sampler = LatencySampler(histogram, every=4)
    taken = [sampler.sample(count, arrival=10.0, now=10.0 + count / 1000) for count in range(1, 13)]
    assert taken == [False, False, False, True] * 3
    assert histogram.values == pytest.approx([0.004, 0.008, 0.012])


def test_sampler_uses_its_clock_and_never_observes_negative() -> None:
    histogram = Recorded()
    sampler = LatencySampler(histogram, every=1, clock=lambda: 5.0)
    sampler.sample(7, arrival=4.75)
    sampler.sample(8, arrival=5.5)  # arrival stamped by another clock read, a hair later
    assert histogram.values == [0.25, 0.0]


@pytest.mark.parametrize("every", [0, 3, 48])
def test_sampler_needs_a_power_of_two(every: int) -> None:
    with pytest.raises(ValueError):
        LatencySampler(Recorded(), every=every)


# -- event-loop lag --------------------------------------------------------------------------


def test_loop_lag_records_delay_into_histogram_and_gauge() -> None:
    histogram, gauge = Recorded(), Recorded()
    monitor = LoopLagMonitor(histogram=histogram, gauge=gauge)
    assert monitor.record(due=100.0, now=100.03) == pytest.approx(0.03)
    assert monitor.record(due=101.0, now=100.999) == 0.0  # woke early: no negative lag
    assert histogram.values == pytest.approx([0.03, 0.0])
    assert gauge.values == pytest.approx([0.03, 0.0])
    assert monitor.last_lag == 0.0


def test_sustained_lag_ignores_one_spike_but_not_saturation() -> None:
    monitor = LoopLagMonitor(histogram=Recorded(), gauge=Recorded())
    for i in range(SUSTAINED_SAMPLES - 1):
        monitor.record(due=float(i), now=i + 0.5)
    assert monitor.sustained_lag() == 0.0  # not enough wake-ups yet to judge
    monitor.record(due=10.0, now=10.001)
    assert monitor.sustained_lag() == pytest.approx(0.5)  # every wake-up late: saturated
    for i in range(SUSTAINED_SAMPLES - 1):
        monitor.record(due=20.0 + i, now=20.0 + i + 0.002)
    monitor.record(due=30.0, now=30.8)  # one garbage collection
    assert monitor.sustained_lag() == pytest.approx(0.002)


async def test_loop_lag_task_measures_until_stopped() -> None:
    histogram, gauge = Recorded(), Recorded()
    monitor = LoopLagMonitor(0.01, histogram=histogram, gauge=gauge)
    monitor.start()
    monitor.start()  # idempotent
    for _ in range(500):  # bounded: at most 5 s on a very slow machine
        if len(histogram.values) >= 3:
            break
        await asyncio.sleep(0.01)
    assert len(histogram.values) >= 3
    await monitor.stop()
    count = len(histogram.values)
    await asyncio.sleep(0.05)
    assert len(histogram.values) == count
    assert all(v >= 0 for v in histogram.values)


# -- counter sweep ---------------------------------------------------------------------------


def test_sweep_sums_live_objects() -> None:
    sweep = CounterSweep(("packets", "octets"))
    a, b = Counting(3, 300), Counting(4, 400)
    assert sweep.collect([a, b]) == [7, 700]
    a.packets, a.octets = 5, 500
    assert sweep.collect([a, b]) == [9, 900]


def test_sweep_keeps_last_seen_values_of_an_object_that_left() -> None:
    sweep = CounterSweep(("packets", "octets"))
    a, b = Counting(3, 300), Counting(4, 400)
    sweep.collect([a, b])
    b.packets = 10  # counted more after the last scrape, then left without being retired
    assert sweep.collect([a]) == [7, 700]
    assert sweep.collect([a]) == [7, 700]  # retired once, not again


def test_sweep_keeps_nothing_alive() -> None:
    sweep = CounterSweep(("packets",))
    a = Counting(3)
    sweep.collect([a])
    ref = weakref.ref(a)
    del a
    gc.collect()
    assert ref() is None
    assert sweep.collect([]) == [3]


def test_sweep_keeps_last_seen_values_of_a_collected_object() -> None:
    sweep = CounterSweep(("packets", "octets"))
    a, b = Counting(3, 300), Counting(4, 400)
    sweep.collect([a, b])
    del b
    gc.collect()
    assert sweep.collect([a]) == [7, 700]


def test_sweep_never_decreases_as_objects_come_and_go() -> None:
    sweep = CounterSweep(("packets",))
    objects: list[Counting] = []
    last = 0
    for step in range(50):
        if step % 3 == 0:
            objects.append(Counting())
        if step % 7 == 6:
            objects.pop(0)
        for obj in objects:
            obj.packets += 2
        (total,) = sweep.collect(list(objects))
        assert total >= last
        last = total


def test_sweep_retire_is_exact_and_counted_once() -> None:
    sweep = CounterSweep(("packets", "octets"))
    a, b = Counting(1, 10), Counting(2, 20)
    sweep.collect([a, b])
    b.packets, b.octets = 9, 90
    sweep.retire(b)  # its owner closed it: final values, even if collected before the scrape
    sweep.retire(b)
    del b
    gc.collect()
    assert sweep.collect([a]) == [10, 100]
    c = Counting(5, 50)
    sweep.retire(c)  # retired before any scrape saw it
    assert sweep.collect([a, c]) == [15, 150]  # a retired object still listed is not re-added


def test_sweep_handles_a_reused_id() -> None:
    sweep = CounterSweep(("packets",))
    first = Counting(5)
    sweep.collect([first])
    del first
    gc.collect()
    # CPython often hands the freed address to the next object of the same size; whether or
    # not it does here, nothing is lost or counted twice.
    second = Counting(1)
    assert sweep.collect([second]) == [6]


# -- JSON logs -------------------------------------------------------------------------------


def test_json_log_lines_carry_extra_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.metrics.json")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        logger.info("joined %s", "cardio-1", extra={"room": "cardio-1", "participant": "p1a2"})
        logger.warning("plain")
        logger.info("odd value", extra={"room": object()})
    finally:
        logger.removeHandler(handler)
    first, second, third = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "joined cardio-1"
    assert (first["room"], first["participant"]) == ("cardio-1", "p1a2")
    assert first["level"] == "info" and first["logger"] == "tests.metrics.json"
    assert "room" not in second and "participant" not in second
    assert set(second) == {"time", "level", "logger", "message"}
    assert isinstance(third["room"], str)
