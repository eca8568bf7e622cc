"""Nodes of a cluster for tests: real server processes sharing one real Redis, one cluster
secret and one admin token, each with a data directory of its own, all on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

from tests.support.redis import RedisServer
from tests.support.server import ServerProcess


@contextlib.asynccontextmanager
async def cluster_nodes(
    tmp_path: Path, redis: RedisServer | str, count: int = 2, workers: int = 1
) -> AsyncIterator[list[ServerProcess]]:
    """``count`` nodes (``--workers`` ``workers`` each, a front each) on ``redis`` (a server,
    or a URL such as :meth:`~tests.support.redis.TwoSites.url`'s); stopped at the end, and none
    may have logged a traceback."""
    secret = secrets.token_urlsafe(32)
    admin_token = secrets.token_urlsafe(24)
    nodes = []
    for index in range(count):
        data_dir = tmp_path / f"node{index}"
        node = ServerProcess(data_dir, admin_token=admin_token, workers=workers, front=True)
        node.extra_args = [
            "--redis-url",
            redis if isinstance(redis, str) else redis.url(),
            "--advertise-url",
            node.base_url,
        ]
        node.env = {"MCU_CLUSTER_SECRET": secret}
        nodes.append(node)
    try:
        for node in nodes:  # one at a time: on two cores, parallel starts overran their bound
            await node.start()
        yield nodes
    finally:
        await asyncio.gather(*(node.stop() for node in nodes), return_exceptions=True)
    for node in nodes:
        assert "Traceback" not in node.log(), node.log()[-3000:]
