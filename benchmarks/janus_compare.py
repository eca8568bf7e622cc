"""Side by side: the same load on Janus's VideoRoom and on our server, on one core each.

    sudo .venv/bin/python benchmarks/janus_compare.py                    # N = 25 50 100 200, 10 s
    sudo .venv/bin/python benchmarks/janus_compare.py --n 25 50 --duration 10 --json out.json

Scenario: 1 publisher (the pre-encoded clip of ``load/clip.py``, video + Opus) -> N subscribers
that count SRTP packets at the socket without decrypting (``load/counting.py``), for
``--duration`` seconds of steady state after every subscriber receives both tracks.

Everything runs in a private network namespace (``benchmarks/janus/run-janus.sh``: ``lo`` plus
an ``ifb`` with 10.99.0.1/32, no uplink). Janus (``event_loops = 1``) and ``python -m mcu`` both
run there pinned to core 0 (``taskset -c 0``); each load run is a worker process of this script
pinned to core 1. Runs alternate between the servers at each N. Server CPU comes from
``/proc/<pid>/stat`` (utime + stime) read when the worker reports the steady window's start and
end. A server "holds" N when every subscriber got media and the worst subscriber lost <= 1 % over
the steady window; stepping stops for a server at its first failing N. Needs root.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pickle
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (str(HERE), str(ROOT)):
    if path not in sys.path:  # run as a script from anywhere
        sys.path.insert(0, path)

RUN_JANUS = HERE / "janus" / "run-janus.sh"
NETNS = os.environ.get("NETNS", "mcu-bench")
ADDR = "10.99.0.1"
JANUS_URL = "http://127.0.0.1:8088/janus"
OURS_PORT = 8080
BASE_PORT = 8081  # --baseline: our server from another checkout, beside the current one
SERVER_CPU, CLIENT_CPU = "0", "1"
READY_TIMEOUT = 30.0
MAX_N = 2000
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- the worker: one load run, inside the namespace ----------------------------------------------


def _snapshot(clients: list[Any]) -> dict[str, dict[int, tuple[int, int]]]:
    """name -> ssrc -> (packets, expected) of every subscriber, non-RTX streams only."""
    return {
        c.spec.name: {
            ssrc: (s.packets, s.expected)
            for ssrc, s in list(c.streams.items())
            if not c.ssrc_tracks.get(ssrc, (None, False))[1]
        }
        for c in clients
    }


def _window(before: dict[str, Any], after: dict[str, Any]) -> tuple[int, list[float]]:
    """(packets received in the window, each subscriber's loss over the window)."""
    total, losses = 0, []
    for name, streams in after.items():
        got = expected = 0
        for ssrc, (packets, span) in streams.items():
            p0, e0 = before.get(name, {}).get(ssrc, (0, 0))
            got += packets - p0
            expected += span - e0
        total += got
        losses.append(max(0.0, 1 - got / expected) if expected > 0 else 1.0)
    return total, losses


def _p95(values: list[float]) -> float | None:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] if ordered else None


