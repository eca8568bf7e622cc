"""A subscribe connection that closed while an offer was due (its participant left, or lost it)
refuses the offer with a negotiation error the room handles, never an aiortc exception that
escapes as a traceback (seen when a node shut down mid-renegotiation)."""

from __future__ import annotations

import pytest

from mcu.media import CodecInfo, TrackSource
from mcu.sfu.peer import NegotiationError, SubscriberConnection
from mcu.sfu.producer import Producer


async def test_an_offer_on_a_closed_connection_is_a_negotiation_error() -> None:
    subscriber = SubscriberConnection([], lambda _: None)
    producer = Producer("t1", "p1", TrackSource.CAMERA, CodecInfo("video/VP8", 90000), lambda: None)
    await subscriber.pc.close()
    with pytest.raises(NegotiationError, match="closed"):
        await subscriber.offer([producer])
    assert not subscriber.offer_outstanding
