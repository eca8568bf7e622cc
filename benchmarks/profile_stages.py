"""Where our server's event loop spends its time per forwarded packet, by stage.

    sudo .venv/bin/python benchmarks/janus_compare.py --servers ours --n 200 --profile /tmp/prof
    .venv/bin/python benchmarks/profile_stages.py /tmp/prof/ours-N200-1.txt --us-per-packet 35.2

Reads py-spy's raw (collapsed) stacks of the server's main thread (``janus_compare.py
--profile`` records the steady window, non-blocking, so a native call's time is charged to the
Python line that made it: the transmitter's ``_protect(...)`` line is libsrtp, its ``_sendto(...)``
line the syscall) and sorts every sample into the first stage whose rule matches its
stack, innermost frame first. With ``--us-per-packet`` (the run's ``us/pkt``: server CPU over
packets the subscribers received) each stage's share of the busy samples is also given in µs per
forwarded packet. Samples with no Python frame under the loop's ``run`` are counted apart as
idle: the loop waiting in epoll, but also uvloop's own C work (reading datagrams off sockets
before a Python callback runs), which this view cannot split; ``perf`` can (README).
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

# (stage, test on the stack's frames): first match wins, so the order matters.
STAGES: list[tuple[str, str]] = [
    ("egress: send syscall (kernel, loopback delivery included)", "send-line"),
    ("egress: SRTP protect (libsrtp through cffi)", "protect"),
    ("egress: rewrite + header (Consumer, SequenceRewriter)", "consumer"),
    ("fan-out loop + history (Producer.on_rtp)", "producer"),
    ("ingress: SRTP unprotect + parse + NACK/lateness (publisher)", "ingress"),
    ("RTCP: reports, REMB, feedback (all connections)", "rtcp"),
    ("ICE: consent checks, STUN", "ice"),
    ("downlink adaptation, speaker, metrics, other timers", "timers"),
    ("signalling, joins, DTLS handshakes", "signalling"),
    ("other", "other"),
]


# The join phase (``-joins-`` files, or --joins): where a subscriber's join goes.
JOIN_STAGES: list[tuple[str, str]] = [
    ("certificate: a new key and self-signed certificate per connection", "certificate"),
    ("DTLS handshake (OpenSSL)", "dtls"),
    ("ICE: gathering, checks, consent", "ice"),
    ("SDP: offers, answers, transceivers", "sdp"),
    ("signalling: WebSocket, JSON, rooms, subscriptions", "signalling"),
    ("forwarding to the subscribers already joined", "forwarding"),
    ("RTCP", "rtcp"),
    ("other", "other"),
]


def classify_join(frames: list[str]) -> str:
    """The rule name of the join-phase stage a main-thread stack belongs to."""
    text = ";".join(frames)
    if len(frames) <= 7 and "mcu/app/main.py" in text:
        return "idle"
    if "generateCertificate" in text or "generate_certificate" in text:
        return "certificate"
    if any(k in text for k in ("Producer.on_rtp", "Consumer.on_packet", "_handle_rtp_data")):
        return "forwarding"
    if "rtcdtlstransport" in text or "OpenSSL" in text:
        return "dtls"
    if "aioice" in text:
        return "ice"
    if any(k in text for k in ("aiortc/sdp.py", "Offer", "Answer", "Description", "Transceiver")):
        return "sdp"
    if any(k in text for k in ("signaling/", "aiohttp", "json")):
        return "signalling"
    if "rtcp" in text.lower():
        return "rtcp"
    return "other"


def classify(frames: list[str]) -> str:
    """The rule name of the stage a main-thread stack belongs to."""
    names = [f.split(" (")[0] for f in frames]
    text = ";".join(frames)
    leaf = frames[-1]
    if names[-1] in ("Runner.run", "run_forever", "run") and "mcu/app/main.py" in text:
        if len(names) <= 7:
            return "idle"
    if "Consumer.on_packet" in text or "Consumer._forward" in text:
        source = _line_of(leaf) if "SrtpTransmitter.send" in names[-1] else ""
        if "sendto(" in source or "_write(" in source:
            return "send-line"
        if "_protect(" in source or any("pylibsrtp" in f for f in frames):
            return "protect"
        return "consumer"
    if "Producer.on_rtp" in text:
        return "producer"
    if "_handle_rtp_data" in text or "PublisherTap" in text:
        return "ingress"
    if "rtcp" in text.lower() or "remb" in text.lower():
        return "rtcp"
    if "aioice" in text:
        return "ice"
    if any(k in text for k in ("LinkWatch", "Downlink", "speaker", "metrics", "Ladder")):
        return "timers"
    if any(k in text for k in ("signaling/", "aiohttp", "rtcdtlstransport", "_connect", "ssl")):
        return "signalling"
    return "other"


_SOURCE: dict[str, list[str]] = {}
SOURCE_ROOT = [Path(__file__).resolve().parent.parent]  # --source


def _line_of(frame: str) -> str:
    """The source line a ``func (path:line)`` frame points at (empty when unknown)."""
    try:
        where = frame.rsplit("(", 1)[1].rstrip(")")
        path, line = where.rsplit(":", 1)
        if path not in _SOURCE:
            _SOURCE[path] = (SOURCE_ROOT[0] / path).read_text().splitlines()
        return _SOURCE[path][int(line) - 1]
    except (IndexError, ValueError, OSError):
        return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("raw", type=Path, help="py-spy --format raw output")
    parser.add_argument("--us-per-packet", type=float, help="the run's server us/pkt")
    parser.add_argument(
        "--source", type=Path, help="the checkout the profiled server ran from (--baseline)"
    )
    parser.add_argument(
        "--joins", action="store_true", help="join-phase stages (default for -joins- files)"
    )
    args = parser.parse_args(argv)
    joins = args.joins or "-joins-" in args.raw.name
    rule, stages = (classify_join, JOIN_STAGES) if joins else (classify, STAGES)
    if args.source:
        SOURCE_ROOT[0] = args.source.resolve()
    counts: collections.Counter[str] = collections.Counter()
    for line in args.raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if "mcu/__main__.py" not in stack:  # other threads: executor and decoder workers
            continue
        frames = stack.split(";")
        counts[rule(frames)] += int(count)
    total = sum(counts.values())
    busy = total - counts["idle"]
    if not busy:
        print("no busy main-thread samples", file=sys.stderr)
        return 1
    print(f"{args.raw.name}: {total} main-thread samples, {busy / total:.0%} busy")
    if joins:
        print("(--us-per-packet does not apply to a join phase)" if args.us_per_packet else "")
        args.us_per_packet = None
    print(f"{'stage':66} {'share':>6} {'us/pkt':>7}")
    for label, name in stages:
        share = counts[name] / busy
        us = f"{share * args.us_per_packet:.1f}" if args.us_per_packet else "-"
        print(f"{label:66} {share:>6.1%} {us:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
