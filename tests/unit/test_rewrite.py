"""SequenceRewriter as tables: incoming packets and operations in, what the rewriter answers out.

Each row is one rewriter's life: a list of (step, expected) pairs. A packet step expects the
outgoing (sequence, timestamp), or the code ``forward`` returns instead (WAITING, LATE,
RESTART); a NACK step expects the incoming extended sequence number, or None; an operation
(resync, withdraw, rebase) expects None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from mcu.media import IncomingPacket
from mcu.sfu.rewrite import LATE, RESTART, WAITING, SequenceRewriter


def P(ext: int, ts: int, at: float = 0.0) -> IncomingPacket:
    """A packet that is not a keyframe."""
    return IncomingPacket(ext, ts, True, b"x", False, None, at)


def K(ext: int, ts: int, at: float = 0.0) -> IncomingPacket:
    """The first packet of a keyframe."""
    return IncomingPacket(ext, ts, True, b"k", True, None, at)


@dataclass(frozen=True)
class Resync:
    pass


@dataclass(frozen=True)
class Withdraw:
    ext: int


@dataclass(frozen=True)
class Rebase:
    clock_rate: int


@dataclass(frozen=True)
class Nack:
    sequence: int
    highest: int


@dataclass(frozen=True)
class Timestamp:
    timestamp: int


Step = IncomingPacket | Resync | Withdraw | Rebase | Nack | Timestamp

# As a consumer makes them (its first numbers are random; fixed here), and as the relay does.
VIDEO: dict[str, Any] = dict(
    first_sequence=1000,
    first_timestamp=5000,
    start_at_keyframe=True,
    restart_at_keyframe=True,
    max_jump=3000,
)
AUDIO: dict[str, Any] = dict(first_sequence=1000, first_timestamp=5000, max_jump=3000)
RELAY_VIDEO: dict[str, Any] = dict(restart_at_keyframe=True, keep_late=True)
RELAY_AUDIO: dict[str, Any] = dict(keep_late=True)


def _apply(rewriter: SequenceRewriter, step: Step) -> object:
    if isinstance(step, IncomingPacket):
        sequence = rewriter.forward(step)
        return sequence if sequence < 0 else (sequence, rewriter.timestamp(step.timestamp))
    if isinstance(step, Resync):
        rewriter.resync()
    elif isinstance(step, Withdraw):
        rewriter.withdraw(step.ext)
    elif isinstance(step, Rebase):
        rewriter.rebase(step.clock_rate)
    elif isinstance(step, Nack):
        return rewriter.incoming(step.sequence, step.highest)
    else:
        return rewriter.timestamp(step.timestamp)
    return None


def _run(config: dict[str, Any], rows: list[tuple[Step, object]]) -> None:
    rewriter = SequenceRewriter(**config)
    assert [_apply(rewriter, step) for step, _ in rows] == [expected for _, expected in rows]


START = [
    pytest.param(
        AUDIO,
        [
            (P(500, 0), (1000, 5000)),
            (P(502, 960), (1002, 5960)),
            (P(501, 480), (1001, 5480)),  # reordered after the start: keeps its place
            (P(502, 960), (1002, 5960)),  # a duplicate maps to the same number again
            (P(499, 0), LATE),  # from before the start
            (P(503, 1440), (1003, 6440)),
        ],
        id="the first packet fixes both offsets",
    ),
    pytest.param(
        VIDEO,
        [
            (P(100, 1000), WAITING),
            (P(101, 1000), WAITING),
            (K(102, 4000), (1000, 5000)),
            (P(101, 1000), LATE),
            (P(103, 7000), (1001, 8000)),
        ],
        id="video starts at a keyframe",
    ),
    pytest.param(
        RELAY_VIDEO,
        [
            (P(100, 1234), (100, 1234)),
            (P(101, 4234), (101, 4234)),
            (P(99, 1234), (99, 1234)),  # the relay passes late packets on
        ],
        id="the relay starts on any packet and keeps numbers and timestamps",
    ),
    pytest.param(
        RELAY_VIDEO,
        [
            (P(-3, 10), (65533, 10)),  # before a first packet, reordered: extended below 0
            (P(-2, 20), (65534, 20)),
            (P(-4, 0), (65532, 0)),
        ],
        id="negative extended numbers are ordinary numbers",
    ),
    pytest.param(
        VIDEO,
        [(Resync(), None), (Withdraw(5), None), (K(7, 0), (1000, 5000))],
        id="resync and withdraw before any packet do nothing",
    ),
]

WRAP = [
    pytest.param(
        {**AUDIO, "first_sequence": 65534},
        [
            (P(10, 0), (65534, 5000)),
            (P(11, 960), (65535, 5960)),
            (P(12, 1920), (0, 6920)),
            (P(13, 2880), (1, 7880)),
        ],
        id="outgoing sequence wraps at 16 bits",
    ),
    pytest.param(
        AUDIO,
        [
            (P(65535, 0), (1000, 5000)),
            (P(65536, 960), (1001, 5960)),
            (P(65537, 1920), (1002, 6920)),
        ],
        id="incoming extended numbers past 16 bits map straight",
    ),
    pytest.param(
        RELAY_AUDIO,
        [(P(65534, 0), (65534, 0)), (P(65535, 1), (65535, 1)), (P(65536, 2), (0, 2))],
        id="the relay's numbers wrap with the publisher's",
    ),
    pytest.param(
        {**AUDIO, "first_timestamp": 0xFFFFFF00},
        [
            (P(1, 0), (1000, 0xFFFFFF00)),
            (P(2, 0x80), (1001, 0xFFFFFF80)),
            (P(3, 0x100), (1002, 0)),
            (P(4, 0x180), (1003, 0x80)),
        ],
        id="outgoing timestamp wraps at 32 bits",
    ),
    pytest.param(
        AUDIO,
        [(P(1, 0xFFFFFC40), (1000, 5000)), (P(2, 0), (1001, 5960))],
        id="incoming timestamp wraps at 32 bits",
    ),
]

HALT = [
    pytest.param(
        VIDEO,
        [
            (K(100, 0), (1000, 5000)),
            (P(101, 3000), (1001, 8000)),
            (Resync(), None),
            (P(40_101, 27_000_000), WAITING),
            (K(40_102, 27_003_000), (1002, 27_008_000)),  # no gap; the real pause in time
            (P(40_103, 27_006_000), (1003, 27_011_000)),
            (P(101, 3000), LATE),  # from before the break
        ],
        id="video resumes at a keyframe after the last number sent",
    ),
    pytest.param(
        AUDIO,
        [
            (P(1, 0), (1000, 5000)),
            (Resync(), None),
            (P(5000, 4_800_000), (1001, 4_805_000)),
        ],
        id="audio resumes at once",
    ),
    pytest.param(
        RELAY_VIDEO,
        [
            (K(100, 0), (100, 0)),
            (P(101, 3000), (101, 3000)),
            (Resync(), None),
            (P(40_000, 900_000), WAITING),
            (K(40_001, 903_000), (102, 903_000)),
            (P(40_002, 906_000), (103, 906_000)),
        ],
        id="the relay resumes at a keyframe after the last number sent",
    ),
    pytest.param(
        RELAY_VIDEO,
        [
            (K(100, 0), (100, 0)),
            (P(101, 3000), (101, 3000)),
            (Resync(), None),
            (K(40_001, 903_000), (102, 903_000)),
            # A retransmission from before the pause would be numbered 101 again (or lower):
            # the edge would take its payload for the one it already has.
            (P(40_000, 900_000), LATE),
            (P(101, 3000), LATE),
            (P(40_002, 906_000), (103, 906_000)),
        ],
        id="after a restart the relay refuses packets from before it",
    ),
    pytest.param(
        RELAY_AUDIO,
        [(P(7, 0), (7, 0)), (Resync(), None), (P(9000, 5), (8, 5))],
        id="relayed audio resumes at once",
    ),
    pytest.param(
        VIDEO,
        [
            (K(1, 0), (1000, 5000)),
            (P(2, 3000), (1001, 8000)),
            (P(3, 6000), (1002, 11000)),
            (Withdraw(3), None),  # the newest never left: its number is used again
            (P(4, 6000), WAITING),
            (K(7, 12000), (1002, 17000)),
        ],
        id="withdrawing the newest packet reuses its number",
    ),
    pytest.param(
        VIDEO,
        [
            (K(1, 0), (1000, 5000)),
            (P(3, 6000), (1002, 11000)),
            (P(2, 3000), (1001, 8000)),
            (Withdraw(2), None),  # an older one never left: follow the newest
            (K(4, 9000), (1003, 14000)),
        ],
        id="withdrawing an older packet follows the newest",
    ),
]

JUMP = [
    pytest.param(
        AUDIO,
        [
            (P(1, 0), (1000, 5000)),
            (P(3001, 960), (4000, 5960)),  # a jump of max_jump passes, gap and all
            (P(6002, 1920), RESTART),  # one more halts
            (P(6002, 1920), (4001, 6920)),  # offered again: starts right after
        ],
        id="a jump beyond max_jump is bridged",
    ),
    pytest.param(
        VIDEO,
        [
            (K(1, 0), (1000, 5000)),
            (P(5000, 3000), RESTART),
            (P(5000, 3000), WAITING),
            (K(5001, 6000), (1001, 11000)),
        ],
        id="video bridges a jump at the next keyframe",
    ),
    pytest.param(
        RELAY_AUDIO,
        [(P(1, 0), (1, 0)), (P(30_000, 960), (30_000, 960))],
        id="the relay has no jump limit",
    ),
]

SWITCH = [
    pytest.param(
        VIDEO,
        [
            (K(100, 1000, at=10.0), (1000, 5000)),
            (P(101, 4000, at=10.1), (1001, 8000)),
            (Resync(), None),
            (Rebase(90_000), None),
            (P(5000, 777, at=10.7), WAITING),
            (K(5001, 3_000_000, at=11.1), (1002, 98_000)),  # +1 s of wall clock since 101
            (P(5002, 3_003_000, at=11.2), (1003, 101_000)),  # then the new source's spacing
        ],
        id="a new source continues numbering and timestamps",
    ),
    pytest.param(
        AUDIO,
        [
            (P(7, 48_000, at=1.0), (1000, 5000)),
            (Resync(), None),
            (Rebase(48_000), None),
            (P(60_000, 5, at=1.0), (1001, 5001)),  # at least one tick later
            (P(60_001, 965, at=1.02), (1002, 5961)),
        ],
        id="a new source arriving at once is one tick later",
    ),
    pytest.param(
        VIDEO,
        [
            (P(1, 0), WAITING),
            (Resync(), None),
            (Rebase(90_000), None),
            (K(40, 123), (1000, 5000)),
        ],
        id="a rewriter that never started starts fresh on the new source",
    ),
    pytest.param(
        VIDEO,
        [
            (K(10, 0, at=0.0), (1000, 5000)),
            (Resync(), None),
            (Rebase(90_000), None),
            (K(70, 90, at=0.5), (1001, 50_000)),
            (Resync(), None),
            (K(80, 9000, at=0.6), (1002, 58_910)),  # the same source again: its own clock
        ],
        id="a rebase applies to the next start only",
    ),
]

NACK = [
    pytest.param(
        AUDIO,
        [
            (P(10, 0), (1000, 5000)),
            (P(11, 960), (1001, 5960)),
            (Nack(1001, 11), 11),
            (Nack(1000, 11), 10),
            (Nack(999, 11), None),  # would be 9: from before the start
            (Nack(1020, 11), 30),  # never sent: where it would be (the history says it is not)
        ],
        id="outgoing numbers map back to incoming ones",
    ),
    pytest.param(
        {**AUDIO, "first_sequence": 65535},
        [
            (P(10, 0), (65535, 5000)),
            (P(11, 960), (0, 5960)),
            (Nack(0, 11), 11),
            (Nack(65535, 11), 10),
        ],
        id="back-mapping across the outgoing wrap",
    ),
    pytest.param(
        AUDIO,
        [
            (P(65535, 0), (1000, 5000)),
            (P(65536, 960), (1001, 5960)),
            (Nack(1001, 65536), 65536),
            (Nack(1000, 65536), 65535),
        ],
        id="back-mapping across the incoming wrap",
    ),
    pytest.param(
        VIDEO,
        [
            (Nack(1000, 10), None),
            (K(10, 0), (1000, 5000)),
            (Resync(), None),
            (Nack(1000, 10), None),  # halted: nothing maps
            (K(500, 90), (1001, 5090)),
            (Nack(1000, 500), None),  # from before the break
            (Nack(1001, 500), 500),
        ],
        id="nothing maps before a start, while halted, or across a break",
    ),
    pytest.param(
        AUDIO,
        [(P(1, 48_000), (1000, 5000)), (Timestamp(48_960), 5960), (Timestamp(47_999), 4999)],
        id="sender-report timestamps take the same offset",
    ),
]


@pytest.mark.parametrize(("config", "rows"), START + WRAP)
def test_start_and_wraparound(config: dict[str, Any], rows: list[tuple[Step, object]]) -> None:
    _run(config, rows)


@pytest.mark.parametrize(("config", "rows"), HALT + JUMP)
def test_halt_and_resume(config: dict[str, Any], rows: list[tuple[Step, object]]) -> None:
    _run(config, rows)


@pytest.mark.parametrize(("config", "rows"), SWITCH)
def test_source_switch(config: dict[str, Any], rows: list[tuple[Step, object]]) -> None:
    _run(config, rows)


@pytest.mark.parametrize(("config", "rows"), NACK)
def test_nack_back_mapping(config: dict[str, Any], rows: list[tuple[Step, object]]) -> None:
    _run(config, rows)
