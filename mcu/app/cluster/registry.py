"""The cluster's node registry in Redis: who is alive, where it is reached, how loaded it is.

Each node's front writes its :class:`~mcu.contracts.nodes.NodeRecord` under
``mcu:node:<id>`` with a TTL (:data:`~mcu.contracts.nodes.NODE_TTL_S`) every heartbeat, and adds
its id to the set ``mcu:nodes`` so that a listing needs no scan of the keyspace. A node is alive
exactly while its key exists: one that is SIGKILLed drops out when the key expires; one that
stops cleanly deletes it at once.
"""

from __future__ import annotations

import logging
import re
import secrets
from pathlib import Path

from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from mcu.contracts.nodes import NODE_ID_PATTERN, NODE_TTL_S, NODES_KEY, NodeRecord, node_key

__all__ = ["NODE_ID_FILE", "NodeClash", "NodeRegistry", "load_or_create_node_id"]

logger = logging.getLogger(__name__)

NODE_ID_FILE = "node-id"
"""File in the data directory holding the node's id: the id survives restarts, so a node that
comes back reclaims its own registry entry, and two data directories are two nodes."""


class NodeClash(Exception):
    """Another live node has registered this node's id with another advertise URL (a copied
    data directory): running both would send each other's rooms astray."""


def load_or_create_node_id(data_dir: Path) -> str:
    """The id in ``data_dir/node-id``, made (12 random hex digits) on the first start."""
    path = data_dir / NODE_ID_FILE
    try:
        node = path.read_text().strip()
    except FileNotFoundError:
        node = secrets.token_hex(6)
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(node + "\n")
        return node
    if not re.fullmatch(NODE_ID_PATTERN, node):
        raise ValueError(
            f"{path} must hold a node id of lower-case letters, digits and dashes, got {node!r}"
        )
    return node


class NodeRegistry:
    """Reads and writes the registry through ``redis``."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def register(self, record: NodeRecord) -> None:
        """First registration: refused with :class:`NodeClash` when a live entry of the same
        id names another URL (the entry of this node's previous run is taken over)."""
        current = await self.node(record.node)
        if current is not None and current.url != record.url:
            raise NodeClash(
                f"node id {record.node} is registered by {current.url}, a live node; give this "
                f"one a data directory of its own (or remove its {NODE_ID_FILE} file)"
            )
        await self.beat(record)

    async def beat(self, record: NodeRecord) -> None:
        """Write ``record`` with a fresh TTL."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.sadd(NODES_KEY, record.node)
            pipe.set(node_key(record.node), record.model_dump_json(), px=int(NODE_TTL_S * 1000))
            await pipe.execute()

    async def leave(self, node: str) -> None:
        """Remove ``node`` at once (a clean stop)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.delete(node_key(node))
            pipe.srem(NODES_KEY, node)
            await pipe.execute()

    async def node(self, node: str) -> NodeRecord | None:
        """``node``'s record while it is alive, else None."""
        value = await self.redis.get(node_key(node))
        return self._parse(node, None if value is None else str(value))

    async def live_nodes(self) -> list[NodeRecord]:
        """Every live node, by id; ids whose entry expired are dropped from ``mcu:nodes``."""
        ids = sorted(str(node) for node in await self.redis.smembers(NODES_KEY))
        if not ids:
            return []
        values = await self.redis.mget([node_key(node) for node in ids])
        records = []
        gone = []
        for node, value in zip(ids, values, strict=True):
            record = self._parse(node, None if value is None else str(value))
            if record is None:
                gone.append(node)
            else:
                records.append(record)
        if gone:
            # A node registering at this moment adds itself again on its next beat.
            await self.redis.srem(NODES_KEY, *gone)
        return records

    async def listing(self) -> list[NodeRecord] | None:
        """:meth:`live_nodes`, or None (logged) when Redis does not answer."""
        try:
            return await self.live_nodes()
        except (RedisError, OSError) as exc:
            logger.warning("node registry unreadable: %r", exc)
            return None

    @staticmethod
    def _parse(node: str, value: str | None) -> NodeRecord | None:
        if value is None:
            return None
        try:
            return NodeRecord.model_validate_json(value)
        except ValidationError:
            logger.warning("registry entry of node %s is malformed; treated as absent", node)
            return None
