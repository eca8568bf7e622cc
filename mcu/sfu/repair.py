"""Which NACKed packets a consumer resends: only those that can still help, within a budget.

A subscriber behind a thin, lossy link NACKs a great deal; answering every NACK in full sends it
more than its link carries, so fresh media queues behind retransmissions and the losses grow
(measured: 2.7k-22k packets resent per second to a link carrying ~300). Three rules, per
consumer:

- **Too old**: a packet received from the publisher more than :data:`MAX_AGE_S` ago is not
  resent; the receiver's jitter buffer has moved on, and a keyframe request repairs faster.
- **Just resent**: a packet resent to this subscriber less than :data:`RESEND_GUARD_S` ago is
  not resent again (the first copy is still on its way; a browser re-NACKs after its RTT).
- **Budget**: retransmissions may add at most :data:`SHARE` of what the consumer forwards
  (payload bytes), with a burst of :data:`BURST_BYTES` for a loss burst right after a quiet
  spell. The budget follows the consumer's own rate, so a subscriber sent less (a lower layer,
  fewer streams) gets proportionally fewer repairs, never more than its link was carrying.

Pure logic: time and byte counts are passed in; nothing is read on the forwarding hot path (the
budget is credited lazily from the consumer's ``bytes_sent`` when a NACK arrives).
"""

from __future__ import annotations

import enum

from mcu.infra.metrics import new_metrics_id

__all__ = [
    "BURST_BYTES",
    "MAX_AGE_S",
    "RESEND_GUARD_S",
    "SHARE",
    "RepairBudget",
    "Skip",
]

MAX_AGE_S = 1.0
"""Oldest packet (by its arrival from the publisher) still resent. Chromium's video jitter
buffer gives a missing frame up well within a second at the delays of a provincial network; a
second also bounds the history's usefulness (1,024 packets are ~1 s of HD video)."""
RESEND_GUARD_S = 0.1
"""A packet is resent to one subscriber at most once per this long: roughly the round trip of a
provincial network, after which a browser that still misses it asks again."""
SHARE = 0.5
"""Retransmitted bytes may reach half of the forwarded bytes: enough to repair 30 % loss in full,
while fresh media keeps at least two thirds of what the consumer sends."""
BURST_BYTES = 96_000
"""Credit kept at most (and given at the start): the repair of a loss burst of ~80 full-size
packets, e.g. a keyframe lost in a queue overflow."""
_GUARD_SLOTS = 1024
"Packets whose last resend time is kept (a ring, like the producer's history)."


class Skip(enum.Enum):
    """Why a NACKed packet was not resent."""

    TOO_OLD = "too_old"
    JUST_RESENT = "just_resent"
    OVER_BUDGET = "over_budget"


class RepairBudget:
    """One consumer's repair rules (see the module's docstring)."""

    __slots__ = (
        "_counted",
        "_credit",
        "_seq",
        "_time",
        "just_resent",
        "metrics_id",
        "over_budget",
        "too_old",
    )

    def __init__(self) -> None:
        self.metrics_id = new_metrics_id()  # the metrics' sums tell budgets apart by it
        self._credit = float(BURST_BYTES)
        self._counted = 0  # the consumer's bytes_sent when credit was last earned
        self._seq = [-1] * _GUARD_SLOTS
        self._time = [0.0] * _GUARD_SLOTS
        self.too_old = 0
        "NACKed packets not resent: too old to help (:data:`MAX_AGE_S`)."
        self.just_resent = 0
        "NACKed packets not resent: resent to this subscriber moments ago."
        self.over_budget = 0
        "NACKed packets not resent: the subscriber's repair budget was spent."

    def earn(self, bytes_sent: int) -> None:
        """Credit what the consumer forwarded since the last call (its running ``bytes_sent``)."""
        if bytes_sent > self._counted:
            self._credit = min(BURST_BYTES, self._credit + (bytes_sent - self._counted) * SHARE)
        self._counted = bytes_sent

    def check(self, ext_sequence: int, size: int, arrival: float, now: float) -> Skip | None:
        """Whether the packet may be resent now (None), spending its size; else why not."""
        slot = ext_sequence & (_GUARD_SLOTS - 1)
        if now - arrival > MAX_AGE_S:
            self.too_old += 1
            return Skip.TOO_OLD
        if self._seq[slot] == ext_sequence and now - self._time[slot] < RESEND_GUARD_S:
            self.just_resent += 1
            return Skip.JUST_RESENT
        if size > self._credit:
            self.over_budget += 1
            return Skip.OVER_BUDGET
        self._credit -= size
        self._seq[slot] = ext_sequence
        self._time[slot] = now
        return None
