"""Part of the aiortc adapter: the sender reports of every subscriber leg, on one timer.

aiortc runs a task per sender that wakes every 0.5-1.5 s to send that stream's sender report
(SR) and source description (SDES) as a compound packet of its own: SRTCP-protected and sent
through aioice's ``await`` chain. On a subscriber with audio and video that is two wake-ups, two
protections and two datagrams a second, and at 50 subscribers the reports alone were a tenth
of the server's Python time (``profile_stages.py``, the "RTCP" stage). Here one task serves
every connection: each connection's legs go out together as one compound packet (an SR per
stream and one SDES with a chunk per stream, which RFC 3550 section 6.1 and RFC 8108 section 5.3
allow) at the same randomised interval, protected once and written through the connection's
transmitter.

A sender handed to :func:`shared_sender_reports` before aiortc starts it (before DTLS
connects) runs a quiet stand-in for aiortc's RTCP task: it registers the leg when the sender
starts, and on ``stop()`` (a retired track, a closed connection) takes it out again and still
says goodbye with aiortc's RTCP BYE. A sender already started keeps aiortc's own task.

Receiver reports from the subscriber are read by :func:`mcu.sfu.aiortc_adapter.apply_feedback`
(loss for the downlink estimate, the metrics); aiortc's round-trip time from them, which only
its ``getStats`` shows and the server never reads, needs aiortc's own reports and is not kept.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import RtcpByePacket, RtcpSdesPacket, RtcpSenderInfo, RtcpSourceInfo, RtcpSrPacket

logger = logging.getLogger(__name__)

MIN_INTERVAL = 0.5
MAX_INTERVAL = 1.5
"Seconds between two reports of a connection: uniform in [MIN, MAX], as aiortc (RFC 3550 6.2)."

TICK = 0.25
"Longest sleep of the timer: how late a new connection's first report may be, at most."

SDES_CNAME = 1


@dataclass(eq=False)
class Leg:
    """One sent stream's clock mapping and counters, as its next sender report gives them."""

    ssrc: int
    cname: str | None = None
    ntp_time: int = 0
    rtp_time: int = 0
    packets: int = 0
    octets: int = 0

    def update(self, ntp_time: int, rtp_time: int, packets: int, octets: int) -> None:
        self.ntp_time, self.rtp_time = ntp_time, rtp_time
        self.packets, self.octets = packets, octets


@dataclass(eq=False)
class _Connection:
    transmitter: Any  # mcu.sfu.aiortc_send.SrtpTransmitter (compiled; typed loosely here)
    legs: list[Leg] = field(default_factory=list)


