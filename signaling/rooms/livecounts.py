"""Live participant counts summed over every node of a cluster.

Each server process (each worker of each node) is a *source*: every second it writes how many
people are in each of its live rooms to the hash ``mcu:live:{source}`` with a TTL of 3 s, and
keeps its name in the set ``mcu:live``. The admin API's listing on any node sums every source's
hash; a node that dies stops refreshing, so its counts are gone within the TTL. docs/cluster.md
lists the keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from mcu.signaling.rooms.store import StoreUnavailable

__all__ = ["LIVE_PREFIX", "LIVE_SOURCES", "LiveCountBoard", "PeopleHere", "local_counts"]

logger = logging.getLogger(__name__)

LIVE_PREFIX = "mcu:live:"
"``mcu:live:{source}``: one process's live rooms -> people in them (a hash with a TTL)."
LIVE_SOURCES = "mcu:live"
"The sources that have written counts (a set; a source whose hash has expired is removed)."
REFRESH_SECONDS = 1.0
"How often a source writes its counts."
TTL_MS = 3000
"""How long a source's counts stand without a refresh: three refreshes, so a busy second does
not make a live room look empty, and a dead node's people vanish within 3 s."""

# KEYS: the set of sources. ARGV: the source asking (its own counts it knows fresher). Reads
# every other source's hash and drops the sources whose hash has expired, in one step.
# (The hashes are not declared in KEYS: the cluster's Redis is one server or a Sentinel-watched
# primary, never Redis Cluster, so a script may reach any key.)
_TOTALS = """
local out = {}
for _, source in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if source ~= ARGV[1] then
    local counts = redis.call('HGETALL', ARGV[2] .. source)
    if #counts == 0 then
      redis.call('SREM', KEYS[1], source)
    else
      for i = 1, #counts do out[#out + 1] = counts[i] end
    end
  end
end
return out
"""


class PeopleHere(Protocol):
    """The rooms live in this process, as counting needs them."""

    @property
    def rooms(self) -> Mapping[str, Any]:
        """Live rooms by id."""
        ...

    def participant_count(self, room_id: str) -> int:
        """People seen and heard in a live room (viewers not included)."""
        ...


def local_counts(rooms: PeopleHere) -> dict[str, int]:
    """People in each live room of this process that has any."""
    counts = {room_id: rooms.participant_count(room_id) for room_id in list(rooms.rooms)}
    return {room_id: count for room_id, count in counts.items() if count > 0}


class LiveCountBoard:
    """This process's counts published to Redis, and everyone's summed.

    ``source`` names this process uniquely in the cluster (the node's advertised URL and the
    worker's index); ``counts`` gives its live counts now; ``ttl_ms`` is how long they stand.
    ``start()`` runs the refresh as a task, ``await stop()`` ends it and withdraws the counts.
    """

    def __init__(
        self,
        redis: Redis,
        source: str,
        counts: Callable[[], Mapping[str, int]],
        ttl_ms: int = TTL_MS,
    ) -> None:
        self._redis = redis
        self._ttl_ms = ttl_ms
        self.source = source
        self._key = LIVE_PREFIX + source
        self._counts = counts
        self._totals = redis.register_script(_TOTALS)
        self._task: asyncio.Task[None] | None = None

    async def publish(self) -> None:
        """Write this process's counts now (replacing the last ones)."""
        counts: dict[Any, Any] = dict(self._counts())
        async with self._redis.pipeline(transaction=True) as pipeline:
            pipeline.delete(self._key)
            if counts:
                pipeline.hset(self._key, mapping=counts)
                pipeline.pexpire(self._key, self._ttl_ms)
                pipeline.sadd(LIVE_SOURCES, self.source)
            await pipeline.execute()

    async def participants(self) -> dict[str, int]:
        """People in each live room, summed over every source whose counts have not expired
        (this process's taken as they are now). Raises ``StoreUnavailable`` while Redis does
        not answer, as the room store does."""
        try:
            flat = await self._totals(keys=[LIVE_SOURCES], args=[self.source, LIVE_PREFIX])
        except RedisError as exc:
            raise StoreUnavailable(f"live counts in Redis did not answer: {exc!r}") from exc
        totals = dict(self._counts())
        for room_id, count in zip(flat[0::2], flat[1::2], strict=True):
            with contextlib.suppress(ValueError):
                totals[room_id] = totals.get(room_id, 0) + int(count)
        return totals

    def start(self) -> None:
        """Refresh every second (in a task of the running loop)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="live-counts")

    async def stop(self) -> None:
        """Stop refreshing and withdraw this process's counts (best effort: they expire anyway)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(RedisError, OSError):
            async with self._redis.pipeline(transaction=True) as pipeline:
                pipeline.delete(self._key)
                pipeline.srem(LIVE_SOURCES, self.source)
                await pipeline.execute()

    async def _run(self) -> None:
        failing = False
        while True:
            try:
                await self.publish()
                if failing:
                    logger.info("live counts: written to Redis again")
                failing = False
            except (RedisError, OSError) as exc:
                if not failing:  # once per outage, not every second
                    logger.warning("live counts: cannot write to Redis (%r)", exc)
                failing = True
            await asyncio.sleep(REFRESH_SECONDS)
