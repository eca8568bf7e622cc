"""Speech over a lossy line: Opus with RED between Chromium tabs, through the server.

The far tab (behind a veth link dropping 5 % of packets each way, tests/e2e/lossy_room.py) and
the near one publish their microphones. The server answers each browser's ``red/48000/2`` first,
so it sends every frame again in the next packet, and forwards RED to the other tab, its blocks
renumbered to that leg's Opus. A single lost packet then costs no audio: the receiving decoder
conceals much less than the share of packets lost. Without RED it conceals about as much as is
lost (benchmarks/bench_loss.py --compare-opus-fec prints both). Select with ``-k loss``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.e2e.lossy_room import NEEDS_BROWSER_AND_LINKS, inbound_audio, lossy_room

pytestmark = NEEDS_BROWSER_AND_LINKS

# How long the link is lossy (a bound on waiting, never asserted on).
LOSSY_WINDOW_S = 8.0
# Concealed samples over lost packets, at most. Measured 0.03-0.10 with RED on an idle machine
# and 0.9-1.05 without; a loaded machine adds concealment of its own (late playout).
CONCEALED_SHARE = 0.8
FIELDS = ("packetsReceived", "packetsLost", "concealedSamples", "totalSamplesReceived")


async def test_loss_5_percent_audio_is_repaired_by_red(tmp_path: Path) -> None:
    """At 5 % loss each way, both browsers send RED, and both directions' audio loses packets
    yet conceals clearly less than the share lost."""
    async with lossy_room(tmp_path, near=1) as room:
        near, near_id = room.near[0], room.near_ids[0]
        legs = ((near, room.far_id, "up: far -> near"), (room.far, near_id, "down: near -> far"))
        red_before = await room.server.metric("mcu_red_packets_received_total")
        before = [
            inbound_audio(await page.evaluate("window.mcu.stats()"), sender)
            for page, sender, _ in legs
        ]
        await room.link.set_loss(5)
        await asyncio.sleep(LOSSY_WINDOW_S)
        after = [
            inbound_audio(await page.evaluate("window.mcu.stats()"), sender)
            for page, sender, _ in legs
        ]
        await room.link.set_loss(0)
        # Both browsers send their Opus as RED (the server answered RED first).
        assert await room.server.metric("mcu_red_packets_received_total") > red_before
        for (_, _, label), old, new in zip(legs, before, after, strict=True):
            change = {name: new[name] - old.get(name, 0) for name in FIELDS}
            lost = change["packetsLost"] / max(1, change["packetsLost"] + change["packetsReceived"])
            concealed = change["concealedSamples"] / max(1, change["totalSamplesReceived"])
            assert change["packetsLost"] > 0, f"{label}: the link lost nothing: {change}"
            assert change["totalSamplesReceived"] > 0, f"{label}: no audio played: {change}"
            print(f"{label}: {concealed:.2%} of samples concealed, {lost:.2%} of packets lost")
            # Without RED about as much is concealed as lost; with it, a lone loss costs nothing.
            assert concealed < lost * CONCEALED_SHARE, f"{label}: {change}"
