"""How many signalling WebSockets may be open, and how long one may stay without joining.

One client must not hold the server's sockets (file descriptors, heartbeats, memory) for
everyone: each client address may keep ``per_address`` WebSockets open, the process
``total``, and a socket that has not joined a room within ``join_timeout`` seconds is closed.
:class:`SocketLimits` is the bookkeeping (no I/O); the single server's ``/ws`` handler and the
front apply it with :func:`refuse_websocket`; :class:`SocketLimitsCollector` exposes its counts.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterator
from typing import Literal

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mcu.infra.httpapi import error_response

__all__ = [
    "RETRY_AFTER_SECONDS",
    "FrameRate",
    "Refusal",
    "SocketLimits",
    "SocketLimitsCollector",
    "address_key",
    "refuse_websocket",
]

logger = logging.getLogger(__name__)

Refusal = Literal["address", "total"]
"Why a socket was refused: its address holds ``per_address`` already, or the process ``total``."

IPV6_SITE_PREFIX = 64
"One IPv6 site (a hospital, a household) gets a /64 and may use any address in it."
RETRY_AFTER_SECONDS = 10
"``Retry-After`` of a refusal: sockets close as meetings end, not within a second."


FRAMES_PER_SECOND = 20.0
"Sustained client frames per second a socket may send: a busy client sends a few."
FRAME_BURST = 40
"Frames a socket may send at once above that rate (a join followed by its first requests)."
EXCESS_TO_CLOSE = 200
"Frames over the rate within ``EXCESS_WINDOW_SECONDS`` after which the socket is closed."
EXCESS_WINDOW_SECONDS = 10.0


class FrameRate:
    """A token bucket over one socket's client frames, time passed in.

    ``take`` says whether a frame may be handled; a frame over the rate is dropped by the
    caller (answered with at most one ``rate_limited`` error a second). A socket that keeps
    flooding is told to close.
    """

    __slots__ = ("_excess", "_excess_since", "_last", "_tokens", "_warned_at", "burst", "rate")

    def __init__(self, rate: float = FRAMES_PER_SECOND, burst: int = FRAME_BURST) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last: float | None = None
        self._excess = 0
        self._excess_since = 0.0
        self._warned_at = float("-inf")

    def take(self, now: float) -> bool:
        """Whether a frame arriving at ``now`` may be handled (it then spends a token)."""
        if self._last is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        if now - self._excess_since >= EXCESS_WINDOW_SECONDS:
            self._excess, self._excess_since = 0, now
        self._excess += 1
        return False

    def should_warn(self, now: float) -> bool:
        """Whether to answer this dropped frame with an error (at most once a second)."""
        if now - self._warned_at >= 1.0:
            self._warned_at = now
            return True
        return False

    def should_close(self) -> bool:
        """Whether the socket has flooded long enough to be closed."""
        return self._excess >= EXCESS_TO_CLOSE


def address_key(address: str) -> str:
    """What ``address`` is counted as: an IPv4 address as itself (IPv4-mapped IPv6 too), an
    IPv6 address as its /64, anything unparsable (``unknown``) as itself."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_SITE_PREFIX), strict=False))
    return str(ip)


