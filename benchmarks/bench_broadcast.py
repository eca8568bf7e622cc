"""Lecture broadcast: one WHIP lecturer, N WHEP viewers, the real server pinned to its cores.

    python benchmarks/bench_broadcast.py --viewers 100 --seconds 10
    python benchmarks/bench_broadcast.py --sweep 100,200,250,300 --workers 1,2 --json out.json

Per run: starts ``python -m mcu --workers W`` under ``taskset -c --server-cores`` with a fresh
data directory and admin token, creates a lecture room (``POST /api/rooms`` with ``kind`` and
``viewer_password``), publishes one lecturer over WHIP (the pre-encoded clip of ``load/clip.py``:
1280x720 30 fps at ~1.5 Mbit/s, H.264 or VP8, plus Opus), then joins N WHEP viewers at
``--join-rate`` per second. Viewers are aiortc peer connections that count SRTP packets at the
socket and never decrypt or decode (``load/counting.py``); they run in this process, pinned to
``--client-cores``, or in ``--client-processes`` children. Once every viewer has audio and video
(or has failed), after a settling second, ``--seconds`` of steady state are measured: per-viewer
loss and bitrate, the server's CPU per process (front and each worker, ``/proc/<pid>/stat``),
egress packets/s per worker (``/metrics``), the generator's CPU. PASS when every viewer joined,
received audio and video and lost at most ``--max-loss``.

``--sweep`` runs several N, ``--workers`` several worker counts (a fresh server each time) and
prints a table and the scaling between worker counts. Loopback only: the benchmark re-executes
itself in a private network namespace holding only ``lo`` (``unshare -n`` as root, else
``unshare -rn``) unless it already is in one. Exit status: 0 when every run passed, 1 when one
failed, 2 for bad arguments or when the server, the room or the lecturer could not be set up.
See ``benchmarks/BROADCAST.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
for path in (HERE.parent, HERE):  # run as a script from anywhere
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import aiohttp  # noqa: E402
from bench_forward import core_busy_seconds  # noqa: E402
from broadcast.clients import WhipPublisher  # noqa: E402
from broadcast.generator import LocalViewers, RemoteViewers, Viewers  # noqa: E402
from broadcast.hog import CpuHog  # noqa: E402
from broadcast.netns import reexec_isolated  # noqa: E402
from broadcast.results import (  # noqa: E402
    Snapshot,
    run_report,
    scaling,
    scaling_report,
    summarise_run,
    sweep_table,
)
from broadcast.server import (  # noqa: E402
    HOST,
    SERVER_COUNTERS,
    SERVER_GAUGES,
    ServerProcess,
    packets_sent_by_worker,
    sum_samples,
    udp_counters,
)
from load.clip import Clip, encode_clip  # noqa: E402
from loadtest import fraction  # noqa: E402

from mcu.sfu import ice  # noqa: E402

WIDTH, HEIGHT = 1280, 720
SETTLE_SECONDS = 1.0  # after the last join: its keyframe wait and bursts pass
PUBLISH_TIMEOUT = 20.0
MAX_VIEWERS = 2000
CODECS = {"h264": "video/H264", "vp8": "video/VP8"}


class SetupError(Exception):
    """The server, the room or the lecturer could not be set up: no figures for this run."""


# -- arguments ---------------------------------------------------------------------------------


def int_list(text: str) -> list[int]:
    """``100,200`` -> [100, 200] (positive integers)."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        message = f"{text!r} is not a comma-separated list of integers"
        raise argparse.ArgumentTypeError(message) from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give at least one non-negative integer")
    return values


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--viewers", type=int, default=100, help="WHEP viewers (N) for a single run")
    add("--sweep", type=int_list, help="several N, run in turn (overrides --viewers): 100,200")
    add("--workers", type=int_list, default=[1], help="server worker counts to compare: 1,2")
    add("--seconds", type=float, default=10.0, help="steady window measured after every join")
    add("--join-rate", type=float, default=20.0, help="viewer joins per second")
    add("--join-timeout", type=float, default=20.0, help="per viewer: offer -> audio and video")
    add("--codec", choices=tuple(CODECS), default="h264", help="the lecturer's video codec")
    add("--bitrate", type=int, default=1_500_000, help="target bit/s of the 1280x720 clip")
    add("--max-loss", type=fraction, default=0.01, help="a viewer's loss for PASS (1%% or 0.01)")
    add("--server-cores", default="0", help="taskset -c list for the server (front and workers)")
    add("--client-cores", type=int_list, default=[1], help="cores for this process and children")
    add("--client-processes", type=int, default=1, help="generator processes holding the viewers")
    add(
        "--cpu-hog",
        type=float,
        default=0.0,
        help="run a process taking this share (0-1) of the first server core (0: none)",
    )
    add(
        "--hog-after-joins",
        action="store_true",
        help="start the --cpu-hog once every viewer has joined, not with the server",
    )
    add("--keep-going", action="store_true", help="go on to larger N after a failed run")
    add("--timeout", type=float, help="bound on the whole benchmark, seconds (default: computed)")
    add("--no-netns", action="store_true", help="stay on the host network (still 127.0.0.1)")
    add("--json", type=Path, help="write every run and the summary here")
    add("--quiet", action="store_true", help="only the final table and verdicts")
    args = parser.parse_args(argv)
    args.counts = sorted(set(args.sweep)) if args.sweep else [args.viewers]
    cpus = os.cpu_count() or 1
    if not all(0 < n <= MAX_VIEWERS for n in args.counts):
        parser.error(f"viewer counts must be in 1..{MAX_VIEWERS}")
    if not all(1 <= w <= 64 for w in args.workers):
        parser.error("--workers values must be in 1..64")
    if not 0 < args.seconds <= 3600 or not 0 < args.join_rate <= 500:
        parser.error("--seconds in (0, 3600], --join-rate in (0, 500]")
    if not 1 <= args.join_timeout <= 300:
        parser.error("--join-timeout in [1, 300]")
    if not 0 <= args.cpu_hog < 1:
        parser.error("--cpu-hog in [0, 1): the share of the server's first core to take")
    if not 1 <= args.client_processes <= 64:
        parser.error("--client-processes in 1..64")
    if max(args.client_cores) >= cpus:
        parser.error(f"--client-cores: this machine has cores 0..{cpus - 1}")
    try:
        server_cores = {int(c) for part in args.server_cores.split(",") for c in _span(part)}
    except ValueError:
        parser.error(
            f"--server-cores {args.server_cores!r} is not a taskset list (0 or 0,1 or 0-1)"
        )
    if not server_cores or max(server_cores) >= cpus:
        parser.error(f"--server-cores: this machine has cores 0..{cpus - 1}")
    args.server_core_set = sorted(server_cores)
    if not shutil.which("taskset"):
        parser.error("taskset (util-linux) is needed to pin the server")
    return args


