"""Mixed receivers share few encodes: bitrates snap to a ladder, encodes are capped."""

from __future__ import annotations

import asyncio

import pytest

from mcu.mixer.session import MixSession
from mcu.mixer.specs import MixSpec, choose, quantise

HD = MixSpec(bitrate=1_500_000)


@pytest.mark.parametrize(
    ("asked", "given"),
    [
        (1_500_000, 1_500_000),
        (1_499_999, 1_000_000),
        (800_000, 750_000),
        (499_000, 375_000),
        (250_000, 250_000),
        (100_000, 250_000),  # below the ladder: its lowest step
    ],
)
def test_bitrates_snap_down_to_the_ladder(asked: int, given: int) -> None:
    assert quantise(MixSpec(bitrate=asked)).bitrate == given


def test_thirty_bitrates_make_at_most_the_ladder_of_encodes() -> None:
    specs = {quantise(MixSpec(bitrate=250_000 + i * 41_000)) for i in range(30)}
    assert len(specs) <= 6


def test_a_new_encode_starts_only_within_both_limits() -> None:
    asked = MixSpec(bitrate=500_000)
    # Room and process have room: a new encode.
    assert choose(asked, {HD}, 1) == asked
    # The room is at its limit: the nearest running encode is shared.
    running = {HD, MixSpec(layout="speaker"), MixSpec(page=1), MixSpec(width=640, height=360)}
    assert choose(asked, running, 4, room_limit=4) == HD
    # The process is at its limit, the room is not.
    assert choose(asked, {HD}, 8, process_limit=8) == HD


def test_the_nearest_encode_keeps_layout_and_page_first_and_never_exceeds_the_bitrate() -> None:
    asked = MixSpec(layout="speaker", bitrate=750_000)
    running = [
        MixSpec(layout="grid", bitrate=750_000),
        MixSpec(layout="speaker", bitrate=1_500_000),
        MixSpec(layout="speaker", bitrate=500_000),
    ]
    assert choose(asked, running, 99) == MixSpec(layout="speaker", bitrate=500_000)


def test_a_room_with_no_encode_always_gets_one() -> None:
    assert choose(HD, set(), 99, process_limit=8) == HD


class _SlowVideo:
    """Stands in for a running encode whose stop takes a moment (it awaits its task)."""

    stops = 0

    async def stop(self) -> None:
        await asyncio.sleep(0.01)
        _SlowVideo.stops += 1


async def test_two_receivers_leaving_mixed_mode_at_once_stop_each_encode_once() -> None:
    session = MixSession(
        new_producer=lambda source, codec: None,  # type: ignore[arg-type,return-value]
        sources=list,
        active_speaker=lambda: None,
    )
    try:
        session.videos = {HD: _SlowVideo(), MixSpec(page=1): _SlowVideo()}  # type: ignore[dict-item]
        _SlowVideo.stops = 0
        # Before, the second retain popped a spec the first had already taken: KeyError.
        await asyncio.gather(session.retain(set(), set()), session.retain(set(), set()))
        assert _SlowVideo.stops == 2
        assert session.videos == {}
    finally:
        await session.close()
