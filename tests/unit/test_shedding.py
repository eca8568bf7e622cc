"""The producer's shed/resume decision, as tables: (timestamp, keyframe, lateness) -> verdict."""

from __future__ import annotations

import pytest

from mcu.sfu.shedding import (
    KEYFRAMES_SHED_ABOVE,
    RESUME_BELOW,
    SHED_ABOVE,
    STALE_ABOVE,
    LoadShedder,
    Verdict,
)

F, S, C, R = Verdict.FORWARD, Verdict.SHED, Verdict.CAUGHT_UP, Verdict.RESUME
ON_TIME = 0.01
BEHIND = SHED_ABOVE + 0.1
BETWEEN = (SHED_ABOVE + RESUME_BELOW) / 2
FAR_BEHIND = KEYFRAMES_SHED_ABOVE + 0.5
STALE = STALE_ABOVE + 0.5

VIDEO_TABLES = {
    "on time, everything goes": [
        (0, True, ON_TIME, F),
        (0, False, ON_TIME, F),
        (3000, False, ON_TIME, F),
    ],
    "behind: delta frames shed whole, resumed together at a keyframe once caught up": [
        (0, True, ON_TIME, F),
        (3000, False, ON_TIME, F),
        (3000, False, BEHIND, F),  # the frame started in time is finished
        (6000, False, BEHIND, S),  # a new frame while behind: shed
        (6000, False, ON_TIME, S),  # ... all of it
        (9000, False, BETWEEN, S),  # not caught up far enough yet (hysteresis)
        (12000, False, ON_TIME, C),  # caught up: shed, ask the publisher for a keyframe
        (15000, False, ON_TIME, C),
        (18000, True, ON_TIME, R),  # the keyframe: every consumer renumbers on, then gets it
        (18000, False, ON_TIME, F),  # the rest of the keyframe
        (21000, False, ON_TIME, F),
    ],
    "a keyframe still goes out while behind, its delta frames do not": [
        (0, False, BEHIND, S),
        (3000, True, BEHIND, R),
        (3000, False, ON_TIME, F),
        (6000, False, ON_TIME, C),  # still shedding until a keyframe arrives in time
        (9000, True, BETWEEN, R),
        (12000, False, BETWEEN, S),
        (15000, True, ON_TIME, R),
        (18000, False, ON_TIME, F),
    ],
    "far behind, keyframes are shed too": [
        (0, True, ON_TIME, F),
        (3000, True, FAR_BEHIND, S),
        (3000, False, ON_TIME, S),
        (6000, True, BETWEEN, R),
    ],
    "stale: nothing goes, not even the rest of a frame begun in time": [
        (0, True, ON_TIME, F),
        (0, False, STALE, S),
        (3000, True, STALE, S),
        (6000, True, ON_TIME, R),
    ],
    "a late packet of an older frame passes only while nothing is shed": [
        (3000, False, ON_TIME, F),
        (0, False, ON_TIME, F),  # a retransmission: forwarded as before
        (6000, False, BEHIND, S),
        (3000, False, ON_TIME, S),  # would land behind a gap the consumers renumbered over
        (9000, True, ON_TIME, R),
        (6000, False, ON_TIME, F),  # older than the resume point: consumers ignore it
    ],
    "timestamps wrap around": [
        (0xFFFFF000, True, ON_TIME, F),
        (0x00000400, False, BEHIND, S),
        (0xFFFFF000, False, ON_TIME, S),
        (0x00000C00, True, ON_TIME, R),
    ],
}


@pytest.mark.parametrize("name", list(VIDEO_TABLES))
def test_video(name: str) -> None:
    shedder = LoadShedder(video=True)
    got = [shedder.decide(ts, key, late) for ts, key, late, _ in VIDEO_TABLES[name]]
    assert got == [verdict for *_, verdict in VIDEO_TABLES[name]]


def test_frames_shed_are_counted_once_per_frame() -> None:
    shedder = LoadShedder(video=True)
    for ts, key, late, _ in VIDEO_TABLES[
        "behind: delta frames shed whole, resumed together at a keyframe once caught up"
    ]:
        shedder.decide(ts, key, late)
    assert shedder.frames_shed == 4  # 6000, 9000, 12000, 15000
    assert not shedder.shedding


AUDIO_TABLE = [
    (0, False, ON_TIME, F),
    (960, False, FAR_BEHIND, F),  # audio is kept long after video is gone
    (1920, False, STALE, S),  # too late to be played: dropped so the queue drains
    (2880, False, STALE, S),
    (3840, False, BEHIND, R),  # consumers renumber on: no gap for anyone to conceal
    (4800, False, ON_TIME, F),
]


def test_audio_is_shed_last_and_only_when_stale() -> None:
    shedder = LoadShedder(video=False)
    got = [shedder.decide(ts, key, late) for ts, key, late, _ in AUDIO_TABLE]
    assert got == [verdict for *_, verdict in AUDIO_TABLE]
    assert shedder.frames_shed == 0 and not shedder.shedding


def test_the_order_of_what_is_given_up() -> None:
    assert RESUME_BELOW < SHED_ABOVE < KEYFRAMES_SHED_ABOVE < STALE_ABOVE
