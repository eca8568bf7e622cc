"""Prometheus metrics of the media plane (no per-room or per-user labels: bounded cardinality)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

DECODED_FRAMES = Counter(
    "mcu_decoded_frames_total",
    "Video/audio frames decoded by this process (a forwarding-only room decodes none).",
)
PACKETS_DISCARDED = Counter(
    "mcu_rtp_packets_discarded_total", "Incoming RTP packets not forwarded, by reason.", ["reason"]
)
RTX_RECEIVED = Counter(
    "mcu_rtx_packets_received_total", "Retransmissions received from publishers."
)
NACKS_RECEIVED = Counter("mcu_nacks_received_total", "NACK feedback packets from subscribers.")
RETRANSMISSIONS = Counter("mcu_retransmissions_total", "Packets resent to subscribers after NACKs.")
PLIS_RECEIVED = Counter("mcu_keyframe_requests_received_total", "PLI/FIR from subscribers.")
KEYFRAME_REQUESTS = Counter(
    "mcu_keyframe_requests_sent_total",
    "Keyframe requests (PLI) sent to publishers, after coalescing.",
)
ROOMS = Gauge("mcu_rooms", "Rooms with at least one participant.")
PARTICIPANTS = Gauge("mcu_participants", "Participants connected, by role.", ["role"])
TRACKS = Gauge("mcu_tracks", "Published tracks, by kind.", ["kind"])
CONSUMERS = Gauge("mcu_consumers", "Forwarded copies of tracks to subscribers.")
SIGNALING_ERRORS = Counter(
    "mcu_signaling_errors_total", "Signalling requests answered with an error, by code.", ["code"]
)
