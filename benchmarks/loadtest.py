"""Load test: drive the real server over its real protocols from many lightweight clients.

    python benchmarks/loadtest.py --url http://127.0.0.1:8080 --admin-token ... \\
        --rooms 1 --publishers 1 --subscribers 50 --duration 20 --json out.json --html out.html

Rooms are created through the admin API (``POST /api/rooms``, unique ids, random passwords) and
deleted at the end; every client joins over ``/ws`` with the password. Publishers loop one clip
encoded once at start (no encoding per publisher); subscribers complete ICE and DTLS and count
SRTP packets per SSRC at the socket, reading sequence numbers from the (unencrypted) RTP header
to compute loss exactly without decrypting; ``--decode-sample`` subscribers decode for real. The
server's CPU, memory and egress packets/s are read from its ``/metrics`` every second.

Phases: publishers join (paced by ``--join-rate``) and wait until their connection is up; then
subscribers join (same pace) and each is ready once a packet of every track has arrived; then
``--duration`` seconds of steady state; then everything leaves. Exit status 0 when the run had
no errors and met ``--max-loss`` (worst subscriber) and ``--max-join-p95`` (p95 of socket ->
media); 1 otherwise; 2 for bad arguments. See ``benchmarks/LOADTEST.md``.

``--target janus`` runs the same scenario against a Janus VideoRoom at ``--url`` (its HTTP API,
e.g. ``http://127.0.0.1:8088/janus`` inside the ``mcu-bench`` namespace of
``benchmarks/janus/run-janus.sh``) with ``load/janus.py``: rooms are created and destroyed through
the VideoRoom API, no admin token, no ``/metrics``. With ``--server-pid`` the server's CPU and RSS
come from ``/proc/PID`` (either target; for ours they replace the ``/metrics`` figures).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import re
import secrets
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(HERE))

import aiohttp  # noqa: E402
from load.client import (  # noqa: E402
    AUDIO_PUBLISHER,
    PUBLISHER,
    SUBSCRIBER,
    ClientSpec,
    LoadClient,
)
from load.clip import encode_clip  # noqa: E402
from load.janus import JanusClient, JanusSession, create_room, destroy_room  # noqa: E402
from load.report import html_report, subscriber_rows, summarise, text_report, track_rows  # noqa: E402
from load.server_metrics import MetricsSampler, ServerSample  # noqa: E402

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
JANUS_ICE_ADDRESS = "10.99.0.1"  # run-janus.sh's ADDR: Janus gathers no candidate on lo
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
READY_TIMEOUT = 30.0  # per client: socket -> media
CLOSE_TIMEOUT = 30.0
MAX_CLIENTS = 5000


# -- arguments ---------------------------------------------------------------------------------


def fraction(text: str) -> float:
    """``1%`` or ``0.01`` -> 0.01."""
    text = text.strip()
    value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not between 0 and 100%")
    return value


def seconds(text: str) -> float:
    """``2s``, ``1500ms`` or ``2`` -> seconds."""
    match = re.fullmatch(r"\s*([0-9.]+)\s*(ms|s)?\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (2s, 1500ms)")
    value = float(match.group(1))
    return value / 1000 if match.group(2) == "ms" else value


def resolution(text: str) -> tuple[int, int]:
    """``640x360`` -> (640, 360) (even sizes, as the encoders need)."""
    match = re.fullmatch(r"(\d+)x(\d+)", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT")
    width, height = int(match.group(1)), int(match.group(2))
    if not (16 <= width <= 3840 and 16 <= height <= 2160) or width % 2 or height % 2:
        raise argparse.ArgumentTypeError(f"{text!r}: even sizes from 16x16 to 3840x2160")
    return width, height


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--target", choices=("ours", "janus"), default="ours", help="the server under load")
    add("--url", default="http://127.0.0.1:8080", help="the server's HTTP origin (janus: API URL)")
    add("--admin-token", default=os.environ.get("MCU_ADMIN_TOKEN"), help="or MCU_ADMIN_TOKEN")
    add("--server-pid", type=int, help="read the server's CPU and RSS from /proc/PID")
    add(
        "--ice-address",
        help=f"gather ICE on this address only (janus default {JANUS_ICE_ADDRESS};"
        " ours default 127.0.0.1 when --url is loopback)",
    )
    add("--allow-remote", action="store_true", help="allow a target other than loopback")
    add("--rooms", type=int, default=1, help="rooms to create")
    add("--publishers", type=int, default=1, help="video+audio publishers per room")
    add("--audio-publishers", type=int, default=0, help="audio-only publishers per room")
    add("--subscribers", type=int, default=10, help="subscribers per room")
    add("--speakers", type=int, default=0, help="publishers per room alternating loud/quiet")
    add("--video-resolution", type=resolution, default=(640, 360), help="WIDTHxHEIGHT")
    add("--video-codec", choices=("vp8", "h264"), default="vp8")
    add("--video-bitrate", type=int, default=800_000, help="target bit/s of the clip")
    add("--join-rate", type=float, default=5.0, help="joins per second")
    add("--duration", type=float, default=30.0, help="seconds of steady state after the joins")
    add("--decode-sample", type=int, default=1, help="subscribers that really decode")
    add("--max-loss", type=fraction, default=0.01, help="worst subscriber's loss (1%% or 0.01)")
    add("--max-join-p95", type=seconds, default=2.0, help="p95 of socket -> media (2s, 800ms)")
    add("--json", type=Path, help="write the full result here")
    add("--html", type=Path, help="write a self-contained HTML report here")
    add("--quiet", action="store_true", help="no live progress lines")
    args = parser.parse_args(argv)
    if args.target == "ours" and not args.admin_token:
        parser.error("--admin-token (or MCU_ADMIN_TOKEN) is required")
    if args.target == "janus" and args.speakers:
        parser.error("--speakers is not supported with --target janus")
    if args.server_pid is not None and not Path(f"/proc/{args.server_pid}/stat").exists():
        parser.error(f"--server-pid {args.server_pid}: no such process")
    split = urlsplit(args.url)
    if split.scheme not in ("http", "https") or not split.hostname:
        parser.error("--url must be http(s)://HOST:PORT")
    if split.hostname not in LOOPBACK_HOSTS and not args.allow_remote:
        parser.error(f"{split.hostname} is not loopback; pass --allow-remote to load it")
    counts = (args.rooms, args.publishers, args.audio_publishers, args.subscribers)
    if min(counts) < 0 or args.rooms < 1:
        parser.error("counts must be >= 0 and --rooms >= 1")
    if args.rooms * (args.publishers + args.audio_publishers + args.subscribers) > MAX_CLIENTS:
        parser.error(f"at most {MAX_CLIENTS} clients in one process")
    if args.publishers + args.audio_publishers == 0:
        parser.error("at least one publisher per room")
    if not (0 < args.join_rate <= 1000 and 0 < args.duration <= 24 * 3600):
        parser.error("--join-rate in (0, 1000], --duration in (0, 86400]")
    args.speakers = min(args.speakers, args.publishers + args.audio_publishers)
    return args


# -- the run -----------------------------------------------------------------------------------


def plan(args: argparse.Namespace, run_id: str) -> tuple[list[dict[str, Any]], list[ClientSpec]]:
    """The rooms to create and the clients, publishers first, subscribers interleaved by room."""
    rooms = [
        {"id": f"lt-{run_id}-{r}", "password": secrets.token_urlsafe(12)} for r in range(args.rooms)
    ]
    per_room = args.publishers + args.audio_publishers + args.subscribers
    expected = 2 * args.publishers + args.audio_publishers
    specs: list[ClientSpec] = []
    for r, room in enumerate(rooms):
        roles = [PUBLISHER] * args.publishers + [AUDIO_PUBLISHER] * args.audio_publishers
        for p, role in enumerate(roles):
            speaking = p < args.speakers
            specs.append(
                ClientSpec(
                    name=f"r{r}-{'pub' if role == PUBLISHER else 'aud'}{p}",
                    role=role,
                    room_id=room["id"],
                    password=room["password"],
                    speaker_slot=p if speaking else None,
                    speakers=args.speakers,
                )
            )
    for s in range(args.subscribers):
        for r, room in enumerate(rooms):
            specs.append(
                ClientSpec(
                    name=f"r{r}-sub{s}",
                    role=SUBSCRIBER,
                    room_id=room["id"],
                    password=room["password"],
                    decode=s * args.rooms + r < args.decode_sample,
                    expected_tracks=expected,
                )
            )
    for room in rooms:
        room["max_participants"] = min(1000, per_room)
    return rooms, specs


class NoSampler:
    """No server figures (Janus without ``--server-pid``)."""

    async def sample(self, t: float) -> None:
        return None


class Progress:
    """Samples clients and server once a second: the timeline and the live progress line."""

    def __init__(self, clients: list[Any], sampler: Any, t0: float) -> None:
        self.clients = clients
        self.sampler = sampler
        self.t0 = t0
        self.timeline: list[dict[str, Any]] = []
        self._last = (t0, 0, 0, 0)

    def totals(self) -> tuple[int, int, int]:
        """(packets, bytes, expected packets) received so far by every subscriber."""
        packets = octets = expected = 0
        for client in self.clients:
            for stream in list(client.streams.values()):
                packets += stream.packets
                octets += stream.bytes
                expected += stream.expected
        return packets, octets, expected

    async def tick(self, quiet: bool) -> None:
        now = time.monotonic()
        t = now - self.t0
        server = await self.sampler.sample(t)
        packets, octets, expected = self.totals()
        then, p0, b0, e0 = self._last
        self._last = (now, packets, octets, expected)
        span = max(now - then, 1e-6)
        missing = (expected - e0) - (packets - p0)
        point = {
            "t": round(t, 2),
            "joined": sum(c.joined_s is not None for c in self.clients),
            "ready": sum(c.ready_s is not None for c in self.clients),
            "tracks": sum(len(c.published) for c in self.clients),
            "rx_pps": (packets - p0) / span,
            "rx_bps": (octets - b0) * 8 / span,
            "loss": max(0.0, missing / (expected - e0)) if expected > e0 else None,
            "server_cpu_percent": server.cpu_percent if server else None,
            "server_rss_mb": server.rss_mb if server else None,
            "server_egress_pps": server.egress_pps if server else None,
            "server_ingress_pps": server.ingress_pps if server else None,
            "errors": sum(len(c.errors) for c in self.clients),
        }
        self.timeline.append(point)
        if not quiet:

            def f(v: float | None, p: str) -> str:
                return "-" if v is None else p.format(v)

            print(
                f"[{t:6.1f}s] joined {point['joined']}/{len(self.clients)}"
                f" ready {point['ready']} tracks {point['tracks']}"
                f" | rx {point['rx_pps']:,.0f} pkt/s {point['rx_bps'] / 1e6:.1f} Mbit/s"
                f" loss {f(point['loss'], '{:.2%}')}"
                f" | server tx {f(point['server_egress_pps'], '{:,.0f}')} pkt/s"
                f" cpu {f(point['server_cpu_percent'], '{:.0f}')}%"
                f" rss {f(point['server_rss_mb'], '{:.0f}')} MiB"
                f" | errors {point['errors']}",
                flush=True,
            )

    async def run(self, quiet: bool, limit_s: float) -> None:
        for i in range(int(limit_s) + 1):
            await self.tick(quiet)
            await asyncio.sleep(max(0.0, self.t0 + i + 1 - time.monotonic()))


async def join_paced(clients: list[Any], rate: float, timeout: float) -> None:
    """Start ``clients`` at ``rate`` per second; wait until each is ready or has failed."""
    start = time.monotonic()

    async def one(i: int, client: LoadClient) -> None:
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
        await client.run(timeout)

    await asyncio.gather(*(one(i, c) for i, c in enumerate(clients)))


async def create_rooms(
    session: aiohttp.ClientSession, base: str, rooms: list[dict[str, Any]]
) -> None:
    for room in rooms:
        body = {
            "id": room["id"],
            "title": f"Load test {room['id']}",
            "password": room["password"],
            "max_participants": room["max_participants"],
        }
        # A lecture: the password admits the lecturer, the viewer password its audience.
        body |= {k: room[k] for k in ("kind", "viewer_password") if k in room}
        async with session.post(f"{base}/api/rooms", json=body) as response:
            if response.status != 201:
                raise RuntimeError(
                    f"POST /api/rooms {room['id']}: {response.status} {await response.text()}"
                )


async def delete_rooms(
    session: aiohttp.ClientSession, base: str, rooms: list[dict[str, Any]]
) -> list[str]:
    problems = []
    for room in rooms:
        try:
            async with session.delete(f"{base}/api/rooms/{room['id']}") as response:
                if response.status not in (204, 404):
                    problems.append(f"DELETE {room['id']}: {response.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            problems.append(f"DELETE {room['id']}: {exc!r}")
    return problems


def proc_cpu_rss(pid: int) -> tuple[float, float]:
    """(utime + stime in seconds, RSS in bytes) of process ``pid`` from ``/proc/PID/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK, int(fields[21]) * PAGE_SIZE