async def worker(args: argparse.Namespace) -> dict[str, Any]:
    """Join 1 publisher and N subscribers, print STEADY/END around the window, return figures."""
    import aiohttp
    from load.client import PUBLISHER, SUBSCRIBER, ClientSpec, LoadClient
    from load.janus import JanusClient, create_room, destroy_room
    from load.report import subscriber_rows
    from loadtest import create_rooms, delete_rooms, join_paced

    from mcu.sfu import ice

    ice.install(ice.IcePolicy(addresses=(ADDR,)))
    with open(args.clip, "rb") as file:  # noqa: ASYNC230 (once, before any client)
        clip = pickle.load(file)
    problems: list[str] = []
    connector = aiohttp.TCPConnector(limit=0)
    headers = {"Authorization": f"Bearer {os.environ.get('MCU_ADMIN_TOKEN', '')}"}
    async with aiohttp.ClientSession(connector=connector) as http:
        clients: list[Any]
        port = BASE_PORT if args.worker == "base" else OURS_PORT
        if args.worker == "janus":
            room, admin, handle = await create_room(http, JANUS_URL, 1, clip.video_codec)
            room_id = str(room)
            clients = [
                JanusClient(ClientSpec("pub0", PUBLISHER, room_id, ""), http, JANUS_URL, clip)
            ]
        else:
            room_id = f"jc-{secrets.token_hex(3)}"
            password = secrets.token_urlsafe(12)
            base = f"http://{ADDR}:{port}"
            rooms: list[dict[str, Any]] = [
                {"id": room_id, "password": password, "max_participants": args.n + 1}
            ]
            if args.room == "lecture":  # subscribers join as its viewers
                viewers = secrets.token_urlsafe(12)
                rooms[0] |= {"kind": "lecture", "viewer_password": viewers}
            else:
                viewers = password  # every subscriber a participant of the meeting
            async with aiohttp.ClientSession(headers=headers) as api:
                await create_rooms(api, base, rooms)
            ws = f"ws://{ADDR}:{port}/ws"
            clients = [LoadClient(ClientSpec("pub0", PUBLISHER, room_id, password), ws, clip)]
        publisher = clients[0]
        t0 = time.monotonic()
        try:
            await publisher.run(READY_TIMEOUT)
            if publisher.ready_s is None:
                raise RuntimeError(f"publisher not ready: {publisher.errors}")
            for s in range(args.n):
                spec = ClientSpec(
                    f"sub{s}", SUBSCRIBER, room_id, "" if args.worker == "janus" else viewers
                )
                spec.expected_tracks = 2
                if args.worker == "janus":
                    sub = JanusClient(spec, http, JANUS_URL, clip, feed=publisher.feed)
                else:
                    sub = LoadClient(spec, ws, clip)
                clients.append(sub)
            subscribers = clients[1:]
            print("JOINING", flush=True)
            await join_paced(subscribers, args.join_rate, READY_TIMEOUT)
            joined_s = time.monotonic() - t0
            _, join_losses = _window({}, _snapshot(subscribers))  # each one's life so far
            await asyncio.sleep(1.0)  # let the last joins' keyframes and bursts pass
            before, cpu0 = _snapshot(subscribers), resource.getrusage(resource.RUSAGE_SELF)
            published0 = await publisher.sent()
            print("STEADY", flush=True)
            w0 = time.monotonic()
            await asyncio.sleep(args.duration)
            print("END", flush=True)
            window = time.monotonic() - w0
            after, cpu1 = _snapshot(subscribers), resource.getrusage(resource.RUSAGE_SELF)
            sent = await publisher.sent()
            published = sum(sent[k][0] - published0.get(k, (0, 0))[0] for k in sent)
        finally:
            await asyncio.wait_for(
                asyncio.gather(*(c.close() for c in clients), return_exceptions=True), 30
            )
            if args.worker == "janus":
                problems += await destroy_room(admin, handle, room)
            else:
                async with aiohttp.ClientSession(headers=headers) as api:
                    problems += await delete_rooms(api, base, rooms)
    packets, losses = _window(before, after)
    client_cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    rows = subscriber_rows(clients)
    errors = [f"{c.spec.name}: {e}" for c in clients for e in c.errors] + problems
    return {
        "server": args.worker,
        "n": args.n,
        "window_s": window,
        "join_s": joined_s,
        "ready": sum(c.ready_s is not None for c in subscribers),
        # join -> first packet of any track (the server's part of a join: signalling, ICE,
        # DTLS), and -> a packet of every track (video waits for the clip's next keyframe, every
        # 2 s: the pre-encoded clip cannot answer a keyframe request)
        "first_p95_s": _p95(
            [
                min(st.first_at for st in c.streams.values()) - c.started_at
                for c in subscribers
                if c.streams and c.started_at is not None
            ]
        ),
        "join_p95_s": _p95([c.ready_s for c in subscribers if c.ready_s is not None]),
        "join_loss_max": max(join_losses, default=1.0),
        "packets": packets,
        "loss_max": max(losses, default=1.0),
        # what reached the subscribers of what the publisher sent in the window: a server that
        # runs behind sheds whole frames (and renumbers), which no subscriber sees as loss
        "delivered": packets / (args.n * published) if published else 0.0,
        "loss_mean": sum(losses) / len(losses) if losses else 1.0,
        "client_cpu_percent": 100 * client_cpu / window,
        "publisher_sent": sent,
        "subscribers": rows,
        "errors": errors,
    }


