"""The soak's verdict (``benchmarks/churn/growth.py``): which boundary curves count as growth."""

from __future__ import annotations

import pytest

from benchmarks.churn.growth import WAL_LIMIT_KIB, judge, thirds
from benchmarks.churn.resources import Sample, tasks_by_worker


def boundaries(series: dict[str, list[float]]) -> list[Sample]:
    """Cycle boundaries 0..n-1 (0 is the sample before the first cycle) carrying ``series``."""
    count = len(next(iter(series.values())))
    return [
        Sample(float(i), i, True, {name: values[i] for name, values in series.items()})
        for i in range(count)
    ]


def test_thirds_give_the_middle_what_does_not_divide() -> None:
    assert thirds([1, 2, 3, 4, 5, 6, 7]) == ([1, 2], [3, 4, 5], [6, 7])
    assert thirds([1, 2, 3]) == ([1], [2], [3])


@pytest.mark.parametrize(
    ("name", "after_warmup", "passed"),
    [
        # Memory that climbed while warming up and then holds is no leak.
        ("rss_mib:0", [300, 302, 299, 303, 301, 300], True),
        # Memory still climbing by ~5 % a cycle at the end is.
        ("rss_mib:0", [300, 315, 330, 346, 363, 381], False),
        # A few MiB of allocator noise on a small process stay under the absolute floor.
        ("rss_mib:front", [12, 13, 12, 14, 13, 14], True),
        # One allocator step late in a short run (a new high-water mark, then level) is no leak
        # (the CI soak's boundaries: 148-151 MiB for seven cycles, then 162 three times) ...
        ("rss_mib:0", [150, 150, 151, 150, 162, 162], True),
        # ... but a small process growing 12 MiB a cycle is leaking.
        ("rss_mib:0", [150, 162, 174, 186, 198, 210], False),
        # Tasks back to the same count at every boundary.
        ("tasks:0", [4, 4, 5, 4, 4, 4], True),
        # One task more per cycle: a leak, although it is small against the total.
        ("tasks:0", [40, 41, 42, 43, 44, 45], False),
        # File descriptors one more per cycle.
        ("fds:1", [30, 31, 32, 33, 34, 35], False),
        # A thread pool that grew during the warm-up and holds.
        ("threads:0", [15, 15, 15, 16, 15, 15], True),
        # One more process (a renderer nobody reaps).
        ("procs:all", [3, 3, 3, 3, 4, 4], False),
        # A database file that holds its size; one that keeps growing.
        ("sqlite_kib:library.sqlite3", [96, 96, 100, 100, 100, 100], True),
        ("sqlite_kib:library.sqlite3", [96, 200, 300, 400, 500, 600], False),
    ],
)
def test_boundaries_after_the_warmup_are_judged(
    name: str, after_warmup: list[float], passed: bool
) -> None:
    warmup = [after_warmup[0] * 0.5, after_warmup[0] * 0.9]  # what the first cycles did
    samples = boundaries({name: [after_warmup[0] * 0.4, *warmup, *after_warmup]})
    judgements, short = judge(samples, warmup=2, tolerance=0.10)
    assert short is None
    (judgement,) = judgements
    assert judgement.passed is passed, judgement


def test_warmup_growth_is_not_judged() -> None:
    # Doubling during the first two cycles (the first recording importing PyAV), flat after.
    samples = boundaries({"rss_mib:0": [140, 250, 300, 305, 300, 302, 301, 303]})
    judgements, _ = judge(samples, warmup=2, tolerance=0.10)
    assert all(j.passed for j in judgements)


def test_write_ahead_logs_are_held_to_sqlites_own_bound() -> None:
    growing = [1000.0 * i for i in range(1, 7)]  # still filling towards the checkpoint
    samples = boundaries({"sqlite_kib:mcu.sqlite3-wal": [0, 0, 0, *growing]})
    (judgement,), _ = judge(samples, warmup=2, tolerance=0.10)
    assert judgement.passed
    runaway = [*growing[:-1], WAL_LIMIT_KIB + 1]
    samples = boundaries({"sqlite_kib:mcu.sqlite3-wal": [0, 0, 0, *runaway]})
    (judgement,), _ = judge(samples, warmup=2, tolerance=0.10)
    assert not judgement.passed


def test_too_few_cycles_give_no_verdict() -> None:
    samples = boundaries({"tasks:0": [4, 4, 4, 4, 4]})
    judgements, short = judge(samples, warmup=2, tolerance=0.10)
    assert judgements == [] and short is not None and "at least 3" in short


def test_tasks_are_read_per_process_label() -> None:
    single = "# TYPE mcu_asyncio_tasks gauge\nmcu_asyncio_tasks 7.0\n"
    assert tasks_by_worker(single) == {"0": 7.0}
    merged = (
        'mcu_asyncio_tasks{worker="0"} 9.0\n'
        'mcu_asyncio_tasks{worker="1"} 8.0\n'
        'mcu_asyncio_tasks{worker="front"} 5.0\n'
        'mcu_asyncio_tasks_other{worker="0"} 1.0\n'
    )
    assert tasks_by_worker(merged) == {"0": 9.0, "1": 8.0, "front": 5.0}
