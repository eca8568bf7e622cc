"""The load generator: groups of WHEP viewers, in this process or in child processes.

One Python process counting packets at its sockets spends ~10-15 us per packet, so a few hundred
viewers of a 1.5 Mbit/s lecture (~200 packets/s each) saturate one process. ``--client-processes
K`` splits the viewers over K children, each a :class:`ViewerGroup` driven by JSON lines on its
stdin/stdout (one request, one reply):

- ``{"op": "join", "url", "token", "codec", "names", "rate", "delay", "timeout"}``: start a viewer
  per name, the i-th at ``delay + i / rate`` seconds, and wait until each has audio and video or
  has failed; replies ``{"joined": {name: ready_s}, "failed": {name: error}}``;
- ``{"op": "snapshot"}``: replies ``{"cpu": s, "viewers": {name: counts}}``, this process's CPU
  time and every viewer's totals so far (:meth:`WhepViewer.counts`);
- ``{"op": "quit"}``: ends every session and exits (so does end of input).

:class:`LocalViewers` and :class:`RemoteViewers` offer the same three calls to the benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Protocol

HERE = Path(__file__).resolve().parent
BENCHMARKS = HERE.parent
if __name__ == "__main__" and str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import aiohttp  # noqa: E402

from broadcast.clients import WhepViewer  # noqa: E402

PIPE_LIMIT = 16 << 20  # a snapshot of a few hundred viewers is one JSON line
CLOSE_TIMEOUT = 30.0


class Viewers(Protocol):
    """A group of viewers the benchmark drives (in this process or in a child)."""

    async def join(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Start the named viewers at the given pace; ``{"joined": ..., "failed": ...}``."""
        ...

    async def snapshot(self) -> dict[str, Any]:
        """``{"cpu": seconds, "viewers": {name: counts}}``."""
        ...

    async def close(self) -> None:
        """End every session; bounded in time."""
        ...


def viewer_address(name: str) -> str:
    """The loopback address viewer ``v<i>`` sends its HTTP requests from: 127.0.x.y, one per
    viewer, as every viewing site has its own. From one address, a few hundred sites joining
    together would look like one site guessing the viewer password (the server limits password
    attempts in flight per address and room)."""
    index = int(name.lstrip("v") or 0)
    return f"127.0.{1 + index // 250}.{1 + index % 250}"


class ViewerGroup:
    """Viewers in the current process, each with an HTTP session from its own address."""

    def __init__(self) -> None:
        self.viewers: list[WhepViewer] = []
        self._sessions: list[aiohttp.ClientSession] = []

    def _http(self, name: str) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=0, local_addr=(viewer_address(name), 0))
        session = aiohttp.ClientSession(connector=connector)
        self._sessions.append(session)
        return session

    async def join(self, request: dict[str, Any]) -> dict[str, Any]:
        """Start one viewer per name, paced; wait until each is ready or has failed."""
        batch = [
            WhepViewer(name, self._http(name), request["url"], request["token"], request["codec"])
            for name in request["names"]
        ]
        self.viewers.extend(batch)
        start = time.monotonic() + float(request["delay"])
        rate = float(request["rate"])

        async def one(i: int, viewer: WhepViewer) -> None:
            await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            await viewer.watch(float(request["timeout"]))

        await asyncio.gather(*(one(i, v) for i, v in enumerate(batch)))
        return {
            "joined": {v.name: v.ready_s for v in batch if v.error is None},
            "failed": {v.name: v.error for v in batch if v.error is not None},
        }

    def snapshot(self) -> dict[str, Any]:
        """This process's CPU time and every viewer's totals."""
        return {"cpu": time.process_time(), "viewers": {v.name: v.counts() for v in self.viewers}}

    async def close(self) -> None:
        """End every session and close the HTTP session."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(v.close() for v in self.viewers), return_exceptions=True),
                CLOSE_TIMEOUT,
            )
        await asyncio.gather(*(s.close() for s in self._sessions), return_exceptions=True)


class LocalViewers:
    """A :class:`ViewerGroup` in the benchmark's own process."""

    def __init__(self) -> None:
        self.group = ViewerGroup()

    async def join(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        return await asyncio.wait_for(self.group.join(request), timeout)

    async def snapshot(self) -> dict[str, Any]:
        return self.group.snapshot()

    async def close(self) -> None:
        await self.group.close()


class RemoteViewers:
    """A :class:`ViewerGroup` in a child process pinned to some cores."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self._lock = asyncio.Lock()

    @classmethod
    async def start(cls, cores: list[int], ice_address: str) -> RemoteViewers:
        """Start ``python -m broadcast.generator`` pinned to ``cores``."""
        paths = [str(BENCHMARKS), str(BENCHMARKS.parent), os.environ.get("PYTHONPATH", "")]
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "broadcast.generator",
            "--cores",
            ",".join(map(str, cores)),
            "--ice-address",
            ice_address,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=PIPE_LIMIT,
            env=os.environ | {"PYTHONPATH": os.pathsep.join(p for p in paths if p)},
        )
        return cls(process)

    async def call(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        """One request, one reply within ``timeout`` seconds."""
        assert self.process.stdin is not None and self.process.stdout is not None
        async with self._lock:
            self.process.stdin.write(json.dumps(message).encode() + b"\n")
            await self.process.stdin.drain()
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"generator process {self.process.pid} exited")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"generator process {self.process.pid}: {reply['error']}")
        return reply

    async def join(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        return await self.call({"op": "join"} | request, timeout)

    async def snapshot(self) -> dict[str, Any]:
        return await self.call({"op": "snapshot"}, 30)

    async def close(self) -> None:
        """Ask the child to end its sessions and exit; kill it if it does not in time."""
        with contextlib.suppress(Exception):
            await self.call({"op": "quit"}, CLOSE_TIMEOUT + 5)
        try:
            await asyncio.wait_for(self.process.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()


async def serve(cores: list[int], ice_address: str) -> None:
    """The child's loop: answer requests on stdin until ``quit`` or end of input."""
    from mcu.sfu import ice

    os.sched_setaffinity(0, set(cores))
    ice.install(ice.IcePolicy(addresses=(ice_address,)))
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # nothing else may write to the reply pipe
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=PIPE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    group = ViewerGroup()
    try:
        while line := await reader.readline():
            message = json.loads(line)
            reply: dict[str, Any]
            try:
                if message["op"] == "join":
                    reply = await group.join(message)
                elif message["op"] == "snapshot":
                    reply = group.snapshot()
                elif message["op"] == "quit":
                    break
                else:
                    reply = {"error": f"unknown op {message['op']!r}"}
            except Exception as exc:
                reply = {"error": repr(exc)}
            out.write(json.dumps(reply) + "\n")
            out.flush()
    finally:
        await group.close()
    out.write(json.dumps({"ok": True}) + "\n")
    out.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description="WHEP viewers for bench_broadcast.py")
    parser.add_argument("--cores", required=True, help="comma-separated cores to pin to")
    parser.add_argument("--ice-address", default="127.0.0.1")
    args = parser.parse_args()
    cores = [int(c) for c in args.cores.split(",")]
    # Ctrl-C reaches the whole process group: the benchmark, not this child, decides when to
    # stop (it sends "quit", or its exit closes our stdin).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import uvloop

        uvloop.run(serve(cores, args.ice_address))
    except ImportError:
        asyncio.run(serve(cores, args.ice_address))


if __name__ == "__main__":
    main()