class SenderReports:
    """The process's (one event loop's) sender reports: a heap of connections by due time."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._connections: dict[int, _Connection] = {}  # by id() of the DTLS transport
        self._due: list[tuple[float, int, _Connection]] = []
        self._order = itertools.count()
        self._task: asyncio.Task[None] | None = None

    def add(self, leg: Leg, transmitter: Any) -> None:
        """Report ``leg`` with the other legs on ``transmitter``'s connection from now on."""
        key = id(transmitter._dtls)
        connection = self._connections.get(key)
        if connection is None:
            connection = self._connections[key] = _Connection(transmitter)
            self._schedule(connection, self._clock())
        connection.legs.append(leg)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def remove(self, leg: Leg, transmitter: Any) -> None:
        """Stop reporting ``leg``; a connection with no leg left leaves the heap when due."""
        key = id(transmitter._dtls)
        connection = self._connections.get(key)
        if connection is None or leg not in connection.legs:
            return
        connection.legs.remove(leg)
        if not connection.legs:
            del self._connections[key]

    def __len__(self) -> int:
        return len(self._connections)

    def _schedule(self, connection: _Connection, now: float) -> None:
        due = now + random.uniform(MIN_INTERVAL, MAX_INTERVAL)
        heapq.heappush(self._due, (due, next(self._order), connection))

    async def _run(self) -> None:
        while self._due:
            delay = self._due[0][0] - self._clock()
            if delay > 0:  # at most a tick: a connection added meanwhile may be due sooner
                await asyncio.sleep(min(delay, TICK))
            now = self._clock()
            while self._due and self._due[0][0] <= now:
                _, _, connection = heapq.heappop(self._due)
                if not connection.legs:
                    continue  # every leg left: forgotten
                try:
                    self.send(connection)
                except Exception:  # one connection's failure must not stop everyone's reports
                    logger.exception("sender report failed")
                self._schedule(connection, now)

    def send(self, connection: _Connection) -> bool:
        """Send one compound report for every leg of ``connection`` that has a clock mapping."""
        packets: list[Any] = []
        chunks = []
        for leg in connection.legs:
            if leg.ntp_time:  # before the publisher's first report there is nothing to map
                info = RtcpSenderInfo(
                    ntp_timestamp=leg.ntp_time,
                    rtp_timestamp=leg.rtp_time,
                    packet_count=leg.packets & 0xFFFFFFFF,
                    octet_count=leg.octets & 0xFFFFFFFF,
                )
                packets.append(RtcpSrPacket(ssrc=leg.ssrc, sender_info=info))
            if leg.cname is not None:
                items = [(SDES_CNAME, leg.cname.encode("utf8"))]
                chunks.append(RtcpSourceInfo(ssrc=leg.ssrc, items=items))
        if not packets:  # a compound packet starts with a report (RFC 3550 6.1)
            return False
        if chunks:
            packets.append(RtcpSdesPacket(chunks=chunks))
        sent: bool = connection.transmitter.send_rtcp(b"".join(bytes(p) for p in packets))
        return sent


_reports: dict[asyncio.AbstractEventLoop, SenderReports] = {}


def reports() -> SenderReports:
    """The running loop's :class:`SenderReports`."""
    loop = asyncio.get_running_loop()
    found = _reports.get(loop)
    if found is None:
        for stale in [other for other in _reports if other.is_closed()]:
            del _reports[stale]
        found = _reports[loop] = SenderReports()
    return found


def shared_sender_reports(
    sender: RTCRtpSender, transmitter: Any
) -> Callable[[int, int, int, int], None]:
    """Send ``sender``'s reports on the shared timer (with its connection's other legs, through
    ``transmitter``); returns the sink a :class:`~mcu.sfu.consumer.Consumer` feeds with its
    translated clock mapping and counters."""
    if sender._RTCRtpSender__started:  # type: ignore[attr-defined]
        return _aiortc_sink(sender)  # its own RTCP task already runs: keep feeding that
    leg = Leg(ssrc=sender._ssrc)

    async def run_rtcp() -> None:  # replaces aiortc's task for this sender (see module doc)
        sender._RTCRtpSender__rtcp_started.set()  # type: ignore[attr-defined]
        leg.cname = sender._RTCRtpSender__cname  # type: ignore[attr-defined]
        shared = reports()
        shared.add(leg, transmitter)
        try:
            await asyncio.get_running_loop().create_future()  # until stop() cancels it
        except asyncio.CancelledError:
            pass
        finally:
            shared.remove(leg, transmitter)
        try:
            await sender._send_rtcp([RtcpByePacket(sources=[sender._ssrc])])
        finally:
            sender._RTCRtpSender__rtcp_exited.set()  # type: ignore[attr-defined]

    sender._run_rtcp = run_rtcp  # type: ignore[method-assign]
    return leg.update


def _aiortc_sink(sender: RTCRtpSender) -> Callable[[int, int, int, int], None]:
    def update(ntp_time: int, rtp_time: int, packets: int, octets: int) -> None:
        sender._RTCRtpSender__ntp_timestamp = ntp_time  # type: ignore[attr-defined]
        sender._RTCRtpSender__rtp_timestamp = rtp_time  # type: ignore[attr-defined]
        sender._RTCRtpSender__packet_count = packets  # type: ignore[attr-defined]
        sender._RTCRtpSender__octet_count = octets  # type: ignore[attr-defined]

    return update
