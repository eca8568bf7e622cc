"""Soak: the same day of consultations and lessons over and over; does the server give it back?

    python benchmarks/soak.py                          # one hour, one worker
    python benchmarks/soak.py --duration 900 --workers 2 --json soak.json

Starts the real server (``python -m mcu --workers W``, a fresh data directory, 127.0.0.1 only,
inside a private network namespace holding only ``lo``) and runs cycles of activity against it
until ``--duration`` has passed (the cycle under way finishes; each is bounded in time). A cycle
(``churn/cycle.py``) joins aiortc participants to a meeting (VP8 and H.264 publishers replaying a
clip encoded once, and a counting subscriber), records it through the admin API, uploads a PDF
or a PNG and pages through it as slides, starts a WHIP lesson watched by ``--viewers`` WHEP
viewers, uploads and deletes courseware, then everyone leaves and the recording is deleted once
complete.

Every ``--interval`` seconds, and at the end of every cycle once the server reports nobody
connected (a *boundary*), it samples each server process (the front and every worker, or the
single process): resident memory, open file descriptors (``/proc/PID/fd``), threads, asyncio
tasks (the ``mcu_asyncio_tasks`` gauge), plus the number of server processes and the size of
every SQLite file in the data directory. It prints a table row per sample (``*`` marks a
boundary), then each series' first against last third, then the verdict over the boundaries
after the first ``--warmup`` cycles (``churn/growth.py``): sizes may grow by ``--tolerance``
between the medians of the middle and last thirds; counts must come back to the first third's.

Exit status: 0 when nothing grew and every cycle did everything it should; 1 when a resource
grew or a cycle failed; 2 for bad arguments, a server or rooms that could not be set up, or too
few cycles to judge. See ``benchmarks/README.md``.
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
from dataclasses import asdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
for path in (HERE.parent, HERE):  # run as a script from anywhere
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import aiohttp  # noqa: E402
from broadcast.netns import reexec_isolated  # noqa: E402
from broadcast.server import HOST, ServerProcess  # noqa: E402
from churn.cycle import Cycle, CycleResult, Rooms  # noqa: E402
from churn.growth import (  # noqa: E402
    column_names,
    comparison,
    judge,
    sample_header,
    sample_row,
    verdict_lines,
)
from churn.resources import Sample, descendants, read_processes, sqlite_sizes  # noqa: E402
from load.clip import encode_clip  # noqa: E402

from mcu.sfu import ice  # noqa: E402

CLIP_SIZE = (320, 180)
CLIP_BITRATE = 300_000
CYCLE_LIMIT = 240.0
"Seconds one cycle may take at most (joins, media, a recording's composite, leaving)."
HEADER_EVERY = 20
STEPS = ("recording", "slides", "whep", "library")
"What ``--without`` can leave out of a cycle."


RECONNECT_GRACE = 3.0
"Seconds the soak's server keeps a participant whose connection dropped (default 30)."


def percent(text: str) -> float:
    """``10%`` or ``0.1`` -> 0.1."""
    value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    if not 0 <= value <= 10:
        raise argparse.ArgumentTypeError(f"{text!r} is not a sensible tolerance")
    return value


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--duration",
        type=float,
        default=3600.0,
        help="seconds of cycles (the cycle under way finishes; default 3600)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server worker processes (1: a single process; default 1)",
    )
    parser.add_argument(
        "--interval", type=float, default=5.0, help="seconds between samples (default 5)"
    )
    parser.add_argument(
        "--warmup", type=int, default=2, help="cycles left out of the verdict (default 2)"
    )
    parser.add_argument(
        "--tolerance",
        type=percent,
        default=0.10,
        help="growth allowed for memory and database sizes (default 10%%)",
    )
    parser.add_argument(
        "--hold", type=float, default=6.0, help="seconds everyone stays in a cycle (default 6)"
    )
    parser.add_argument(
        "--viewers", type=int, default=3, help="WHEP viewers of the lesson per cycle (default 3)"
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=2.0,
        help="seconds between the server reporting nobody and a boundary sample",
    )
    parser.add_argument(
        "--without",
        default="",
        help="steps left out of every cycle, comma-separated: "
        + ", ".join(STEPS)
        + " (to find which one a growth comes with)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="keep the server's data here (default: a temporary directory)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write samples and verdict")
    parser.add_argument(
        "--no-netns",
        action="store_true",
        help="stay on the host network (127.0.0.1 is still all it uses)",
    )
    args = parser.parse_args(argv)  # fmt: skip
    args.without = frozenset(filter(None, (w.strip() for w in args.without.split(","))))
    if not args.without <= set(STEPS):
        parser.error(f"--without takes {', '.join(STEPS)}")
    if args.duration <= 0 or args.interval <= 0 or args.hold < 0 or args.settle < 0:
        parser.error("--duration and --interval must be positive, --hold and --settle not negative")
    if not 1 <= args.workers <= 64 or not 0 <= args.viewers <= 100 or args.warmup < 0:
        parser.error("--workers 1-64, --viewers 0-100, --warmup 0 or more")
    return args


class Sampler:
    """Reads every resource of the server tree, on a timer and at cycle boundaries."""

    def __init__(self, server: ServerProcess, http: aiohttp.ClientSession, started: float) -> None:
        self.server = server
        self.http = http
        self.started = started
        self.samples: list[Sample] = []
        self.cycle = 0
        self._columns: list[str] | None = None

    async def take(self, *, boundary: bool) -> Sample:
        """One sample, printed as a table row."""
        exposition = await self.server.metrics(self.http)
        processes = self.server.processes()
        values = read_processes(processes, exposition)
        front = self.server.pid
        if front is not None:
            values["procs:all"] = 1 + len(descendants(front))
        values.update(sqlite_sizes(self.server.data_dir))
        sample = Sample(time.monotonic() - self.started, self.cycle, boundary, values)
        self.samples.append(sample)
        if self._columns is None:
            self._columns = column_names([sample])
        if (len(self.samples) - 1) % HEADER_EVERY == 0:
            print(sample_header(self._columns), flush=True)
        print(sample_row(sample, self._columns), flush=True)
        return sample

    async def every(self, interval: float) -> None:
        """Sample every ``interval`` seconds until cancelled."""
        for _ in range(10_000_000):
            await asyncio.sleep(interval)
            await self.take(boundary=False)


def cycle_line(result: CycleResult) -> str:
    done = ", ".join(f"{n} {what}" for what, n in sorted(result.counts.items()))
    status = "ok" if not result.errors else f"{len(result.errors)} error(s)"
    return f"cycle {result.index}: {result.seconds:.1f} s, {done}; {status}"


async def soak(args: argparse.Namespace) -> tuple[dict[str, Any], int]:
    """The whole run; returns the ``--json`` document and the exit status."""
    ice.install(ice.IcePolicy(addresses=(HOST,)))
    task = asyncio.current_task()
    if task is not None:  # SIGTERM ends the run like Ctrl-C: every finally block runs
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    loop = asyncio.get_running_loop()
    vp8, h264 = await asyncio.gather(
        *(
            loop.run_in_executor(None, encode_clip, codec, *CLIP_SIZE, CLIP_BITRATE)
            for codec in ("video/VP8", "video/H264")
        )
    )
    work_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="soak-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    cores = ",".join(map(str, sorted(os.sched_getaffinity(0))))
    # Half the cycles drop the subscriber without a leave (a crashed browser); the server keeps
    # such a participant for its reconnection grace, so a short one lets every cycle end with
    # nobody connected, and the grace's expiry is soaked too.
    grace = {"MCU_RECONNECT_GRACE": str(RECONNECT_GRACE)}
    server = ServerProcess(args.workers, cores, work_dir, secrets.token_urlsafe(24), grace)
    rooms = Rooms(
        "soak-meeting", secrets.token_urlsafe(12),
        "soak-lesson", secrets.token_urlsafe(12), secrets.token_urlsafe(12),
    )  # fmt: skip
    doc: dict[str, Any] = {"config": {k: str(v) for k, v in vars(args).items()}}
    results: list[CycleResult] = []
    # No connection outlives its request: an idle keep-alive socket would sit in the server's
    # descriptors and tasks at a boundary.
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
    sampler: Sampler | None = None
    ticker: asyncio.Task[None] | None = None
    try:
        server.launch()
        try:
            await server.wait_ready(http)
            cycle = Cycle(
                server.base_url, server.admin_token, rooms, (vp8, h264),
                hold=args.hold, viewers=args.viewers, clock=time.monotonic, without=args.without,
            )  # fmt: skip
            await cycle.create_rooms(http)
        except (RuntimeError, OSError, aiohttp.ClientError) as exc:
            print(f"setup failed: {exc}", file=sys.stderr)
            return doc | {"error": str(exc)}, 2
        print(
            f"server: {args.workers} worker(s), data in {server.data_dir}; cycles for"
            f" {args.duration:.0f} s, a sample every {args.interval:g} s",
            flush=True,
        )
        started = time.monotonic()
        sampler = Sampler(server, http, started)
        await sampler.take(boundary=True)  # before anything: cycle 0
        ticker = asyncio.create_task(sampler.every(args.interval))
        for index in range(1, 1_000_000):
            if time.monotonic() - started >= args.duration:
                break
            sampler.cycle = index
            try:
                result = await asyncio.wait_for(cycle.run(index, http), CYCLE_LIMIT)
            except TimeoutError:
                result = CycleResult(index, time.monotonic() - started, CYCLE_LIMIT)
                result.errors.append(f"did not finish within {CYCLE_LIMIT:.0f} s")
            results.append(result)
            print(cycle_line(result), flush=True)
            for error in result.errors:
                print(f"  error: {error}", flush=True)
            await asyncio.sleep(args.settle)
            await sampler.take(boundary=True)
    finally:
        if ticker is not None:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
        await http.close()
        server.stop()
        if args.data_dir is None:
            shutil.rmtree(work_dir, ignore_errors=True)
    samples = sampler.samples if sampler is not None else []
    boundaries = [s for s in samples if s.boundary]
    judgements, short = judge(boundaries, args.warmup, args.tolerance)
    print()
    print("first third against last third of every sample:")
    print("\n".join(comparison(samples)))
    failed_cycles = [r.index for r in results if r.errors]
    doc |= {
        "cycles": [asdict(r) for r in results],
        "samples": [asdict(s) for s in samples],
        "judgements": [asdict(j) for j in judgements],
    }
    print()
    if short is not None:
        print(f"no verdict: {short}")
        return doc | {"verdict": short}, 2
    print(
        f"at cycle boundaries after {args.warmup} warm-up cycles"
        f" ({len([b for b in boundaries if b.cycle > args.warmup])} boundaries):"
    )
    print("\n".join(verdict_lines(judgements)))
    grew = [j.series for j in judgements if not j.passed]
    print()
    if failed_cycles:
        print(f"FAIL: cycles with errors: {', '.join(map(str, failed_cycles))}")
    if grew:
        print(f"FAIL: grew: {', '.join(grew)}")
    if not grew and not failed_cycles:
        print(f"PASS: {len(results)} cycles, nothing grew")
    return doc | {"grew": grew, "failed_cycles": failed_cycles}, 1 if grew or failed_cycles else 0


def main(argv: list[str] | None = None) -> int:
    raw = sys.argv[1:] if argv is None else argv
    args = parse_args(raw)
    if not args.no_netns:
        why = reexec_isolated(str(Path(__file__).resolve()), raw)
        if why is not None:
            print(f"note: running on the host network (127.0.0.1 only): {why}", file=sys.stderr)
    limit = args.duration + CYCLE_LIMIT + 120

    async def bounded() -> tuple[dict[str, Any], int]:
        return await asyncio.wait_for(soak(args), limit)

    try:
        doc, status = asyncio.run(bounded())
    except TimeoutError:
        print(f"the soak did not finish within {limit:.0f} s", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted", file=sys.stderr)
        return 130
    if args.json is not None:
        args.json.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        print(f"wrote {args.json}")
    return status


if __name__ == "__main__":
    sys.exit(main())
