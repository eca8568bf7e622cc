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


def write_invite_key(data_dir: Path, key: bytes) -> None:
    """The invite key every node must share, in the file crypto/secrets.py reads."""
    directory = data_dir / "secrets"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / "invite-key"
    path.write_bytes(key)
    path.chmod(0o600)


@contextlib.asynccontextmanager
async def cluster_nodes(
    tmp_path: Path, redis: RedisServer, count: int = 2
) -> AsyncIterator[list[ServerProcess]]:
    """``count`` nodes (``--workers 1`` each) started together; stopped at the end."""
    secret = secrets.token_urlsafe(32)
    admin_token = secrets.token_urlsafe(24)
    invite_key = secrets.token_bytes(32)
    nodes = []
    for index in range(count):
        data_dir = tmp_path / f"node{index}"
        node = ServerProcess(data_dir, admin_token=admin_token, workers=1, front=True)
        node.extra_args = [
            "--redis-url",
            redis.url(),
            "--advertise-url",
            node.base_url,
        ]
        node.env = {"MCU_CLUSTER_SECRET": secret}
        # until rooms are shared through Redis: one invite key for all nodes
        write_invite_key(data_dir, invite_key)
        nodes.append(node)
    try:
        await asyncio.gather(*(node.start() for node in nodes))
        yield nodes
    finally:
        await asyncio.gather(*(node.stop() for node in nodes), return_exceptions=True)


async def create_room_everywhere(
    nodes: list[ServerProcess], room: str, password: str, **fields: str
) -> None:
    """The same room through every node's admin API."""
    # until rooms are shared through Redis: each node keeps its own store
    for node in nodes:
        await node.create_room(room, password, **fields)
