"""Routing between the nodes of a cluster: what the extra hop and a dead home cost.

Two nodes (real server processes, ``--workers 1`` each) and a real ``redis-server`` on
127.0.0.1. Run it where loopback is the only interface (clients gather ICE candidates there):

    unshare -n sh -c 'ip link set lo up && \
      exec .venv/bin/python benchmarks/bench_cluster_routing.py'

Prints, for ``--joins`` joins each (signalling only, ``media: none``): the time from opening the
WebSocket to ``joined`` at the room's home and through the other node (piped to the home); then
the time from SIGKILLing every process of the home until the other node's registry drops it, and
the first join through the survivor, which takes the room over. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcu.sfu import ice
from tests.support.cluster import cluster_nodes
from tests.support.redis import RedisServer
from tests.support.room_client import RoomClient
from tests.support.server import ServerProcess

PASSWORD = "bench-password"


async def _join(server: ServerProcess, name: str) -> float:
    client = RoomClient(server.ws_url, name)
    start = time.monotonic()
    await client.connect()
    reply = await client.join("bench", password=PASSWORD, media="none")
    took = time.monotonic() - start
    await client.close()
    if reply["type"] != "joined":
        raise RuntimeError(f"join refused: {reply}")
    return took


def _line(label: str, times: list[float]) -> str:
    return (
        f"{label}: median {statistics.median(times) * 1000:.1f} ms, "
        f"max {max(times) * 1000:.1f} ms ({len(times)} joins)"
    )


async def run(joins: int, workdir: Path) -> None:
    async with RedisServer(workdir / "redis") as redis, cluster_nodes(workdir, redis) as nodes:
        home, other = nodes
        await nodes[1].create_room("bench", PASSWORD)  # on B: every node has it
        await _join(home, "first")  # claims the room for `home`, remembers the password check
        at_home, through = [], []
        for i in range(joins):
            at_home.append(await _join(home, f"h{i}"))
            through.append(await _join(other, f"o{i}"))
        print(_line("join at the room's home", at_home))
        print(_line("join through the other node", through))
        await home.kill_every_process()
        killed = time.monotonic()
        while len((await other.get_json("/api/cluster/nodes"))["nodes"]) > 1:  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # polled: the registry is another process's
        print(f"SIGKILL to gone from the registry: {time.monotonic() - killed:.2f} s")
        print(f"first join through the survivor (takes the room over): "
              f"{await _join(other, 'after') * 1000:.1f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--joins", type=int, default=15, help="joins each way (default 15)")
    args = parser.parse_args()
    ice.install(ice.IcePolicy(addresses=("127.0.0.1",)))
    with tempfile.TemporaryDirectory(prefix="mcu-bench-") as directory:
        asyncio.run(run(args.joins, Path(directory)))


if __name__ == "__main__":
    main()