# -- the orchestrator: servers, alternating runs, the table --------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of process ``pid`` (all its threads), seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def netns_exec(*command: str) -> list[str]:
    return ["ip", "netns", "exec", NETNS, *command]


def start_ours(
    data_dir: str, token: str, root: Path = ROOT, port: int = OURS_PORT
) -> subprocess.Popen[bytes]:
    """``python -m mcu`` from the checkout ``root`` in the namespace on core 0; returns once
    /metrics answers."""
    # every subscriber of the comparison comes from the one worker address
    env = os.environ | {"MCU_ADMIN_TOKEN": token, "MCU_MAX_WEBSOCKETS_PER_ADDRESS": str(MAX_N + 10)}
    command = netns_exec(
        "taskset", "-c", SERVER_CPU, sys.executable, "-m", "mcu", "--host", ADDR,
        "--port", str(port), "--media-address", ADDR, "--data-dir", data_dir,
        "--log-level", "warning",
    )  # fmt: skip
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    log = open(Path(data_dir) / "mcu.log", "wb")  # closed with the process
    # cwd first on sys.path: the checkout's own mcu package is the one imported
    server = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=log)
    url = f"http://{ADDR}:{port}/metrics"
    for _ in range(100):  # 100 x 0.2 s
        if server.poll() is not None:
            raise RuntimeError(f"our server exited; see {data_dir}/mcu.log")
        probe = subprocess.run(netns_exec("curl", "-sf", "-o", "/dev/null", url), check=False)
        if probe.returncode == 0:
            return server
        time.sleep(0.2)
    raise RuntimeError("our server did not answer /metrics within 20 s")


def janus_pid() -> int:
    pidfile = Path(os.environ.get("JANUS_DIR", "/tmp/mcu-bench-janus")) / "janus.pid"
    return int(pidfile.read_text().strip())


