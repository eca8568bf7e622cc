"""Prometheus metrics of the media plane (no per-room or per-user labels: bounded cardinality).

Two kinds live here. Events that happen per RTCP packet, per join or per decode are ordinary
prometheus-client metrics, incremented where they happen. Per-RTP-packet counts are plain
integers on producers and consumers (a prometheus counter costs a lock per packet per
consumer); :class:`CounterSweep` turns those short-lived integers into monotonic totals at scrape
time. ``docs/operations.md`` lists every metric.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from prometheus_client import Counter, Gauge, Histogram, Info, disable_created_metrics

from mcu import __version__
from mcu.infra import native

# The *_created series double the exposition for no use on a dashboard.
disable_created_metrics()  # type: ignore[no-untyped-call]

WORKER = "0"
"This process's worker index (``set_worker`` changes it when a worker process starts)."

DECODED_FRAMES = Counter(
    "mcu_decoded_frames_total",
    "Video/audio frames decoded by this process (a forwarding-only room decodes none).",
)
PACKETS_DISCARDED = Counter(
    "mcu_rtp_packets_discarded_total", "Incoming RTP packets not forwarded, by reason.", ["reason"]
)
RED_RECEIVED = Counter(
    "mcu_red_packets_received_total",
    "Opus packets publishers sent as RED (RFC 2198), each carrying earlier frames again.",
)
RTX_RECEIVED = Counter(
    "mcu_rtx_packets_received_total", "Retransmissions received from publishers."
)
NACKS_RECEIVED = Counter("mcu_nacks_received_total", "NACK feedback packets from subscribers.")
NACKS_WITHHELD = Counter(
    "mcu_nacks_withheld_total",
    "Missing packets of a publisher's video not NACKed because its producer was shedding load.",
)
RETRANSMISSIONS = Counter("mcu_retransmissions_total", "Packets resent to subscribers after NACKs.")
PLIS_RECEIVED = Counter("mcu_keyframe_requests_received_total", "PLI/FIR from subscribers.")
KEYFRAME_REQUESTS = Counter(
    "mcu_keyframe_requests_sent_total",
    "Keyframe requests (PLI) sent to publishers, after coalescing.",
)
SEND_REFUSED = Counter(
    "mcu_rtp_send_refused_total",
    "Packets a subscriber's transport refused to send, by reason.",
    ["reason"],
)
ROOMS = Gauge("mcu_rooms", "Rooms with at least one participant.")
PARTICIPANTS = Gauge("mcu_participants", "Participants connected, by role.", ["role"])
TRACKS = Gauge("mcu_tracks", "Published tracks, by kind.", ["kind"])
CONSUMERS = Gauge("mcu_consumers", "Forwarded copies of tracks to subscribers.")
SIGNALING_ERRORS = Counter(
    "mcu_signaling_errors_total", "Signalling requests answered with an error, by code.", ["code"]
)
DOCUMENT_JOBS_STOPPED = Counter(
    "mcu_document_jobs_stopped_total",
    "Sandbox jobs (checking an upload, rendering a page) stopped for exceeding a limit.",
)
RELAY_PACKETS_REJECTED = Counter(
    "mcu_relay_packets_rejected_total",
    "Packets received on a relay between nodes that failed SRTP authentication, by reason.",
    ["reason"],
)
# Every label value exists from the start, so dashboards show 0 rather than "no data".
for _role in ("chair", "participant"):
    PARTICIPANTS.labels(_role)
for _kind in ("audio", "video"):
    TRACKS.labels(_kind)
for _reason in ("malformed", "unroutable", "unknown_payload_type", "malformed_red"):
    PACKETS_DISCARDED.labels(_reason)
for _reason in ("not_ready", "closing", "queue_full", "error"):
    SEND_REFUSED.labels(_reason)
for _reason in ("unauthenticated", "replayed"):
    RELAY_PACKETS_REJECTED.labels(_reason)

FORWARDING_LATENCY = Histogram(
    "mcu_forwarding_latency_seconds",
    "Arrival of a publisher's packet to its send to one subscriber, sampled (1 packet in 64).",
    buckets=(25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 0.1),
)
EVENT_LOOP_LAG = Histogram(
    "mcu_event_loop_lag_seconds",
    "How late the event loop ran a task scheduled every 0.5 s.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
EVENT_LOOP_LAST_LAG = Gauge(
    "mcu_event_loop_lag_last_seconds", "The event loop's most recent scheduling delay."
)
HEAP_TRIMS = Counter(
    "mcu_heap_trims_total", "Times freed memory was handed back to the system (malloc_trim)."
)
HEAP_TRIMMED_BYTES = Counter(
    "mcu_heap_trimmed_bytes_total", "Resident memory the process gave back by trimming its heaps."
)
SUBSCRIBER_LOSS = Histogram(
    "mcu_subscriber_loss_ratio",
    "Fraction of packets lost towards subscribers, per RTCP receiver report block.",
    buckets=(0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
)
SUBSCRIBER_ESTIMATE = Histogram(
    "mcu_subscriber_estimate_bits_per_second",
    "Each subscriber's downlink estimate (REMB, reduced for high loss), once a second.",
    buckets=(250e3, 500e3, 1e6, 1.5e6, 2e6, 3e6, 4e6, 6e6, 8e6, 12e6, 20e6),
)
RUNG_STEPS = Counter(
    "mcu_subscriber_rung_steps_total",
    "Subscribers moved down (fewer frames or cameras) or back up the ladder for their link.",
    ["direction"],
)
for _direction in ("down", "up"):
    RUNG_STEPS.labels(_direction)
WORKER_INFO = Info("mcu_worker", "This server process: worker index and version.")


def set_worker(index: int) -> None:
    """This process is worker ``index``: ``WORKER`` and the ``mcu_worker`` info say so."""
    global WORKER
    WORKER = str(index)
    WORKER_INFO.info(
        {
            "worker": WORKER,
            "version": __version__,
            "python": ".".join(map(str, sys.version_info[:3])),
            # "compiled" or "python: <why>" (mcu.infra.native): a compiled build out of date
            # forwards at about half the packets per core.
            "forwarding": native.STATUS,
        }
    )


set_worker(0)

LATENCY_SAMPLE_EVERY = 64
"A consumer observes forwarding latency for one packet in this many (a power of two)."


class Observer(Protocol):
    """What a histogram offers the sampler (a prometheus ``Histogram`` is one)."""

    def observe(self, amount: float) -> None:
        """Record one value."""


class LatencySampler:
    """Feeds the forwarding-latency histogram from one packet in ``every``.

    The hot path pays one AND and one compare per packet; the histogram's lock and the clock
    read happen only for the sampled packet. The caller keeps the count (a consumer's
    ``packets_sent``), so the sampler holds no per-consumer state.
    """

    __slots__ = ("_clock", "_histogram", "_mask")

    def __init__(
        self,
        histogram: Observer = FORWARDING_LATENCY,
        every: int = LATENCY_SAMPLE_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if every < 1 or every & (every - 1):
            raise ValueError("every must be a power of two")
        self._histogram = histogram
        self._mask = every - 1
        self._clock = clock

    def sample(self, count: int, arrival: float, now: float | None = None) -> bool:
        """Observe ``now - arrival`` when ``count`` is a multiple of ``every``; True if it did."""
        if count & self._mask:
            return False
        self.observe(arrival, now)
        return True

    def observe(self, arrival: float, now: float | None = None) -> None:
        """Observe one packet's latency unconditionally (when the caller already sampled)."""
        elapsed = (self._clock() if now is None else now) - arrival
        self._histogram.observe(max(0.0, elapsed))


