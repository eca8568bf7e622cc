"""SDP offers: our checks before aiortc applies them, as the WebSocket, WHIP and WHEP paths run.

``sdp_offer`` parses with ``aiortc.sdp.SessionDescription.parse`` and runs
:func:`mcu.sfu.peer.check_offer` (publish), :func:`mcu.sfu.viewer.check_viewer_offer` (WHEP) and
the WHIP section mapping; ``whip_body`` starts from the raw HTTP body as WHIP/WHEP read it.
Refusals are :class:`~mcu.sfu.peer.NegotiationError` and :class:`~mcu.infra.httpapi.ApiError` with
status 400.

``sdp_negotiate`` goes further: a real :class:`~aiortc.RTCPeerConnection` applies offers our
checks let through (``setRemoteDescription``) and
:func:`~mcu.sfu.aiortc_adapter.narrow_to_first_codec` picks the codec, as
:meth:`mcu.sfu.peer.PublisherConnection.negotiate` does before answering. ``whep_answer`` runs the
whole WHEP answer: :meth:`mcu.sfu.viewer.ViewerConnection.answer` on a stage, refused only with
:class:`~mcu.sfu.peer.NegotiationError`; an answer parses, has a section per offered one, and sends
on at least one.
"""

from __future__ import annotations

import asyncio

from aiortc import RTCPeerConnection, RTCSessionDescription, sdp

from mcu.infra.httpapi import ApiError
from mcu.media import TrackSource
from mcu.sfu import aiortc_adapter as adapter
from mcu.sfu.peer import NegotiationError, check_offer, close_quietly
from mcu.sfu.stage import Stage
from mcu.sfu.viewer import ViewerConnection, check_viewer_offer
from mcu.signaling.endpoints.whip import _sources, decode_offer

from ..harness import Crash, text


def _offer_checks(offer: str) -> dict[str, TrackSource] | None:
    """Every check an offer meets before aiortc; the WHIP sources if it passes them."""
    try:
        check_viewer_offer(offer)
    except NegotiationError:
        pass
    try:
        sources = _sources(offer)
    except ApiError as exc:
        if exc.status != 400:
            raise Crash(f"an offer refused with {exc.status}") from None
        return None
    try:
        check_offer(offer, sources)
    except NegotiationError:
        return None
    return sources


def sdp_offer(data: bytes) -> None:
    """One offer's text."""
    offer = text(data)
    try:
        sdp.SessionDescription.parse(offer)
    except Exception:  # aiortc's parser raises many types; our checks wrap every one
        pass
    _offer_checks(offer)


def whip_body(data: bytes) -> None:
    """A WHIP/WHEP request body as it arrives."""
    try:
        offer = decode_offer(data)
    except ApiError as exc:
        if exc.status != 400:
            raise Crash(f"a body refused with {exc.status}") from None
        return
    _offer_checks(offer)


_loop: asyncio.AbstractEventLoop | None = None


async def _negotiate(offer: str, sources: dict[str, TrackSource]) -> None:
    pc = RTCPeerConnection()
    try:
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        except Exception:  # negotiate() turns any failure to apply into NegotiationError
            return
        for transceiver in pc.getTransceivers():
            if transceiver.mid in sources and adapter.remote_sends(transceiver):
                codec = adapter.narrow_to_first_codec(transceiver, "video/H264")
                if codec.kind != transceiver.kind:
                    raise Crash(f"a {transceiver.kind} section narrowed to {codec.mime_type}")
    finally:
        await close_quietly(pc)  # as every server path closes a connection


def sdp_negotiate(data: bytes) -> None:
    """An offer our checks accept, applied by aiortc and narrowed as the publish path does."""
    global _loop
    offer = text(data)
    sources = _offer_checks(offer)
    if sources is None:
        return
    if _loop is None:
        _loop = asyncio.new_event_loop()
    _loop.run_until_complete(_negotiate(offer, sources))


async def _answer_viewer(offer: str) -> None:
    viewer = ViewerConnection([], Stage("fuzz"), lambda delta: None)
    try:
        try:
            answer = await viewer.answer(offer)
        except NegotiationError:
            return
        offered = sdp.SessionDescription.parse(offer).media
        answered = sdp.SessionDescription.parse(answer).media
        if len(answered) != len(offered):
            raise Crash(f"{len(offered)} sections offered, {len(answered)} answered")
        if not any(m.direction == "sendonly" for m in answered):
            raise Crash("an answer that sends nothing")
    finally:
        await viewer.close()


def whep_answer(data: bytes) -> None:
    """A WHEP offer answered by a real ViewerConnection, as POST /whep does."""
    global _loop
    offer = text(data)
    if _loop is None:
        _loop = asyncio.new_event_loop()
    _loop.run_until_complete(_answer_viewer(offer))
