"""The reconnect grace period: participants whose connection was lost, each until a deadline.

A hospital network drops for seconds at a time (a Wi-Fi hand-over, a short outage, a restarting
proxy). Someone whose WebSocket closes without a ``leave`` is kept, away, for a grace period, so
their client can resume as the same participant; only when it passes do they leave. This is the
bookkeeping alone: pure, time passed in (any monotonic clock, in seconds), no timers. The room
arms one timer for :meth:`Absences.next_deadline` and calls :meth:`Absences.expired` when it fires.
"""

from __future__ import annotations

MAX_GRACE_SECONDS = 600.0
"Longest grace period a server may be configured with: an absence holds a seat and its floor."


class Absences:
    """Who is away since their connection was lost, and until when they may come back."""

    __slots__ = ("_until", "grace")

    def __init__(self, grace: float) -> None:
        if not 0 <= grace <= MAX_GRACE_SECONDS:
            raise ValueError(f"grace must be between 0 and {MAX_GRACE_SECONDS:g} s, got {grace}")
        self.grace = grace
        "Seconds an absent participant is kept (0: nobody is kept, a lost connection is a leave)."
        self._until: dict[str, float] = {}

    @property
    def enabled(self) -> bool:
        """Whether lost connections are waited for at all."""
        return self.grace > 0

    def begin(self, participant_id: str, now: float) -> float:
        """``participant_id`` lost its connection at ``now``; returns the deadline to come back.

        An absence that had begun already keeps its deadline: a resume that fails half-way and
        is retried must not extend the wait indefinitely.
        """
        until = self._until.get(participant_id)
        if until is None:
            until = self._until[participant_id] = now + self.grace
        return until

    def end(self, participant_id: str) -> bool:
        """The participant is back (or gone for good); whether they were away."""
        return self._until.pop(participant_id, None) is not None

    def is_away(self, participant_id: str) -> bool:
        """Whether ``participant_id`` is waited for."""
        return participant_id in self._until

    def remaining(self, participant_id: str, now: float) -> float | None:
        """Seconds left to come back (never below 0), or None when not away."""
        until = self._until.get(participant_id)
        return None if until is None else max(0.0, until - now)

    def expired(self, now: float) -> list[str]:
        """Those whose grace has passed at ``now``, earliest deadline first; they are forgotten."""
        gone = sorted((until, pid) for pid, until in self._until.items() if until <= now)
        for _, pid in gone:
            del self._until[pid]
        return [pid for _, pid in gone]

    def next_deadline(self) -> float | None:
        """When the next absence runs out, or None when nobody is away."""
        return min(self._until.values(), default=None)

    def __len__(self) -> int:
        return len(self._until)