def _span(part: str) -> range:
    low, _, high = part.strip().partition("-")
    return range(int(low), int(high or low) + 1)


def run_limit(args: argparse.Namespace, n: int) -> float:
    """Bound on one run: server start, publishing, paced joins, the window, and closing."""
    return float(60 + PUBLISH_TIMEOUT + n / args.join_rate + args.join_timeout + args.seconds + 60)


# -- one run -----------------------------------------------------------------------------------


async def create_lecture(
    http: aiohttp.ClientSession, server: ServerProcess
) -> tuple[str, str, str]:
    """A lecture room with a presenter and a viewer password: (room id, password, viewer's)."""
    room = f"bench-{secrets.token_hex(4)}"
    password, viewer_password = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    body = {
        "id": room,
        "title": f"Broadcast benchmark {room}",
        "password": password,
        "kind": "lecture",
        "viewer_password": viewer_password,
    }
    headers = {"Authorization": f"Bearer {server.admin_token}"}
    async with http.post(f"{server.base_url}/api/rooms", json=body, headers=headers) as response:
        if response.status != 201:
            text = (await response.text()).strip()[:300]
            raise SetupError(f"POST /api/rooms (lecture): {response.status} {text}")
    return room, password, viewer_password


def plan_groups(n: int, k: int, rate: float) -> list[tuple[list[str], float, float]]:
    """Viewer names split over ``k`` groups: (names, group join rate, first join delay).

    Names are dealt round-robin and each group starts 1/rate after the previous one, so together
    the groups join one viewer every 1/rate seconds, in name order.
    """
    names = [f"v{i}" for i in range(n)]
    k = min(k, n)
    return [(names[g::k], rate / k, g / rate) for g in range(k)]


async def snapshot(
    groups: list[Viewers],
    local: bool,
    server: ServerProcess,
    http: aiohttp.ClientSession,
    cores: list[int],
    hog: CpuHog | None,
) -> Snapshot:
    """Read everything at (nearly) one moment: viewers first, then the server."""
    replies = await asyncio.gather(*(g.snapshot() for g in groups))
    at = time.monotonic()
    server_cpu = server.sample_cpu()
    hog_cpu = hog.cpu_seconds() if hog is not None else None
    exposition = await server.metrics(http)
    viewers: dict[str, Any] = {}
    for reply in replies:
        viewers.update(reply["viewers"])
    return Snapshot(
        at=at,
        viewers=viewers,
        generator_cpu=[] if local else [float(r["cpu"]) for r in replies],
        main_cpu=time.process_time(),
        server=server_cpu,
        packets_sent=packets_sent_by_worker(exposition) if exposition is not None else None,
        core_busy={core: core_busy_seconds(core) for core in cores},
        server_counters=(
            sum_samples(exposition, SERVER_COUNTERS + SERVER_GAUGES)
            if exposition is not None
            else None
        ),
        udp=udp_counters(),
        hog_cpu=hog_cpu,
    )