def run_once(server: str, pid: int, n: int, args: argparse.Namespace, env: dict[str, str],
             clip_path: str) -> dict[str, Any]:  # fmt: skip
    """One worker run; the server's CPU over the worker's steady window."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        result_path = out.name
    command = netns_exec(
        "taskset", "-c", CLIENT_CPU, sys.executable, str(Path(__file__).resolve()),
        "--worker", server, "--n", str(n), "--duration", str(args.duration),
        "--join-rate", str(args.join_rate), "--clip", clip_path, "--result", result_path,
        "--room", args.room,
    )  # fmt: skip
    limit = n / args.join_rate + 2 * READY_TIMEOUT + args.duration + 60
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    marks: dict[str, tuple[float, float]] = {}
    profiler: subprocess.Popen[bytes] | None = None
    deadline = time.monotonic() + limit
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # ends when the worker exits
            word = line.strip()
            if word in ("STEADY", "END"):
                marks[word] = (time.monotonic(), cpu_seconds(pid))
            if args.profile and server != "janus" and word in ("JOINING", "STEADY"):
                if profiler is not None:
                    profiler.wait(timeout=60)
                joins = word == "JOINING"  # the join phase, then the steady window
                seconds = n / args.join_rate + 2 if joins else args.duration
                profiler = start_profiler(pid, f"{server}-N{n}" + ("-joins" if joins else ""),
                                          seconds, args)  # fmt: skip
            if time.monotonic() > deadline:
                break
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if profiler is not None:
            profiler.wait(timeout=60)
    result: dict[str, Any] = {"server": server, "n": n, "errors": []}
    with contextlib.suppress(OSError, ValueError):
        result = json.loads(Path(result_path).read_text())
    Path(result_path).unlink(missing_ok=True)
    if proc.returncode != 0:
        result["errors"].append(f"worker exited with {proc.returncode}")
    if "STEADY" in marks and "END" in marks:
        wall = marks["END"][0] - marks["STEADY"][0]
        cpu = marks["END"][1] - marks["STEADY"][1]
        result["server_cpu_percent"] = 100 * cpu / wall
        result["server_cpu_per_sub_percent"] = 100 * cpu / wall / n
        packets = result.get("packets") or 0
        result["server_us_per_packet"] = 1e6 * cpu / packets if packets else None
    return result


def start_profiler(
    pid: int, name: str, seconds: float, args: argparse.Namespace
) -> subprocess.Popen[bytes]:
    """py-spy sampling our server's Python stacks over the steady window, from core 1.

    Non-blocking (the server is never paused; time in C is charged to the Python line calling
    it): py-spy's ``--native`` must stop the process per sample, and at 200 subscribers that
    alone cut forwarding tenfold. Writes collapsed stacks to ``<profile>/<name>-<k>.txt``
    (``ours-N200-1``, the join phase as ``ours-N200-joins-1``; read by ``profile_stages.py``)."""
    args.profile.mkdir(parents=True, exist_ok=True)
    k = 1 + len(list(args.profile.glob(f"{name}-[0-9]*.txt")))
    out = args.profile / f"{name}-{k}.txt"
    command = [
        "taskset", "-c", CLIENT_CPU, "py-spy", "record", "--pid", str(pid), "--nonblocking",
        "--idle", "--rate", str(args.profile_rate), "--duration", str(max(1, round(seconds))),
        "--format", "raw", "--output", str(out),
    ]  # fmt: skip
    venv_bin = str(Path(sys.executable).parent)
    env = os.environ | {"PATH": f"{venv_bin}:{os.environ.get('PATH', '')}"}
    log = open(out.with_suffix(".log"), "wb")  # closed with the process
    return subprocess.Popen(command, env=env, stdout=log, stderr=log)


def holds(result: dict[str, Any], max_loss: float) -> bool:
    return (
        result.get("ready") == result["n"]
        and result.get("loss_max", 1.0) <= max_loss
        and result.get("delivered", 0.0) >= 1 - max_loss
        and "server_cpu_percent" in result
    )


def fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def _median(values: list[float]) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def print_table(results: list[dict[str, Any]], max_loss: float) -> dict[str, Any]:
    print()
    print(
        f"{'server':6} {'N':>5} {'ready':>6} {'1st p95':>7} {'all p95':>7} {'join loss':>9}"
        f" {'rx pkt/s':>9} {'delivered':>9}"
        f" {'worst loss':>10} {'srv cpu':>8} {'cpu/sub':>8} {'us/pkt':>7} {'client cpu':>10}"
        f" {'errors':>6}"
    )
    for r in results:
        rate = r.get("packets", 0) / r["window_s"] if r.get("window_s") else None
        print(
            f"{r['server']:6} {r['n']:>5} {r.get('ready', 0):>6}"
            f" {fmt(r.get('first_p95_s'), '{:.2f}s'):>7} {fmt(r.get('join_p95_s'), '{:.2f}s'):>7}"
            f" {fmt(r.get('join_loss_max'), '{:.2%}'):>9} {fmt(rate, '{:,.0f}'):>9}"
            f" {fmt(r.get('delivered'), '{:.1%}'):>9}"
            f" {fmt(r.get('loss_max'), '{:.2%}'):>10}"
            f" {fmt(r.get('server_cpu_percent'), '{:.1f}%'):>8}"
            f" {fmt(r.get('server_cpu_per_sub_percent'), '{:.3f}%'):>8}"
            f" {fmt(r.get('server_us_per_packet'), '{:.1f}'):>7}"
            f" {fmt(r.get('client_cpu_percent'), '{:.0f}%'):>10} {len(r.get('errors', [])):>6}"
        )
    servers = [s for s in ("janus", "ours", "base") if any(r["server"] == s for r in results)]
    # Per N: each server's median over its runs, and ours (and base) / janus of the medians.
    cells: dict[int, dict[str, dict[str, float | None]]] = {}
    for n in sorted({r["n"] for r in results}):
        for server in servers:
            mine = [r for r in results if r["server"] == server and r["n"] == n]
            held = [r for r in mine if holds(r, max_loss)]
            cells.setdefault(n, {})[server] = {
                "runs": len(mine),
                "held": len(held),
                "cpu_per_sub_percent": _median([r["server_cpu_per_sub_percent"] for r in held]),
                "us_per_packet": _median([r["server_us_per_packet"] for r in held]),
                "join_p95_s": _median([r["join_p95_s"] for r in mine if r.get("join_p95_s")]),
            }
    print()
    print("medians per N over the runs that held (cpu/sub % of a core, us per forwarded packet):")
    for n, by_server in cells.items():
        parts = []
        for server in servers:
            c = by_server[server]
            parts.append(
                f"{server} {c['held']}/{c['runs']} held, {fmt(c['cpu_per_sub_percent'], '{:.3f}')}"
                f" %/sub, {fmt(c['us_per_packet'], '{:.1f}')} us/pkt"
            )
        for server in servers[1:]:
            a = by_server.get("janus", {}).get("cpu_per_sub_percent")
            b = by_server[server]["cpu_per_sub_percent"]
            if a and b and servers[0] == "janus":
                parts.append(f"{server}/janus {b / a:.2f}")
        print(f"  N={n}: " + "; ".join(parts))
    summary: dict[str, Any] = {"cells": {str(n): c for n, c in cells.items()}}
    for server in servers:
        mine = [r for r in results if r["server"] == server]
        summary[server] = {"max_n_held": max((r["n"] for r in mine if holds(r, max_loss)),
                                             default=0)}  # fmt: skip
    print()
    print(
        f"held at <= {max_loss:.0%} loss on one core: "
        + ", ".join(f"{server} N={summary[server]['max_n_held']}" for server in servers)
    )
    return summary


def orchestrate(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("janus_compare.py needs root (network namespace)", file=sys.stderr)
        return 2
    if os.cpu_count() is None or os.cpu_count() < 2:  # type: ignore[operator]
        print("needs two cores: servers on 0, clients on 1", file=sys.stderr)
        return 2
    if not shutil.which("curl"):
        print("needs curl", file=sys.stderr)
        return 2
    from load.clip import encode_clip

    codec = {"vp8": "video/VP8", "h264": "video/H264"}[args.video_codec]
    clip = encode_clip(codec, 640, 360, args.video_bitrate)
    info = clip.describe()
    print(
        "clip: {video_codec} {resolution} {fps} fps, {video_bitrate_bps:,} bit/s + Opus".format(
            **info
        )
    )
    work = tempfile.mkdtemp(prefix="janus-compare-")
    clip_path = str(Path(work) / "clip.pickle")
    Path(clip_path).write_bytes(pickle.dumps(clip))
    token = secrets.token_urlsafe(24)
    env = os.environ | {"MCU_ADMIN_TOKEN": token}
    ours: list[subprocess.Popen[bytes]] = []
    results: list[dict[str, Any]] = []
    servers = list(args.servers) + (["base"] if args.baseline else [])
    try:
        subprocess.run([str(RUN_JANUS), "start"], check=True, env=env | {"JANUS_CPU": SERVER_CPU})
        pids = {"janus": janus_pid()}
        if "ours" in servers:
            ours.append(start_ours(str(Path(work) / "ours"), token))
            pids["ours"] = ours[-1].pid
        if args.baseline:
            base_dir = str(Path(work) / "base")
            ours.append(start_ours(base_dir, token, args.baseline.resolve(), BASE_PORT))
            pids["base"] = ours[-1].pid
        print(f"server pids {pids}, all on core {SERVER_CPU}; clients on core {CLIENT_CPU}",
              flush=True)  # fmt: skip
        failed: set[str] = set()
        step = 0
        for n in args.n:
            for _ in range(args.repeat):  # alternating: every server once, then again
                order = servers[step % len(servers) :] + servers[: step % len(servers)]
                step += 1
                for server in order:
                    if server in failed:
                        continue
                    print(f"-- {server} N={n} ...", flush=True)
                    result = run_once(server, pids[server], n, args, env, clip_path)
                    results.append(result)
                    print(f"   ready {result.get('ready')}/{n},"
                          f" delivered {fmt(result.get('delivered'), '{:.1%}')},"
                          f" worst loss {fmt(result.get('loss_max'), '{:.2%}')},"
                          f" server cpu {fmt(result.get('server_cpu_percent'), '{:.1f}%')},"
                          f" client cpu {fmt(result.get('client_cpu_percent'), '{:.0f}%')},"
                          f" errors {len(result.get('errors', []))}"
                          + (f" (first: {result['errors'][0]})" if result.get("errors") else ""),
                          flush=True)  # fmt: skip
                    if not holds(result, args.max_loss):
                        failed.add(server)
    finally:
        for server_process in ours:
            server_process.terminate()
            try:
                server_process.wait(10)
            except subprocess.TimeoutExpired:
                server_process.kill()
                server_process.wait()
        subprocess.run([str(RUN_JANUS), "stop"], check=False)
        shutil.rmtree(work, ignore_errors=True)
    summary = print_table(results, args.max_loss)
    if args.json:
        if not args.json_subscribers:
            for r in results:
                r.pop("subscribers", None)
        config = {k: str(v) for k, v in vars(args).items()}
        document = {"clip": info, "config": config, "runs": results, "summary": summary}
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--n", type=int, nargs="+", default=[25, 50, 100, 200], help="subscriber counts, stepped")
    add("--duration", type=float, default=10.0, help="seconds of steady state per run")
    add("--repeat", type=int, default=1, help="runs per server and N (alternating servers)")
    add("--join-rate", type=float, default=20.0, help="subscriber joins per second")
    add("--max-loss", type=float, default=0.01, help="worst subscriber loss a server may show")
    add("--video-codec", choices=("vp8", "h264"), default="vp8")
    add("--video-bitrate", type=int, default=800_000, help="target bit/s of the clip (640x360)")
    add("--servers", nargs="+", choices=("janus", "ours"), default=["janus", "ours"])
    add(
        "--room",
        choices=("meeting", "lecture"),
        default="meeting",
        help="ours: subscribers join a meeting as participants (each join announced to all) "
        "or a lecture as its viewers (counted, never listed: Janus's subscribers)",
    )
    add("--baseline", type=Path, help="also run our server from this checkout (as 'base')")
    add("--profile", type=Path, help="py-spy our server's steady windows into this directory")
    add("--profile-rate", type=int, default=100, help="py-spy samples per second")
    add("--json", type=Path, help="write every run and the summary here")
    add("--json-subscribers", action="store_true", help="keep per-subscriber rows in --json")
    add("--worker", choices=("janus", "ours", "base"), help=argparse.SUPPRESS)
    add("--clip", help=argparse.SUPPRESS)
    add("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        args.n = args.n[0]
    elif not all(0 < n <= MAX_N for n in args.n) or not 0 < args.duration <= 3600:
        parser.error(f"--n in 1..{MAX_N}, --duration in (0, 3600]")
    if not 1 <= args.repeat <= 10 or not 0 < args.join_rate <= 200:
        parser.error("--repeat in 1..10, --join-rate in (0, 200]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.worker:
        return orchestrate(args)
    try:
        import uvloop

        result = uvloop.run(worker(args))
    except ImportError:
        result = asyncio.run(worker(args))
    Path(args.result).write_text(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