class ProcSampler:
    """Server CPU and RSS from ``/proc/PID/stat``, over ``/metrics`` figures if there are any."""

    def __init__(self, pid: int, metrics: MetricsSampler | None) -> None:
        self.pid = pid
        self.metrics = metrics
        self._last: tuple[float, float] | None = None
        self.failures = 0

    async def sample(self, t: float) -> ServerSample | None:
        base = await self.metrics.sample(t) if self.metrics is not None else None
        try:
            cpu, rss = proc_cpu_rss(self.pid)
        except (OSError, ValueError, IndexError):
            self.failures += 1
            return base
        last, self._last = self._last, (t, cpu)
        cpu_percent = None
        if last is not None and t > last[0]:
            cpu_percent = max(0.0, cpu - last[1]) / (t - last[0]) * 100
        return ServerSample(
            t=t,
            cpu_percent=cpu_percent,
            rss_mb=rss / 2**20,
            egress_pps=base.egress_pps if base else None,
            ingress_pps=base.ingress_pps if base else None,
        )


async def create_janus_rooms(
    http: aiohttp.ClientSession, base: str, rooms: list[dict[str, Any]], specs: list[ClientSpec],
    publishers: int, codec: str,
) -> list[tuple[int, JanusSession, int]]:  # fmt: skip
    """Create one VideoRoom per planned room; the specs' room ids become the Janus room numbers."""
    created = []
    numbers = {}
    try:
        for room in rooms:
            number, session, handle = await create_room(http, base, publishers, codec)
            created.append((number, session, handle))
            numbers[room["id"]] = str(number)
    except BaseException:
        for number, session, handle in created:
            await destroy_room(session, handle, number)
        raise
    for room in rooms:
        room["janus_room"] = int(numbers[room["id"]])
    for spec in specs:
        spec.room_id = numbers[spec.room_id]
    return created


