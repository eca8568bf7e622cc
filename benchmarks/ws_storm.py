"""WebSocket storm: what a client that opens signalling sockets without joining costs a server.

    python benchmarks/ws_storm.py --url http://127.0.0.1:8080 --sockets 3000 --hold 20

Opens ``--sockets`` WebSockets to ``/ws`` as fast as ``--concurrency`` allows, from the local
addresses in ``--source`` (round robin; any of 127.0.0.0/8 on loopback), never joins, keeps
them busy with protocol pings every ``--ping-every`` seconds (and WebSocket pings, aiohttp's
heartbeat), then reports how many opened, how many were refused and with which status, how many
the server closed and with which reason, and how many are still open after ``--hold`` seconds.
Meanwhile it samples the server's ``mcu_event_loop_lag_last_seconds`` (every worker's, behind a
front) each 0.5 s: the worst event-loop lag is how long forwarding stalled for every room.
Exit status 0 when no socket is left open after the hold, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import json
import sys
import time
from dataclasses import dataclass, field

import aiohttp


@dataclass
class Tally:
    """What happened to the sockets."""

    opened: int = 0
    refused: collections.Counter[str] = field(default_factory=collections.Counter)
    closed: collections.Counter[str] = field(default_factory=collections.Counter)
    still_open: int = 0
    worst_lag: float = 0.0


async def _hold(ws: aiohttp.ClientWebSocketResponse, until: float, ping_every: float) -> str:
    """Ping until ``until`` or until the server closes: the close code and reason, or ''."""
    next_ping = time.monotonic()
    while (now := time.monotonic()) < until:
        if now >= next_ping and ping_every > 0:
            with contextlib.suppress(ConnectionError):
                await ws.send_str('{"type": "ping"}')
            next_ping = now + ping_every
        try:
            message = await ws.receive(timeout=min(1.0, max(0.01, until - now)))
        except TimeoutError:
            continue
        if message.type == aiohttp.WSMsgType.CLOSE:
            return f"{message.data} {message.extra}"
        if message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            return f"{ws.close_code} (no reason)"
    return ""


async def _one(
    session: aiohttp.ClientSession,
    url: str,
    gate: asyncio.Semaphore,
    until: float,
    ping_every: float,
    tally: Tally,
) -> None:
    async with gate:
        try:
            ws = await session.ws_connect(url, heartbeat=5.0, timeout=aiohttp.ClientWSTimeout())
        except aiohttp.WSServerHandshakeError as exc:
            tally.refused[str(exc.status)] += 1
            return
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            tally.refused[type(exc).__name__] += 1
            return
    tally.opened += 1
    try:
        outcome = await _hold(ws, until, ping_every)
    finally:
        if not ws.closed:
            tally.still_open += 1
        await ws.close()
    if outcome:
        tally.closed[outcome] += 1


async def _sample_lag(url: str, stop: asyncio.Event, tally: Tally) -> None:
    async with aiohttp.ClientSession() as http:
        while not stop.is_set():
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                async with http.get(url + "/metrics", timeout=aiohttp.ClientTimeout(10)) as r:
                    for line in (await r.text()).splitlines():
                        if line.startswith("mcu_event_loop_lag_last_seconds"):
                            lag = float(line.rsplit(" ", 1)[1])
                            tally.worst_lag = max(tally.worst_lag, lag)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)


async def storm(args: argparse.Namespace) -> Tally:
    """Run the storm; the tally."""
    tally = Tally()
    ws_url = args.url.replace("http", "ws", 1).rstrip("/") + "/ws"
    sessions = [
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, local_addr=(source, 0)),
        )
        for source in args.source.split(",")
    ]
    gate = asyncio.Semaphore(args.concurrency)
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample_lag(args.url.rstrip("/"), stop, tally))
    started = time.monotonic()
    until = started + args.hold
    try:
        await asyncio.gather(
            *(
                _one(session, ws_url, gate, until, args.ping_every, tally)
                for session, _ in zip(itertools.cycle(sessions), range(args.sockets), strict=False)
            )
        )
    finally:
        stop.set()
        await sampler
        for session in sessions:
            await session.close()
    return tally


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--source", default="127.0.0.1", help="local addresses, comma-separated")
    parser.add_argument("--hold", type=float, default=20.0, help="seconds to keep sockets open")
    parser.add_argument("--ping-every", type=float, default=1.0, help="0: no protocol pings")
    parser.add_argument("--json", action="store_true", help="print the tally as JSON")
    args = parser.parse_args(argv)
    tally = asyncio.run(storm(args))
    report = {
        "sockets": args.sockets,
        "opened": tally.opened,
        "refused": dict(tally.refused),
        "closed_by_server": dict(tally.closed),
        "still_open_after_hold": tally.still_open,
        "hold_seconds": args.hold,
        "worst_event_loop_lag_seconds": round(tally.worst_lag, 3),
    }
    print(json.dumps(report, indent=None if args.json else 2))
    return 0 if tally.still_open == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
