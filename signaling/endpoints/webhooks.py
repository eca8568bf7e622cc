"""Webhooks: room events POSTed, signed, to the URLs the hospital platform registered.

The rooms emit events as things happen (:mod:`mcu.signaling.rooms.events`); the
:class:`WebhookSender` turns each into one JSON body with a unique ``id`` and queues it for
every receiver (:class:`~mcu.signaling.endpoints.webhookqueue.Outbox`: one bounded queue per
receiver and room). One task per non-empty queue sends its events one after another, so a
receiver gets a room's events in the order they happened; a failure is tried again with
exponential backoff while that room's later events wait behind it, and other rooms and
receivers go on. Nothing here is awaited by a room: ``emit`` only queues.

With several workers each one sends the events of the rooms it is home to, which keeps a
room's events in one queue. ``GET /api/webhooks/undelivered`` lists what is still waiting and
what was given up; docs/webhooks.md is the receiver's reference.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import Counter, Gauge
from yarl import URL

from mcu import __version__
from mcu.crypto.webhooksig import SIGNATURE_HEADER, signature_header
from mcu.infra import metrics
from mcu.infra.httpapi import bearer_matches, error_response
from mcu.signaling.endpoints.webhookqueue import (
    Outbox,
    OutgoingEvent,
    Pending,
    QueueKey,
    RetryPolicy,
    Undelivered,
)
from mcu.signaling.rooms.events import RoomEvent

__all__ = ["WebhookSender", "setup_webhook_routes"]

logger = logging.getLogger(__name__)

REQUEST_TIMEOUT = 10.0
"Seconds a receiver has to answer one request (connecting included)."
CONNECTIONS = 16
"Requests in flight at once to all receivers (more queues wait for a connection)."
SHUTDOWN_GRACE = 5.0
"Seconds a stopping server gives queued events (the rooms' last ones) to go out."
LISTED_WAITING = 1000
"Waiting events the undelivered listing shows at most (``waiting`` counts them all)."
_WARN_INTERVAL = 60.0
"Seconds between two log warnings that full queues dropped events (the metric counts each)."

DELIVERED = Counter(
    "mcu_webhook_deliveries_total", "Webhook requests a receiver accepted (HTTP 2xx)."
)
FAILED_ATTEMPTS = Counter(
    "mcu_webhook_failed_attempts_total",
    "Webhook requests that failed (no answer in time, refused, or not 2xx); each is retried.",
)
DROPPED = Counter(
    "mcu_webhook_events_dropped_total",
    "Webhook events a receiver will not get, by reason: queue_full, retries_exhausted, shutdown.",
    ["reason"],
)
QUEUE_DEPTH = Gauge(
    "mcu_webhook_queue_depth", "Webhook events waiting for their receivers (all receivers)."
)
for _reason in ("queue_full", "retries_exhausted", "shutdown"):
    DROPPED.labels(_reason)


def _iso(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class WebhookSender:
    """Delivers room events to the platform's receivers: signed, in order per room, retried.

    An :class:`~mcu.signaling.rooms.events.EventSink`. ``secret`` signs every request
    (:mod:`mcu.crypto.webhooksig`); ``clock`` gives Unix time for event times and signatures.
    """

    def __init__(
        self,
        urls: Sequence[str],
        secret: bytes,
        *,
        policy: RetryPolicy | None = None,
        queue_limit: int = 1000,
        total_limit: int = 10_000,
        timeout: float = REQUEST_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.outbox = Outbox(
            tuple(urls), policy or RetryPolicy(), queue_limit=queue_limit, total_limit=total_limit
        )
        self._secret = secret
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._senders: dict[QueueKey, asyncio.Task[None]] = {}
        self._closed = False
        self._warned_at = -_WARN_INTERVAL

    # -- the rooms' side -------------------------------------------------------------------

    def emit(self, event: RoomEvent) -> None:
        """Queue ``event`` for every receiver; returns at once."""
        outgoing = self.outgoing(event)
        if self._closed:  # a room's last words after the sender stopped
            self._count_dropped([Undelivered(outgoing, r, "shutdown", 0, None) for r in self.urls])
            return
        loop = asyncio.get_running_loop()
        started, dropped = self.outbox.add(outgoing, loop.time())
        self._count_dropped(dropped)
        for key in started:
            task = asyncio.create_task(self._send_queue(key))
            self._senders[key] = task
            task.add_done_callback(functools.partial(self._sender_done, key))
        QUEUE_DEPTH.set(self.outbox.depth)

    def outgoing(self, event: RoomEvent) -> OutgoingEvent:
        """``event`` as receivers get it: ``{id, type, time, room, data}``."""
        now = self._clock()
        event_id = "evt_" + secrets.token_hex(12)
        document = {
            "id": event_id,
            "type": event.type,
            "time": _iso(now),
            "room": event.room,
            "data": event.data(),
        }
        try:
            body = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
        except UnicodeEncodeError:  # a lone surrogate in a name (JSON allows "\ud800")
            body = json.dumps(document, separators=(",", ":")).encode()  # escaped, as JSON
        return OutgoingEvent(event_id, event.type, event.room, now, body)

    @property
    def urls(self) -> tuple[str, ...]:
        """The receivers."""
        return self.outbox.receivers

    # -- delivery --------------------------------------------------------------------------

    async def _send_queue(self, key: QueueKey) -> None:
        """Send ``key``'s events one at a time, oldest first, until the queue is empty.

        Each turn delivers or abandons the head, or spends one of its bounded attempts.
        """
        loop = asyncio.get_running_loop()
        while (pending := self.outbox.next(key)) is not None:
            wait = pending.not_before - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            error = await self._post(key[0], pending)
            if error is None:
                self.outbox.delivered(key)
                DELIVERED.inc()
            else:
                FAILED_ATTEMPTS.inc()
                logger.info(
                    "webhook %s of room %s to %s failed (attempt %d): %s",
                    pending.event.id,
                    pending.event.room,
                    _shown(key[0]),
                    pending.attempts + 1,
                    error,
                )
                abandoned = self.outbox.failed(key, error, loop.time())
                if abandoned is not None:
                    self._count_dropped([abandoned])
            QUEUE_DEPTH.set(self.outbox.depth)

    async def _post(self, url: str, pending: Pending) -> str | None:
        """One signed attempt; None when the receiver took it, else what went wrong."""
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONNECTIONS))
        body = pending.event.body
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"mcu/{__version__}",
            SIGNATURE_HEADER: signature_header(self._secret, int(self._clock()), body),
        }
        try:
            async with self._session.post(
                url, data=body, headers=headers, timeout=self._timeout, allow_redirects=False
            ) as response:
                if 200 <= response.status < 300:
                    return None
                return f"HTTP {response.status}"
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}"[:200]

    def _sender_done(self, key: QueueKey, task: asyncio.Task[None]) -> None:
        if self._senders.get(key) is task:
            del self._senders[key]
        if not task.cancelled() and task.exception() is not None:
            logger.error("webhook sender of %s failed", key[1], exc_info=task.exception())

    def _count_dropped(self, dropped: list[Undelivered]) -> None:
        for record in dropped:
            DROPPED.labels(record.reason).inc()
            if record.reason == "retries_exhausted":
                logger.warning(
                    "webhook %s (%s of room %s) to %s abandoned after %d attempts: %s",
                    record.event.id,
                    record.event.type,
                    record.event.room,
                    _shown(record.receiver),
                    record.attempts,
                    record.last_error,
                )
        full = sum(1 for r in dropped if r.reason == "queue_full")
        now = time.monotonic()
        if full and now - self._warned_at >= _WARN_INTERVAL:
            self._warned_at = now
            logger.warning(
                "webhook queues full: events dropped (mcu_webhook_events_dropped_total); "
                "is a receiver down?"
            )

    async def close(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Shutdown: give queued events up to ``grace`` seconds, then drop what is left."""
        self._closed = True
        if self._senders:
            await asyncio.wait(set(self._senders.values()), timeout=grace)
        for task in list(self._senders.values()):
            task.cancel()
        if self._senders:
            await asyncio.gather(*self._senders.values(), return_exceptions=True)
        left = self.outbox.clear()
        if left:
            logger.warning("%d webhook events not delivered before shutdown", len(left))
        self._count_dropped(left)
        QUEUE_DEPTH.set(0)
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- the admin API's listing -----------------------------------------------------------

    def describe_undelivered(self) -> dict[str, Any]:
        """``GET /api/webhooks/undelivered``: events waiting (being retried) and given up."""
        waiting = [
            _entry(p.event, p.receiver, "waiting", None, p.attempts, p.last_error)
            for p, _ in zip(self.outbox.waiting(), range(LISTED_WAITING), strict=False)
        ]
        given_up = [
            _entry(r.event, r.receiver, "dropped", r.reason, r.attempts, r.last_error)
            for r in self.outbox.undelivered
        ]
        return {
            "receivers": [_shown(url) for url in self.urls],
            "waiting": self.outbox.depth,
            "events": given_up + waiting,
        }