def set_feeds(clients: list[Any]) -> None:
    """Janus subscribers subscribe to the feeds of their room's publishers (known once joined)."""
    feeds: dict[str, list[int]] = {}
    for client in clients:
        if client.spec.role != SUBSCRIBER and client.feed is not None:
            feeds.setdefault(client.spec.room_id, []).append(client.feed)
    for client in clients:
        if client.spec.role == SUBSCRIBER:
            client.feeds = feeds.get(client.spec.room_id, [])


async def run(args: argparse.Namespace) -> dict[str, Any]:
    split = urlsplit(args.url)
    janus = args.target == "janus"
    address = args.ice_address or (JANUS_ICE_ADDRESS if janus else None)
    if address is None and split.hostname in LOOPBACK_HOSTS:
        address = "127.0.0.1"  # gather on loopback only (aioice skips it by default)
    if address is not None:
        from mcu.sfu import ice

        ice.install(ice.IcePolicy(addresses=(address,)))
    base = args.url.rstrip("/")
    ws_url = ("wss" if split.scheme == "https" else "ws") + base[len(split.scheme) :] + "/ws"
    codec = {"vp8": "video/VP8", "h264": "video/H264"}[args.video_codec]
    width, height = args.video_resolution
    started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    clip_start = time.monotonic()
    clip = await asyncio.get_running_loop().run_in_executor(
        None, encode_clip, codec, width, height, args.video_bitrate
    )
    described = clip.describe()
    print(
        "clip: {video_codec} {resolution} {fps} fps, {video_bitrate_bps:,} bit/s video,"
        " {audio_bitrate_bps:,} bit/s Opus, keyframe {keyframe_bytes:,} bytes".format(**described)
        + f" every {described['seconds']:.0f} s (encoded in {time.monotonic() - clip_start:.1f} s)",
        flush=True,
    )
    run_id = secrets.token_hex(3)
    rooms, specs = plan(args, run_id)
    if janus:  # JanusClient counts at the socket only: no decoding subscriber
        for spec in specs:
            spec.decode = False
    headers = {} if janus else {"Authorization": f"Bearer {args.admin_token}"}
    timeout = aiohttp.ClientTimeout(total=15)
    # Janus: every client holds a long poll, so no cap on the connections.
    connector = aiohttp.TCPConnector(limit=0) if janus else None
    async with aiohttp.ClientSession(
        headers=headers, timeout=timeout, connector=connector
    ) as session:
        clients: list[Any]
        if janus:
            janus_rooms = await create_janus_rooms(
                session,
                base,
                rooms,
                specs,
                args.publishers + args.audio_publishers,
                clip.video_codec,
            )
            clients = [JanusClient(spec, session, base, clip) for spec in specs]
            sampler: Any = None
        else:
            clients = [LoadClient(spec, ws_url, clip) for spec in specs]
            await create_rooms(session, base, rooms)
            sampler = MetricsSampler(session, f"{base}/metrics")
        if args.server_pid is not None:
            sampler = ProcSampler(args.server_pid, sampler)
        elif sampler is None:
            sampler = NoSampler()
        publishers = [c for c in clients if c.spec.role != SUBSCRIBER]
        subscribers = [c for c in clients if c.spec.role == SUBSCRIBER]
        t0 = time.monotonic()
        progress = Progress(clients, sampler, t0)
        setup_limit = len(clients) / args.join_rate + 2 * READY_TIMEOUT
        progress_task = asyncio.create_task(
            progress.run(args.quiet, setup_limit + args.duration + CLOSE_TIMEOUT)
        )
        problems: list[str] = []
        try:
            await join_paced(publishers, args.join_rate, READY_TIMEOUT)
            if janus:
                set_feeds(clients)
            await join_paced(subscribers, args.join_rate, READY_TIMEOUT)
            steady_from = time.monotonic() - t0
            await asyncio.sleep(args.duration)
            sent = {c.spec.name: await c.sent() for c in publishers}
            measured_at = time.monotonic()
            await progress.tick(quiet=True)  # the last second, before anyone leaves
        finally:
            progress_task.cancel()
            await asyncio.wait_for(
                asyncio.gather(*(c.close() for c in clients), return_exceptions=True),
                CLOSE_TIMEOUT,
            )
            if janus:
                for number, admin, handle in janus_rooms:
                    problems += await destroy_room(admin, handle, number)
            else:
                problems += await delete_rooms(session, base, rooms)
    return build_result(args, started_at, clip.describe(), clients, sent, progress, steady_from,
                        measured_at, problems)  # fmt: skip


