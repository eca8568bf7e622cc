"""End to end over a bad line: a browser behind a lossy or broken link, the others on loopback.

The far participant's Chromium runs in a network namespace of its own, reaching the server over
a veth pair whose packets nftables drops (tests/support/impair.py, tests/e2e/lossy_room.py).
Outcomes are asserted structurally (the session survives, frames keep being decoded, repairs
happened), never against the clock; `benchmarks/bench_loss.py` prints the figures. Select
these with `-k loss`.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from tests.e2e.chromium import Page
from tests.e2e.lossy_room import NEEDS_BROWSER_AND_LINKS, LossyRoom, inbound_video, lossy_room

pytestmark = NEEDS_BROWSER_AND_LINKS

# Bounds on waiting, never asserted on: generous for a loaded 2-core machine.
LOSSY_WINDOW_S = 8.0
REPAIR_LIMIT_S = 20.0
OUTAGE_S = 10.0
RECOVERY_LIMIT_S = 30.0


async def frames_of(page: Page, sender: str) -> int:
    """How many video frames of `sender` the page has decoded."""
    return int(inbound_video(await page.evaluate("window.mcu.stats()"), sender)["framesDecoded"])


async def video_of(page: Page, sender: str) -> dict[str, float]:
    return inbound_video(await page.evaluate("window.mcu.stats()"), sender)


async def states(room: LossyRoom) -> list[str]:
    return [await page.evaluate("window.mcu.state") for page in room.pages]


async def wait_for_more_frames(page: Page, sender: str, than: int, limit: float) -> int:
    """Wait (at most `limit` s) until the page decodes more than `than` frames of `sender`."""
    deadline = time.monotonic() + limit
    while True:
        frames = await frames_of(page, sender)
        if frames > than or time.monotonic() > deadline:
            return frames
        await asyncio.sleep(0.25)


async def test_loss_5_percent_is_repaired_by_nack_and_rtx(tmp_path: Path) -> None:
    """5 % loss each way: both directions are repaired (the browser NACKs the server, which
    resends from its history; the server NACKs the browser, which retransmits as RTX), and video
    keeps being decoded both ways."""
    async with lossy_room(tmp_path, near=1) as room:
        near, near_id = room.near[0], room.near_ids[0]
        before = await room.server_counters()
        far_before = await video_of(room.far, near_id)
        near_frames = await frames_of(near, room.far_id)
        await room.link.set_loss(5)
        deadline = time.monotonic() + REPAIR_LIMIT_S
        while True:
            await asyncio.sleep(1.0)
            counters = await room.server_counters()
            far_now = await video_of(room.far, near_id)
            repaired = (
                far_now["nackCount"] > far_before["nackCount"]
                and counters["mcu_retransmissions_total"] > before["mcu_retransmissions_total"]
                and counters["mcu_rtx_packets_received_total"]
                > before["mcu_rtx_packets_received_total"]
            )
            if repaired or time.monotonic() > deadline:
                break
        assert repaired, f"{far_before} -> {far_now}; {before} -> {counters}"
        assert far_now["framesDecoded"] > far_before["framesDecoded"], await room.describe()
        assert await frames_of(near, room.far_id) > near_frames, await room.describe()
        assert await states(room) == ["joined", "joined"], await room.describe()


async def test_loss_20_percent_session_survives(tmp_path: Path) -> None:
    """20 % loss each way: nobody is dropped, video keeps being decoded both ways during the
    loss, and goes on once the link is clean again."""
    async with lossy_room(tmp_path, near=1) as room:
        near, near_id = room.near[0], room.near_ids[0]
        far_frames = await frames_of(room.far, near_id)
        near_frames = await frames_of(near, room.far_id)
        await room.link.set_loss(20)
        await asyncio.sleep(LOSSY_WINDOW_S)
        far_lossy = await frames_of(room.far, near_id)
        near_lossy = await frames_of(near, room.far_id)
        assert await states(room) == ["joined", "joined"], await room.describe()
        assert far_lossy > far_frames, await room.describe()
        assert near_lossy > near_frames, await room.describe()
        assert (await video_of(room.far, near_id))["nackCount"] > 0

        await room.link.set_loss(0)
        after_far = await wait_for_more_frames(room.far, near_id, far_lossy, RECOVERY_LIMIT_S)
        after_near = await wait_for_more_frames(near, room.far_id, near_lossy, RECOVERY_LIMIT_S)
        assert after_far > far_lossy and after_near > near_lossy, await room.describe()
        assert await states(room) == ["joined", "joined"], await room.describe()


async def test_outage_of_one_participant_leaves_others_unaffected(tmp_path: Path) -> None:
    """The far participant's link is cut (every packet, TCP too) for 10 s: the two others keep
    decoding each other all along, and once the link is back the far participant and the others
    decode each other again, all still in the room."""
    async with lossy_room(tmp_path, near=2, link_index=2) as room:
        (first, second), (first_id, second_id) = room.near, room.near_ids
        pair_before = (await frames_of(first, second_id), await frames_of(second, first_id))
        far_before = await frames_of(room.far, first_id)
        await room.link.cut()
        await asyncio.sleep(OUTAGE_S / 2)
        pair_middle = (await frames_of(first, second_id), await frames_of(second, first_id))
        from_far_middle = await frames_of(first, room.far_id)
        await asyncio.sleep(OUTAGE_S / 2)
        pair_end = (await frames_of(first, second_id), await frames_of(second, first_id))
        from_far_end = await frames_of(first, room.far_id)
        far_end = await frames_of(room.far, first_id)
        await room.link.restore()

        # The others decoded each other in both halves of the outage.
        assert pair_before[0] < pair_middle[0] < pair_end[0], await room.describe()
        assert pair_before[1] < pair_middle[1] < pair_end[1], await room.describe()
        # The cut was real: nothing of the far participant arrived in its second half.
        assert from_far_end == from_far_middle, await room.describe()

        far_after = await wait_for_more_frames(room.far, first_id, far_end, RECOVERY_LIMIT_S)
        from_far_after = await wait_for_more_frames(
            first, room.far_id, from_far_end, RECOVERY_LIMIT_S
        )
        assert far_after > max(far_end, far_before), await room.describe()
        assert from_far_after > from_far_end, await room.describe()
        assert await states(room) == ["joined"] * 3, await room.describe()
