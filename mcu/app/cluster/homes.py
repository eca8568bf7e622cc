"""Which node is home to which room, agreed through Redis.

A room's home node is named under ``mcu:home:<room>``. The first node asked for a room that
exists claims it (``SET NX``); while the node runs it refreshes the key of every room it claimed
at each heartbeat, so a live room never loses its home while its node lives. A node that asks
for a room whose named home has left the registry takes the room over with a compare-and-set
(a Lua script: the key still names the dead node, and that node is still absent), so of several
nodes asking at once exactly one wins and the others follow it.

A node keeps the homes it claimed for as long as it runs, as the front keeps a room's worker
(:mod:`mcu.app.cluster.directory`): memory and keys stay bounded by the rooms that exist.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from mcu.app.cluster.registry import NodeRegistry
from mcu.contracts.nodes import HOME_TTL_S, NodeRecord, home_key, node_key

__all__ = ["Placement", "PlacementKind", "RoomHomes"]

logger = logging.getLogger(__name__)

_HOME_TTL_MS = int(HOME_TTL_S * 1000)
_REFRESH_BATCH = 500
"Home keys refreshed per script call: one call stays short however many rooms a node holds."

# KEYS[1]: the home key; KEYS[2]: the registry key of the home the caller saw ('' for none).
# ARGV[1]: that home; ARGV[2]: the claiming node; ARGV[3]: TTL in ms. Returns the home now.
_CLAIM = """
local current = redis.call('GET', KEYS[1])
if current then
  if current ~= ARGV[1] or redis.call('EXISTS', KEYS[2]) == 1 then
    return current
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return ARGV[2]
"""

# KEYS: home keys; ARGV[1]: this node; ARGV[2]: TTL in ms. Keeps this node's homes (writing
# one back that vanished, e.g. with a Redis failover that lost the last writes) and returns the
# 1-based positions of those another node has taken over.
_REFRESH = """
local lost = {}
for i, key in ipairs(KEYS) do
  local current = redis.call('GET', key)
  if current == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
  elseif not current then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
  else
    lost[#lost + 1] = i
  end
end
return lost
"""

# KEYS: home keys; ARGV[1]: this node. Deletes those that still name it.
_RELEASE = """
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('DEL', key)
  end
end
return 0
"""


class PlacementKind(enum.Enum):
    """Where a room-scoped request is served."""

    HERE = "here"
    "This node is the room's home."
    THERE = "there"
    "Another live node is (``Placement.node``)."
    ABSENT = "absent"
    "No such room: served here, where a worker refuses it; nothing is claimed."


@dataclass(frozen=True)
class Placement:
    """The answer of :meth:`RoomHomes.place`."""

    kind: PlacementKind
    "Here, there or absent."
    node: NodeRecord | None = None
    "The home node of a ``THERE`` placement."


_HERE = Placement(PlacementKind.HERE)
_ABSENT = Placement(PlacementKind.ABSENT)


class RoomHomes:
    """This node's view of room homes: claims, take-overs and refreshes."""

    def __init__(self, redis: Redis, registry: NodeRegistry, node: str) -> None:
        self.redis = redis
        self.registry = registry
        self.node = node
        self.owned: set[str] = set()
        "Rooms this node is home to (refreshed every heartbeat)."
        self._claim = redis.register_script(_CLAIM)
        self._refresh = redis.register_script(_REFRESH)
        self._release = redis.register_script(_RELEASE)

    async def place(
        self, room: str, exists: Callable[[], Awaitable[bool]], *, take_over: bool = True
    ) -> Placement:
        """Where ``room`` lives; claims it for this node when it has no live home and
        ``exists()`` confirms the room. Raises redis' errors when Redis does not answer (the
        rooms this node holds are answered without asking it). ``take_over=False``: a home
        missing from the registry is not taken for dead (``LookupError`` instead), for while
        the registry may be missing live nodes (:mod:`.registrytrust`)."""
        if room in self.owned:
            return _HERE
        value = await self.redis.get(home_key(room))
        home = None if value is None else str(value)
        if home == self.node:
            self.owned.add(room)
            return _HERE
        if home is not None:
            record = await self.registry.node(home)
            if record is not None:
                return Placement(PlacementKind.THERE, record)
        if not await exists():
            return _ABSENT
        if home is not None and not take_over:
            raise LookupError(f"room {room}: its home {home} is not listed yet after an outage")
        winner = await self._claim(
            keys=[home_key(room), node_key(home) if home else home_key(room)],
            args=[home or "", self.node, _HOME_TTL_MS],
        )
        if winner == self.node:
            self.owned.add(room)
            if home is not None:
                logger.warning("room %s re-homed here: its home node %s has gone", room, home)
            return _HERE
        record = await self.registry.node(str(winner))
        if record is None:
            # Claimed meanwhile by a node that has already gone: the next request takes it.
            raise LookupError(f"room {room}: its home {winner} has just gone")
        return Placement(PlacementKind.THERE, record)

    async def refresh(self) -> list[str]:
        """Refresh the homes this node holds; returns (and forgets) those another node took
        over (this node was thought dead: a long pause, or Redis unreachable from it)."""
        rooms = sorted(self.owned)
        lost: list[str] = []
        for start in range(0, len(rooms), _REFRESH_BATCH):
            batch = rooms[start : start + _REFRESH_BATCH]
            positions = await self._refresh(
                keys=[home_key(room) for room in batch], args=[self.node, _HOME_TTL_MS]
            )
            lost += [batch[int(i) - 1] for i in positions]
        for room in lost:
            self.owned.discard(room)
            logger.warning("room %s is now homed on another node; new joins go there", room)
        return lost

    async def release(self) -> None:
        """Give up every home (a clean stop): other nodes claim them at once."""
        rooms = sorted(self.owned)
        for start in range(0, len(rooms), _REFRESH_BATCH):
            batch = rooms[start : start + _REFRESH_BATCH]
            await self._release(keys=[home_key(room) for room in batch], args=[self.node])
        self.owned.clear()