def build_result(
    args: argparse.Namespace,
    started_at: str,
    clip: dict[str, Any],
    clients: list[Any],
    sent: dict[str, dict[str, tuple[int, int]]],
    progress: Progress,
    steady_from: float,
    measured_at: float,
    problems: list[str],
) -> dict[str, Any]:
    """Everything the run saw, checked against the thresholds."""
    # Checks that only the end of the run can make: every subscriber got every track.
    expected = 2 * args.publishers + args.audio_publishers
    for client in clients:
        if client.spec.role == SUBSCRIBER and client.ready_s is not None:
            if client.receiving() < expected:
                client.errors.append(f"received {client.receiving()} of {expected} tracks")
            if client.spec.decode and len([n for n in client.frames.values() if n]) < expected:
                client.errors.append(f"decoded {len(client.frames)} of {expected} tracks")
    publishers = []
    for client in clients:
        if client.spec.role == SUBSCRIBER:
            continue
        # The senders start once the publish connection is up (ready).
        active_s = max(measured_at - (client.started_at or 0) - (client.ready_s or 0), 1e-6)
        publishers.append(
            {
                "name": client.spec.name,
                "room": client.spec.room_id,
                "participant_id": client.participant_id,
                "speaker": client.spec.speaker_slot is not None,
                "join_s": client.joined_s,
                "ready_s": client.ready_s,
                "tracks": dict(client.published),
                "sent": {
                    kind: {"packets": p, "bytes": b, "bitrate_bps": b * 8 / active_s}
                    for kind, (p, b) in sent.get(client.spec.name, {}).items()
                },
                "errors": list(client.errors),
            }
        )
    names = {p["participant_id"]: p["name"] for p in publishers}
    subscribers = subscriber_rows(clients)
    for row in subscribers:
        for track in row["tracks"].values():
            track["publisher"] = names.get(track["publisher"], track["publisher"])
    tracks = track_rows(publishers, subscribers)
    summary = summarise(clients, publishers, subscribers, tracks, progress.timeline, steady_from)
    errors = [f"{c.spec.name}: {e}" for c in clients for e in c.errors] + problems
    summary["errors"] = len(errors)
    failures = []
    if errors:
        failures.append(f"{len(errors)} error(s)")
    worst = summary["loss"]["max"]
    if worst is not None and worst > args.max_loss:
        failures.append(f"worst subscriber loss {worst:.3%} > --max-loss {args.max_loss:.3%}")
    p95 = summary["ready_s"]["p95"]
    if p95 is None:
        failures.append("no client got as far as media")
    elif p95 > args.max_join_p95:
        failures.append(
            f"join (socket -> media) p95 {p95:.2f} s > --max-join-p95 {args.max_join_p95:g} s"
        )
    config = {k: v for k, v in vars(args).items() if k != "admin_token"}
    config["json"] = str(args.json) if args.json else None
    config["html"] = str(args.html) if args.html else None
    config["video_resolution"] = "{}x{}".format(*args.video_resolution)
    return {
        "target": args.target,
        "started_at": started_at,
        "config": config,
        "clip": clip,
        "steady_from_s": steady_from,
        "summary": summary,
        "verdict": {"passed": not failures, "failures": failures},
        "tracks": tracks,
        "publishers": publishers,
        "subscribers": subscribers,
        "timeline": progress.timeline,
        "errors": errors,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import uvloop

        result = uvloop.run(run(args))
    except ImportError:
        result = asyncio.run(run(args))
    text = text_report(result)
    print(text, flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    if args.html:
        args.html.write_text(html_report(result, text))
        print(f"wrote {args.html}")
    return 0 if result["verdict"]["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
