"""How much one subscriber's link carries: its downlink estimate, from what the subscriber reports.

The server sends; only the receiver knows what arrives and how late. Two reports say it:

- **REMB** (``goog-remb``): the receiver's own estimate of its whole downlink, in bits per
  second, from how the delay between packets grows (abs-send-time, which every subscribe offer
  negotiates). Chromium sends it only when transport-wide congestion control is not negotiated,
  which the server never offers (aiortc has none), so it comes about once a second and at once
  when the estimate falls. It covers the transport, not a stream: it lists every SSRC it
  applies to, so each consumer of the connection receives the same figure, and it is kept once,
  per connection, here. A thin link's queue shows in the delay before the tail drops a packet,
  so this is the early, absolute figure, and the one the estimate follows.
- **Receiver reports' fraction lost**, per stream: random loss on a rural line does not show in
  delay, and a REMB alone would keep sending at a rate the link loses a tenth of. Above
  :data:`HIGH_LOSS` the REMB figure is reduced as Google's congestion control reduces its own
  (by half the loss), so the ladder steps down; below it, loss changes nothing (NACK repairs it).

A connection that never sent a REMB (a receiver without it) has no estimate: the subscriber gets
everything, as before, rather than a guess.

Smoothing: a lower REMB is taken at once (the queue is growing now), a higher one is approached
over :data:`RISE_SECONDS` (Chromium's own estimate overshoots while probing, and stepping up and
back down costs the subscriber keyframes). Pure: times are passed in.
"""

from __future__ import annotations

__all__ = ["HIGH_LOSS", "LOSS_WEIGHT", "RISE_SECONDS", "DownlinkEstimate"]

RISE_SECONDS = 4.0
"""A higher REMB is followed at this time constant: after 4 s the estimate has gone ~63 % of
the way (a step down takes effect at once)."""
HIGH_LOSS = 0.1
"""Loss above which the estimate is reduced (Google congestion control's threshold): below it,
NACK repairs what is lost within a tenth of the budget (mcu/sfu/repair.py)."""
LOSS_WEIGHT = 0.3
"""Weight of each receiver-report block in the smoothed loss (~3 reports to follow a change)."""


class DownlinkEstimate:
    """One subscribe connection's available downlink, in bits per second."""

    __slots__ = ("_loss", "_remb", "_remb_at", "reports")

    def __init__(self) -> None:
        self._remb: float | None = None
        self._remb_at = 0.0
        self._loss = 0.0
        self.reports = 0
        "REMB packets taken (every consumer of the connection passes the same one on)."

    def on_remb(self, bitrate: int, now: float) -> None:
        """A REMB from the subscriber (the same packet may come once per stream it lists)."""
        self.reports += 1
        if bitrate < 0:
            return
        current = self._remb
        if current is None or bitrate <= current:
            self._remb = float(bitrate)
        else:
            elapsed = max(0.0, now - self._remb_at)
            self._remb = current + (bitrate - current) * min(1.0, elapsed / RISE_SECONDS)
        self._remb_at = now

    def on_loss(self, fraction_lost: int) -> None:
        """A receiver-report block's fraction lost (in 1/256, as on the wire)."""
        fraction = min(max(fraction_lost, 0), 255) / 256.0
        self._loss += (fraction - self._loss) * LOSS_WEIGHT

    @property
    def loss(self) -> float:
        """The smoothed fraction of packets lost towards the subscriber (0..1)."""
        return self._loss

    @property
    def remb(self) -> float | None:
        """The subscriber's own figure (smoothed as above, not reduced for loss), or None."""
        return self._remb

    @property
    def bitrate(self) -> int | None:
        """The estimate in bits per second, or None when the subscriber sent no REMB yet."""
        if self._remb is None:
            return None
        rate = self._remb
        if self._loss > HIGH_LOSS:
            rate *= 1.0 - 0.5 * self._loss
        return int(rate)
