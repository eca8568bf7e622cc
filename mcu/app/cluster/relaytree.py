"""The tree a lecture's stage is relayed along between nodes, with a bounded fan-out, in Redis.

A room's home relays its stage to at most :data:`FANOUT` nodes; a further node takes it from a
node that already has it (its entry worker re-relays exactly as the home does), so the home's
egress stays flat however many nodes serve viewers, and a stage crosses ``log_F(nodes)`` hops.
The tree lives in one Redis hash per room, ``mcu:tree:<room>``: node id -> ``{"worker": its entry
worker, "parent": the node it takes the stage from, "depth": hops from the home}``. A node
attaches with one Lua script (run whole, so two nodes attaching at once never both take a
parent's last place): it picks the shallowest live node with room for a child (the home first),
never one of its own descendants, and writes its entry; entries of nodes that left the registry
are dropped on the way. A node detaches when it stops receiving the room, and attaches again
(to another parent) when its parent leaves the registry.
"""

from __future__ import annotations

import logging

from redis.asyncio import Redis

from mcu.app.cluster.registry import NodeRegistry

__all__ = ["FANOUT", "TREE_TTL_S", "RedisRelayTree", "tree_key"]

logger = logging.getLogger(__name__)

FANOUT = 4
"""Nodes one node relays a room's stage to, at most. Four copies of a 2 Mbit/s lecture are
8 Mbit/s and four times ~13 µs of CPU per packet on the sender, beside the viewers it serves;
40,000 viewers on 13 nodes are then two hops from the home (1 + 4 + 16 ≥ 13), each hop adding
a network delay and ~10-20 ms (docs/cluster.md, "Capacity")."""
TREE_TTL_S = 3600.0
"A room's tree is forgotten an hour after its last change (a lecture's whole length)."


def tree_key(room: str) -> str:
    """The Redis hash of ``room``'s relay tree."""
    return f"mcu:tree:{room}"


# KEYS[1]: the tree. ARGV: me, my entry worker, the home node, the fan-out, the TTL in ms, then
# the live nodes. Returns {parent, its entry worker (-1: the home's, found by the home's
# front)}.
_ATTACH = """
local me, worker, home, fanout = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local live = {}
for i = 6, #ARGV do live[ARGV[i]] = true end
local raw = redis.call('HGETALL', KEYS[1])
local entries = {}
for i = 1, #raw, 2 do
  local node = raw[i]
  if node ~= me and node ~= home and live[node] then
    entries[node] = cjson.decode(raw[i + 1])
  elseif node ~= me then
    redis.call('HDEL', KEYS[1], node)
  end
end
local children = {}
for _, entry in pairs(entries) do
  children[entry.parent] = (children[entry.parent] or 0) + 1
end
-- A usable parent reaches the home through live entries, and not through me (no cycles).
local function usable(node)
  for _ = 1, 256 do
    if node == home then return true end
    if node == me then return false end
    local entry = entries[node]
    if entry == nil then return false end
    node = entry.parent
  end
  return false
end
local best, depth = nil, 0
if (children[home] or 0) < fanout then
  best = home
else
  for node, entry in pairs(entries) do
    if (children[node] or 0) < fanout and usable(node) then
      if best == nil or entry.depth < depth or (entry.depth == depth and node < best) then
        best, depth = node, entry.depth
      end
    end
  end
  if best == nil then best, depth = home, 0 end  -- every node full: the home takes one more
end
redis.call('HSET', KEYS[1], me, cjson.encode({worker = worker, parent = best, depth = depth + 1}))
redis.call('PEXPIRE', KEYS[1], ARGV[5])
if best == home then return {best, -1} end
return {best, entries[best].worker}
"""


class RedisRelayTree:
    """This node's place in the relay trees of the rooms it takes from other nodes."""

    def __init__(
        self, redis: Redis, registry: NodeRegistry, node: str, fanout: int = FANOUT
    ) -> None:
        self.redis = redis
        self.registry = registry
        self.node = node
        self.fanout = fanout
        self._attach = redis.register_script(_ATTACH)

    async def attach(self, room: str, home: str, worker: int) -> tuple[str, int | None]:
        """Where this node's entry ``worker`` takes ``room`` (homed on ``home``) from: the
        parent node and its entry worker (None: the room's home worker on the home node)."""
        live = [record.node for record in await self.registry.live_nodes()]
        parent, index = await self._attach(
            keys=[tree_key(room)],
            args=[self.node, worker, home, self.fanout, int(TREE_TTL_S * 1000), *live],
        )
        parent = parent.decode() if isinstance(parent, bytes) else str(parent)
        index = int(index)
        logger.info("room %s: relayed here from node %s", room, parent)
        return parent, None if index < 0 else index

    async def detach(self, room: str) -> None:
        """This node no longer takes ``room``: its place in the tree is free."""
        await self.redis.hdel(tree_key(room), self.node)  # type: ignore[misc]
