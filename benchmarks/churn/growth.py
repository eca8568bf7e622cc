"""The verdict of a soak: did anything the server holds grow while the same activity repeated?

Pure functions over samples (no I/O, no clock), so the rules are tested as a table.

Only *boundary* samples are judged: each is taken at the end of a cycle, once every participant,
viewer and recording of the cycle is gone, so they compare like with like. The first
``warmup`` cycles are left out (caches filling, the first recording importing PyAV, thread
pools growing to their steady size, the composite renderer's process starting). The remaining
boundaries are cut in thirds; each series' median of the last third is compared with a
reference median:

- sizes (resident memory, SQLite files) against the **middle** third: memory settles slowly
  (allocator arenas, caches), so growth is what is still happening at the end; it fails above
  ``tolerance`` (10 %) of the reference and above an absolute floor (one allocator step for
  memory, :data:`RSS_STEP_MIB`);
- counts (file descriptors, asyncio tasks, threads, processes) against the **first** third: they
  should come back to the same value after every cycle, so any rise beyond a small slack
  (a scrape's own connection, a timer in flight) fails.

A write-ahead log is reported but judged against SQLite's own bound instead: it is reused from
its start after each checkpoint (every ~1,000 pages), so it grows to about 4 MiB and stops,
unless something keeps a read transaction open, which then shows as a log far past that bound.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from .resources import RESOURCES, Sample

RSS_STEP_MIB = 20.0
"""Memory growth always allowed: a process whose counts all come back still moves in steps of
10-18 MiB now and then (the allocators' arenas reaching a new high-water mark; measured at the
ends of 150 s soaks after every room's memory is collected and trimmed), so on a ~150 MiB
worker 10 % alone would call one such step a leak. Over the CI run's 11 boundaries a leak of
~5 MiB a cycle or more still fails; the long runs judge against 10 % of ~700 MiB anyway."""

WAL_LIMIT_KIB = 3 * 4096.0
"A write-ahead log past this (three times the ~4 MiB autocheckpoint) is not being checkpointed."


@dataclass(frozen=True)
class Rule:
    """How one kind of series is judged."""

    reference: str
    "``middle`` or ``first`` third of the judged boundaries."
    relative: float
    "Growth allowed as a fraction of the reference median."
    absolute: float
    "Growth always allowed, in the series' unit (noise on small values)."


def rule_for(series: str, tolerance: float) -> Rule:
    """The rule for ``series`` (``resource:process``)."""
    resource = series.split(":", 1)[0]
    if resource == "rss_mib":
        return Rule("middle", tolerance, RSS_STEP_MIB)
    if resource == "sqlite_kib":
        return Rule("middle", tolerance, 64.0)
    slack = {"fds": 2.0, "tasks": 2.0, "threads": 1.0, "procs": 0.0}.get(resource, 0.0)
    return Rule("first", 0.0, slack)


@dataclass(frozen=True)
class Judgement:
    """One series over the judged boundaries."""

    series: str
    first: float
    "Median of the first third."
    middle: float
    "Median of the middle third."
    last: float
    "Median of the last third."
    growth: float
    "``last`` minus the reference median."
    allowed: float
    "The most growth the rule allows here."
    passed: bool
    note: str = ""


def thirds(values: Sequence[float]) -> tuple[list[float], list[float], list[float]]:
    """``values`` cut in three; the middle takes what does not divide (never empty for n ≥ 3)."""
    k = len(values) // 3
    return list(values[:k]), list(values[k : len(values) - k]), list(values[len(values) - k :])


def judge(
    boundaries: Sequence[Sample], warmup: int, tolerance: float
) -> tuple[list[Judgement], str | None]:
    """Judge every series over the boundaries of cycles after ``warmup``.

    Returns the judgements and, when there are too few boundaries to judge (fewer than 3 after
    the warm-up), a sentence saying so instead of a verdict.
    """
    judged = [s for s in boundaries if s.cycle > warmup]
    if len(judged) < 3:
        return [], (
            f"{len(judged)} cycle boundaries after a warm-up of {warmup} cycles: at least 3"
            " are needed (run longer)"
        )
    names = sorted({name for s in judged for name in s.values})
    results = []
    for name in names:
        series = [s.values[name] for s in judged if name in s.values]
        if len(series) < 3:
            continue
        first, middle, last = (statistics.median(part) for part in thirds(series))
        if name.startswith("sqlite_kib:") and name.endswith("-wal"):
            passed = max(series) <= WAL_LIMIT_KIB
            note = "" if passed else f"write-ahead log past {WAL_LIMIT_KIB:.0f} KiB"
            results.append(
                Judgement(name, first, middle, last, last - middle, WAL_LIMIT_KIB, passed, note)
            )
            continue
        rule = rule_for(name, tolerance)
        reference = middle if rule.reference == "middle" else first
        allowed = max(rule.relative * reference, rule.absolute)
        growth = last - reference
        results.append(Judgement(name, first, middle, last, growth, allowed, growth <= allowed))
    return results, None


def _order(name: str) -> tuple[int, str]:
    resource, _, process = name.partition(":")
    rank = RESOURCES.index(resource) if resource in RESOURCES else len(RESOURCES)
    return (rank, process)


def sample_header(names: Sequence[str]) -> str:
    """The column titles of the sample table."""
    return "   t(s) cycle  " + " ".join(f"{n:>16}" for n in names)


def sample_row(sample: Sample, names: Sequence[str]) -> str:
    """One line of the sample table (``*`` marks a cycle boundary)."""
    cells = " ".join(
        f"{sample.values[n]:>16.1f}" if n in sample.values else f"{'-':>16}" for n in names
    )
    mark = "*" if sample.boundary else " "
    return f"{sample.t:>7.0f} {sample.cycle:>5}{mark} {cells}"


def column_names(samples: Sequence[Sample]) -> list[str]:
    """Every series seen, per-process resources first, in a stable order."""
    return sorted({n for s in samples for n in s.values}, key=_order)


def comparison(samples: Sequence[Sample]) -> list[str]:
    """First third against last third of *all* samples (busy and idle alike): the curves'
    ends, for reading; the verdict uses boundaries only."""
    lines = [f"{'series':<28} {'first third':>12} {'last third':>12} {'change':>9}"]
    for name in column_names(samples):
        values = [s.values[name] for s in samples if name in s.values]
        if len(values) < 3:
            continue
        first, _, last = thirds(values)
        a, b = statistics.median(first), statistics.median(last)
        change = f"{(b - a) / a * 100:+.1f} %" if a else "—"
        lines.append(f"{name:<28} {a:>12.1f} {b:>12.1f} {change:>9}")
    return lines


def verdict_lines(judgements: Sequence[Judgement]) -> list[str]:
    """The boundary verdict as a table, one series a line."""
    lines = [f"{'series':<28} {'first':>9} {'middle':>9} {'last':>9} {'growth':>9} {'allowed':>9}"]
    for j in sorted(judgements, key=lambda j: _order(j.series)):
        mark = "ok" if j.passed else "GROWS"
        lines.append(
            f"{j.series:<28} {j.first:>9.1f} {j.middle:>9.1f} {j.last:>9.1f} {j.growth:>+9.1f}"
            f" {j.allowed:>9.1f}  {mark} {j.note}".rstrip()
        )
    return lines
