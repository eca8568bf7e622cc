"""A subscribe connection closed while an offer is taking its tracks off (its participant left
just as another's leave renegotiated it): the offer ends in the negotiation error the room
handles, not a KeyError (seen after a participant resumed on a cluster node). Real aiortc peers
on loopback: only a connected sender's stop() yields to the loop, which opens the window."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from mcu.media import CodecInfo, TrackSource
from mcu.sfu.peer import NegotiationError, SubscriberConnection
from mcu.sfu.producer import Producer


async def test_a_connection_closed_while_an_offer_retires_tracks() -> None:
    subscriber = SubscriberConnection([], lambda _: None)
    client = RTCPeerConnection()
    try:
        producers = [
            Producer(f"t{i}", "p1", TrackSource.CAMERA, CodecInfo("video/VP8", 90000), lambda: None)
            for i in (1, 2)
        ]
        sdp, _ = await subscriber.offer(producers)
        await client.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await client.setLocalDescription(await client.createAnswer())
        await subscriber.answer(client.localDescription.sdp)
        deadline = time.monotonic() + 20
        while subscriber.pc.connectionState != "connected":
            assert time.monotonic() < deadline, subscriber.pc.connectionState
            await asyncio.sleep(0.05)

        retiring = asyncio.create_task(subscriber.offer([]))  # takes both tracks off
        await asyncio.sleep(0)  # stopping the first track's sender waits on the loop ...
        await subscriber.close()  # ... while the participant leaves
        with pytest.raises(NegotiationError, match="closed"):
            await retiring
        assert subscriber.track_ids == set()
    finally:
        await client.close()
        await subscriber.close()