FORWARDING_SAMPLER = LatencySampler()
"The process's sampler, for consumers to call (see ``docs/operations.md``)."


def observe_receiver_report(fraction_lost: int) -> None:
    """One RTCP receiver-report block from a subscriber (``fraction_lost`` in 1/256)."""
    SUBSCRIBER_LOSS.observe(fraction_lost / 256.0)


_METRICS_IDS = itertools.count(1)


def new_metrics_id() -> int:
    """A number no other object of this process gets: how :class:`CounterSweep` tells the
    objects it sums apart (``id()`` is reused after an object is freed, and the compiled
    forwarding classes cannot be weakly referenced)."""
    return next(_METRICS_IDS)


class Swept(Protocol):
    """What :class:`CounterSweep` sums: an object with a :func:`new_metrics_id` number."""

    @property
    def metrics_id(self) -> int: ...


class CounterSweep:
    """Monotonic totals over short-lived objects that count in plain integer attributes.

    Each :meth:`collect` (a scrape) reads the named attributes of every live object and
    remembers them by the object's ``metrics_id``. An object missing from a later scrape has left
    (its track ended, its subscriber unsubscribed or left): the last values seen of it move into
    a retired total that only grows, so the sums never decrease. What it counted between that
    scrape and leaving is lost, unless whoever closes it calls :meth:`retire` first, which makes
    the totals exact. Nothing here keeps an object alive.
    """

    def __init__(self, fields: Sequence[str]) -> None:
        self.fields = tuple(fields)
        self._retired = [0] * len(self.fields)
        self._last: dict[int, tuple[int, ...]] = {}
        # Retired objects, until a scrape no longer lists them.
        self._done: set[int] = set()

    def _values(self, obj: Swept) -> tuple[int, ...]:
        return tuple(int(getattr(obj, name)) for name in self.fields)

    def _add_retired(self, values: Iterable[int]) -> None:
        self._retired = [a + b for a, b in zip(self._retired, values, strict=True)]

    def retire(self, obj: Swept) -> None:
        """``obj`` will count no more (it closed): add its final values to the totals now."""
        key = obj.metrics_id
        if key in self._done:
            return
        self._done.add(key)
        self._last.pop(key, None)
        self._add_retired(self._values(obj))

    def collect(self, objects: Iterable[Swept]) -> list[int]:
        """The totals: everything retired plus the current values of ``objects``."""
        previous, live, done = self._last, {}, set()
        for obj in objects:
            key = obj.metrics_id
            if key in self._done:
                done.add(key)
                continue
            live[key] = self._values(obj)
            previous.pop(key, None)
        for values in previous.values():  # left since the last scrape
            self._add_retired(values)
        self._last, self._done = live, done
        totals = list(self._retired)
        for values in live.values():
            totals = [a + b for a, b in zip(totals, values, strict=True)]
        return totals