async def run_once(
    args: argparse.Namespace, clip: Clip, n: int, workers: int, work_dir: Path
) -> dict[str, Any]:
    """One fresh server, one lecturer, ``n`` viewers, one steady window."""
    server = ServerProcess(workers, args.server_cores, work_dir, secrets.token_urlsafe(24))
    local = args.client_processes == 1
    groups: list[Viewers] = []
    publisher: WhipPublisher | None = None
    hog = (
        CpuHog(args.cpu_hog, args.server_core_set[0], run_limit(args, n)) if args.cpu_hog else None
    )

    def say(text: str) -> None:
        if not args.quiet:
            print(text, flush=True)

    cores = sorted(set(args.server_core_set) | set(args.client_cores))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        try:
            try:
                server.launch()
                await server.wait_ready(http)
                if hog is not None and not args.hog_after_joins:
                    hog.start()  # from the start: admission sees the neighbour too
            except (RuntimeError, OSError) as exc:
                raise SetupError(str(exc)) from exc
            room, password, viewer_password = await create_lecture(http, server)
            publisher = WhipPublisher(http, f"{server.base_url}/whip/{room}", password, clip)
            try:
                await publisher.publish(PUBLISH_TIMEOUT)
            except Exception as exc:
                raise SetupError(f"the WHIP lecturer did not connect: {exc!r}") from exc
            say(
                f"-- N={n} workers={workers}: server pid {server.pid} on cores {args.server_cores},"
                f" room {room}, lecturer up; joining viewers"
            )
            plan = plan_groups(n, args.client_processes, args.join_rate)
            if local:
                groups = [LocalViewers()]
            else:
                for g in range(len(plan)):
                    core = args.client_cores[g % len(args.client_cores)]
                    groups.append(await RemoteViewers.start([core], HOST))
            url = f"{server.base_url}/whep/{room}"
            join_limit = n / args.join_rate + args.join_timeout + 30
            t0 = time.monotonic()
            replies = await asyncio.gather(
                *(
                    group.join(
                        {
                            "url": url,
                            "token": viewer_password,
                            "codec": clip.video_codec,
                            "names": names,
                            "rate": rate,
                            "delay": delay,
                            "timeout": args.join_timeout,
                        },
                        join_limit,
                    )
                    for group, (names, rate, delay) in zip(groups, plan, strict=True)
                )
            )
            joined: dict[str, float | None] = {}
            failed: dict[str, str] = {}
            for reply in replies:
                joined.update(reply["joined"])
                failed.update(reply["failed"])
            say(
                f"   {len(joined)} joined, {len(failed)} failed in {time.monotonic() - t0:.1f} s;"
                f" measuring {args.seconds:g} s"
            )
            if hog is not None and args.hog_after_joins:
                hog.start()  # the neighbour arrives when the lecture is full: nobody to refuse
            await asyncio.sleep(SETTLE_SECONDS)
            sent_before = await publisher.sent()
            before = await snapshot(groups, local, server, http, cores, hog)
            await asyncio.sleep(args.seconds)
            after = await snapshot(groups, local, server, http, cores, hog)
            sent = await publisher.sent()
        finally:
            await asyncio.gather(*(g.close() for g in groups), return_exceptions=True)
            if hog is not None:
                hog.stop()
            if publisher is not None:
                await publisher.close()
            await asyncio.get_running_loop().run_in_executor(None, server.stop)
    result = summarise_run(
        viewers=n,
        workers=workers,
        joined=joined,
        failed=failed,
        before=before,
        after=after,
        max_loss=args.max_loss,
        generator_processes=len(groups) if not local else 1,
        expected_bps=float(clip.describe()["video_bitrate_bps"])
        + float(clip.describe()["audio_bitrate_bps"]),
    )
    result["lecturer_sent"] = sent
    result["lecturer_window_pps"] = {
        kind: (sent[kind]["packets"] - sent_before[kind]["packets"]) / result["window_s"]
        for kind in sent
        if kind in sent_before and result["window_s"] > 0
    }
    result["server_log_tail"] = server.log_tail() if not result["passed"] else ""
    return result


# -- the benchmark -----------------------------------------------------------------------------