def _entry(
    event: OutgoingEvent,
    receiver: str,
    state: str,
    reason: str | None,
    attempts: int,
    last_error: str | None,
) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type,
        "room": event.room,
        "time": _iso(event.time),
        "receiver": _shown(receiver),
        "state": state,
        "reason": reason,
        "attempts": attempts,
        "last_error": last_error,
        "worker": metrics.WORKER,
        "event": json.loads(event.body),
    }


def _shown(url: str) -> str:
    """A receiver's URL as logs and the API show it: no user, password or query (either may
    carry the platform's credentials)."""
    try:
        return str(URL(url).with_user(None).with_query(None).with_fragment(None))
    except ValueError:
        return "(unparsable URL)"


def setup_webhook_routes(
    app: web.Application, sender: WebhookSender | None, *, admin_token: str
) -> None:
    """Mount ``GET /api/webhooks/undelivered`` (admin token): events not (yet) delivered."""
    token = admin_token.encode("utf-8")

    async def undelivered(request: web.Request) -> web.Response:
        """``GET /api/webhooks/undelivered``: events waiting (being retried) and given up."""
        if not bearer_matches(request, token):
            logger.info(
                "admin API: refused %s %s from %s", request.method, request.path, request.remote
            )
            return error_response(
                401,
                "unauthorized",
                "send Authorization: Bearer <admin token>",
                {"WWW-Authenticate": 'Bearer realm="mcu-admin"'},
            )
        listing = (
            sender.describe_undelivered()
            if sender is not None
            else {"receivers": [], "waiting": 0, "events": []}
        )
        # Bodies name the platform's rooms and people.
        return web.json_response(listing, headers={"Cache-Control": "no-store"})

    app.router.add_get("/api/webhooks/undelivered", undelivered, allow_head=False)
