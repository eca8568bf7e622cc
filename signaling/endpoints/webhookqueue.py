"""Webhook events waiting for their receivers: one bounded queue per receiver and room.

Pure state, time passed in (:mod:`mcu.signaling.endpoints.webhooks` does the HTTP). A queue is
sent strictly in order, its oldest event first, and an event is retried with exponential
backoff until it is delivered or its attempts run out; so one room's events reach a receiver in
the order they happened, and a dead receiver holds up only its own queues.

Memory is bounded twice: a queue holds at most ``queue_limit`` events and all queues together
``total_limit``. At either bound the oldest event waiting in that queue (never the one being
sent) is dropped to make room, or, when the queue has none to spare, the new event is. Every
dropped or abandoned event is kept, last ``kept_undelivered`` of them, for the admin API.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "DropReason",
    "Outbox",
    "OutgoingEvent",
    "Pending",
    "QueueKey",
    "RetryPolicy",
    "Undelivered",
]

DropReason = Literal["queue_full", "retries_exhausted", "shutdown"]
QueueKey = tuple[str, str]
"(receiver URL, room id)"


@dataclass(frozen=True)
class OutgoingEvent:
    """One event as it is sent: its identity and the exact JSON body."""

    id: str
    "Unique per event: receivers drop repeats by it."
    type: str
    room: str
    time: float
    "When it happened (Unix seconds)."
    body: bytes


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long a failed delivery is tried again."""

    first_delay: float = 1.0
    "Seconds before the second attempt; each further wait doubles."
    max_delay: float = 60.0
    "Longest wait between two attempts."
    max_attempts: int = 8
    "Attempts in all before an event is abandoned (8: over about two minutes)."

    def delay(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt."""
        return min(self.max_delay, self.first_delay * 2.0 ** min(attempts - 1, 62))


@dataclass
class Pending:
    """An event waiting in one queue."""

    event: OutgoingEvent
    receiver: str
    attempts: int = 0
    "Failed attempts so far."
    not_before: float = 0.0
    "Earliest time of the next attempt (the caller's clock)."
    last_error: str | None = None
    sending: bool = False
    "An attempt is under way: the event stays until it ends."


@dataclass(frozen=True)
class Undelivered:
    """An event a receiver will not get from this server: dropped or abandoned."""

    event: OutgoingEvent
    receiver: str
    reason: DropReason
    attempts: int
    last_error: str | None


@dataclass
class Outbox:
    """Every receiver's queues, by room."""

    receivers: tuple[str, ...]
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    queue_limit: int = 1000
    "Events one queue (one receiver, one room) may hold."
    total_limit: int = 10_000
    "Events all queues together may hold."
    kept_undelivered: int = 1000
    "Dropped and abandoned events kept for the admin API (the oldest go first)."
    queues: dict[QueueKey, deque[Pending]] = field(default_factory=dict)
    depth: int = 0
    "Events waiting in all queues."
    undelivered: deque[Undelivered] = field(init=False)

    def __post_init__(self) -> None:
        self.undelivered = deque(maxlen=self.kept_undelivered)

    def add(self, event: OutgoingEvent, now: float) -> tuple[list[QueueKey], list[Undelivered]]:
        """Queue ``event`` for every receiver. Returns the queues that were empty (their
        senders must start) and what was dropped to stay within the bounds."""
        started: list[QueueKey] = []
        dropped: list[Undelivered] = []
        for receiver in self.receivers:
            key = (receiver, event.room)
            queue = self.queues.setdefault(key, deque())
            if not queue:
                started.append(key)
            if len(queue) >= self.queue_limit or self.depth >= self.total_limit:
                victim = next((p for p in queue if not p.sending), None)
                if victim is None:
                    dropped.append(self._drop(Pending(event, receiver, not_before=now)))
                    if not queue:
                        del self.queues[key]
                        started.remove(key)
                    continue
                queue.remove(victim)
                self.depth -= 1
                dropped.append(self._drop(victim))
            queue.append(Pending(event, receiver, not_before=now))
            self.depth += 1
        return started, dropped

    def next(self, key: QueueKey) -> Pending | None:
        """The event to send next on ``key`` (its oldest), marked as being sent; None when the
        queue is empty (and then forgotten)."""
        queue = self.queues.get(key)
        if not queue:
            self.queues.pop(key, None)
            return None
        queue[0].sending = True
        return queue[0]

    def delivered(self, key: QueueKey) -> None:
        """The receiver took the event :meth:`next` gave."""
        self.queues[key].popleft()
        self.depth -= 1

    def failed(self, key: QueueKey, error: str, now: float) -> Undelivered | None:
        """The attempt failed with ``error``: the event waits for its next attempt (its
        ``not_before``), or, its attempts spent, is abandoned and returned."""
        pending = self.queues[key][0]
        pending.attempts += 1
        pending.last_error = error
        pending.sending = False
        if pending.attempts < self.policy.max_attempts:
            pending.not_before = now + self.policy.delay(pending.attempts)
            return None
        self.queues[key].popleft()
        self.depth -= 1
        return self._abandon(pending, "retries_exhausted")

    def clear(self) -> list[Undelivered]:
        """Drop everything still waiting (the server stops)."""
        dropped = [self._abandon(p, "shutdown") for p in self.waiting()]
        self.queues.clear()
        self.depth = 0
        return dropped

    def waiting(self) -> Iterable[Pending]:
        """Every event still waiting, queue by queue, oldest first."""
        for queue in self.queues.values():
            yield from queue

    def _drop(self, pending: Pending) -> Undelivered:
        return self._abandon(pending, "queue_full")

    def _abandon(self, pending: Pending, reason: DropReason) -> Undelivered:
        record = Undelivered(
            pending.event, pending.receiver, reason, pending.attempts, pending.last_error
        )
        self.undelivered.append(record)
        return record