async def bench(args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    """Every (N, W) in turn; returns the document for ``--json`` and the exit status."""
    ice.install(ice.IcePolicy(addresses=(HOST,)))
    task = asyncio.current_task()
    if task is not None:  # SIGTERM ends the run like Ctrl-C: every finally block runs
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    started = time.monotonic()
    clip = await asyncio.get_running_loop().run_in_executor(
        None, encode_clip, CODECS[args.codec], WIDTH, HEIGHT, args.bitrate
    )
    info = clip.describe()
    print(
        "clip: {video_codec} {resolution} {fps} fps, {video_bitrate_bps:,} bit/s video,"
        " {audio_bitrate_bps:,} bit/s Opus, keyframe {keyframe_bytes:,} bytes every"
        " {seconds:.0f} s".format_map(info)
        + f" (encoded in {time.monotonic() - started:.1f} s)",
        flush=True,
    )
    print(
        f"server: cores {args.server_cores}; generator: cores"
        f" {','.join(map(str, args.client_cores))}, {args.client_processes} process(es)"
        + (
            f"; CPU hog: {args.cpu_hog:.0%} of core {args.server_core_set[0]}"
            + (" from the last join on" if args.hog_after_joins else "")
            if args.cpu_hog
            else ""
        ),
        flush=True,
    )
    runs: list[dict[str, Any]] = []
    failed_workers: set[int] = set()
    status = 0
    work_dir = Path(tempfile.mkdtemp(prefix="bench-broadcast-"))
    try:
        for step, n in enumerate(args.counts):
            order = args.workers if step % 2 == 0 else args.workers[::-1]
            for workers in order:
                if workers in failed_workers:
                    continue
                try:
                    run = await asyncio.wait_for(
                        run_once(args, clip, n, workers, work_dir), run_limit(args, n)
                    )
                except SetupError as exc:
                    print(f"N={n} workers={workers}: setup failed: {exc}", file=sys.stderr)
                    runs.append({"viewers": n, "workers": workers, "error": str(exc)})
                    return document(args, info, runs), 2
                except (TimeoutError, RuntimeError, OSError, aiohttp.ClientError) as exc:
                    message = (
                        f"did not finish within {run_limit(args, n):.0f} s"
                        if isinstance(exc, TimeoutError)
                        else f"{type(exc).__name__}: {exc}"
                    )
                    print(f"N={n} workers={workers}: {message}", file=sys.stderr)
                    runs.append({"viewers": n, "workers": workers, "error": message})
                    status = 1
                    failed_workers.add(workers)
                    continue
                runs.append(run)
                print(run_report(run, args.server_cores, ",".join(map(str, args.client_cores))))
                if not run["passed"]:
                    status = 1
                    if not args.keep_going:
                        failed_workers.add(workers)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    if len(runs) > 1:
        print()
        print(sweep_table(runs))
    doc = document(args, info, runs)
    if len(args.workers) > 1 or len(args.counts) > 1:
        print()
        print(scaling_report(doc["summary"]["scaling"], args.workers, args.max_loss))
    return doc, status


def document(
    args: argparse.Namespace, clip: dict[str, Any], runs: list[dict[str, Any]]
) -> dict[str, Any]:
    """The ``--json`` document: configuration, clip, every run, the scaling summary."""
    config = {
        key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()
    }
    measured = [r for r in runs if "error" not in r]
    return {
        "config": config,
        "clip": clip,
        "runs": runs,
        "summary": {
            "passed": bool(measured)
            and all(r["passed"] for r in measured)
            and len(measured) == len(runs),
            "scaling": scaling(measured, args.workers),
        },
    }


def main(argv: list[str] | None = None) -> int:
    raw = sys.argv[1:] if argv is None else argv
    args = parse_args(raw)
    if not args.no_netns:
        why = reexec_isolated(str(Path(__file__).resolve()), raw)
        if why is not None:
            print(f"note: running on the host network (127.0.0.1 only): {why}", file=sys.stderr)
    os.sched_setaffinity(0, set(args.client_cores))
    limit = args.timeout or sum(run_limit(args, n) for n in args.counts) * len(args.workers) + 120

    async def bounded() -> tuple[dict[str, Any], int]:
        return await asyncio.wait_for(bench(args), limit)

    try:
        import uvloop

        runner: Any = uvloop.run
    except ImportError:
        runner = asyncio.run
    doc: dict[str, Any]
    status: int
    try:
        doc, status = runner(bounded())
    except TimeoutError:
        print(f"the benchmark did not finish within {limit:.0f} s", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted", file=sys.stderr)
        return 130
    if args.json is not None:
        args.json.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    runs = doc["runs"]
    if runs and status != 2:
        failed = sum(1 for r in runs if not r.get("passed"))
        print(
            f"PASS: {len(runs)} of {len(runs)} run(s)"
            if not failed
            else f"FAIL: {failed} of {len(runs)} run(s) failed"
        )
    return status


if __name__ == "__main__":
    sys.exit(main())