class SocketLimits:
    """Open WebSockets per client address and in all, against their caps; refusal and
    join-deadline counts for the metrics."""

    def __init__(self, per_address: int, total: int, join_timeout: float) -> None:
        if per_address < 1 or total < 1 or join_timeout <= 0:
            raise ValueError("limits must be positive")
        self.per_address = per_address
        "WebSockets one address (an IPv6 /64) may keep open."
        self.total = total
        "WebSockets this process keeps open in all."
        self.join_timeout = join_timeout
        "Seconds a WebSocket may stay open without joining a room."
        self.open = 0
        "WebSockets open now."
        self.refused: dict[Refusal, int] = {"address": 0, "total": 0}
        "WebSockets refused so far, by reason."
        self.join_timeouts = 0
        "WebSockets closed so far for not joining in time."
        self.frames_dropped = 0
        "Client frames dropped so far for exceeding a socket's rate."
        self.flood_closes = 0
        "WebSockets closed so far for flooding."
        self._by_address: dict[str, int] = {}

    def admit(self, address: str) -> Refusal | None:
        """Count one more WebSocket from ``address`` and return None; or, when a cap is reached,
        count the refusal and return its reason (nothing else is counted). Every admitted socket
        must be :meth:`release`\\ d once."""
        key = address_key(address)
        held = self._by_address.get(key, 0)
        refusal: Refusal | None = None
        if held >= self.per_address:
            refusal = "address"
        elif self.open >= self.total:
            refusal = "total"
        if refusal is not None:
            self.refused[refusal] += 1
            return refusal
        self._by_address[key] = held + 1
        self.open += 1
        return None

    def release(self, address: str) -> None:
        """An admitted WebSocket from ``address`` has closed."""
        key = address_key(address)
        held = self._by_address.get(key, 0)
        if held <= 0:
            raise ValueError(f"no open WebSocket from {address!r} to release")
        if held == 1:
            del self._by_address[key]  # the table holds only addresses with open sockets
        else:
            self._by_address[key] = held - 1
        self.open -= 1

    def held_by(self, address: str) -> int:
        """WebSockets open now from ``address`` (its /64 for IPv6)."""
        return self._by_address.get(address_key(address), 0)

    def join_timed_out(self) -> None:
        """A WebSocket was closed for not joining within ``join_timeout``."""
        self.join_timeouts += 1

    @property
    def join_timeout_reason(self) -> str:
        """The close reason of a socket that did not join in time (at most 123 bytes)."""
        return f"no join within {self.join_timeout:g} s"

    def refusal_reply(self, refusal: Refusal) -> tuple[int, str, str]:
        """(HTTP status, error code, message) refusing a WebSocket before its upgrade."""
        if refusal == "address":
            return (
                429,
                "too_many_connections",
                f"this address has {self.per_address} WebSockets open, the most allowed; "
                "close one first",
            )
        return (
            503,
            "busy",
            f"the server has {self.total} WebSockets open, the most it allows; try again shortly",
        )


def refuse_websocket(sockets: SocketLimits, address: str) -> web.Response | None:
    """Count a new WebSocket from ``address`` against ``sockets``; None when it may open, else
    the reply refusing it before the upgrade (429 for its address, 503 for the server's total).
    An admitted socket is released by whoever serves it."""
    refusal = sockets.admit(address)
    if refusal is None:
        return None
    status, code, message = sockets.refusal_reply(refusal)
    logger.debug("%s: WebSocket refused (%s)", address, refusal)
    return error_response(status, code, message, {"Retry-After": str(RETRY_AFTER_SECONDS)})


DESCRIPTOR_HEADROOM = 1024
"File descriptors kept for everything but signalling sockets: media, database, files."


def descriptors_short(max_websockets: int, per_socket: int, open_files_limit: int) -> int:
    """How many file descriptors the process lacks to hold ``max_websockets`` sockets of
    ``per_socket`` descriptors each, plus headroom, under ``open_files_limit`` (0: enough)."""
    return max(0, max_websockets * per_socket + DESCRIPTOR_HEADROOM - open_files_limit)


class SocketLimitsCollector(Collector):
    """The counts of a :class:`SocketLimits` as Prometheus metrics, read at scrape time."""

    def __init__(self, limits: SocketLimits) -> None:
        self._limits = limits

    def collect(self) -> Iterator[Metric]:
        """One scrape."""
        limits = self._limits
        yield GaugeMetricFamily(
            "mcu_websockets_open", "Signalling WebSockets open.", value=limits.open
        )
        refused = CounterMetricFamily(
            "mcu_websocket_refused",
            "WebSockets refused before the upgrade, by reason: address (the client address "
            "holds max_websockets_per_address) or total (max_websockets reached).",
            labels=["reason"],
        )
        for reason, count in limits.refused.items():
            refused.add_metric([reason], count)
        yield refused
        yield CounterMetricFamily(
            "mcu_websocket_join_timeouts",
            "WebSockets closed because they joined no room within join_timeout seconds.",
            value=limits.join_timeouts,
        )
        yield CounterMetricFamily(
            "mcu_websocket_frames_dropped",
            "Client frames dropped because a socket sent over 20 a second (burst 40).",
            value=limits.frames_dropped,
        )
        yield CounterMetricFamily(
            "mcu_websocket_flood_closes",
            "WebSockets closed (1008) for sending over their rate for too long.",
            value=limits.flood_closes,
        )
