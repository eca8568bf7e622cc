"""What a server process shares with the other nodes of a cluster, and the keys they agree on.

Without ``redis_url`` nothing here is used but :func:`invite_key` and :func:`share_key`, which
then load (or create) the node's own keys under ``data_dir/secrets/``, as always. With it
(docs/cluster.md):

- the room definitions and the deny list of access tokens live in Redis
  (:class:`~mcu.signaling.rooms.redisstore.RedisRoomStore`) instead of SQLite;
- every change to a room is applied to the rooms live here
  (:class:`~mcu.signaling.rooms.changefeed.RoomChangeFeed`);
- this process's live counts are published and the listing sums every node's
  (:class:`~mcu.signaling.rooms.livecounts.LiveCountBoard`);
- invites and library share links are signed with keys derived from the cluster secret, so
  a link made on any node is accepted by every node.
"""

from __future__ import annotations

from mcu.app.cluster.registry import load_or_create_node_id
from mcu.app.config import Config
from mcu.crypto.clustercalls import derive_key
from mcu.crypto.secrets import load_or_create_secret
from mcu.infra.redisconn import connect_redis, parse_redis_url
from mcu.library.shares import SHARE_KEY_NAME
from mcu.signaling.rooms.changefeed import RoomChangeFeed
from mcu.signaling.rooms.livecounts import LiveCountBoard, local_counts
from mcu.signaling.rooms.redisstore import RedisRoomStore
from mcu.signaling.rooms.session import Rooms

__all__ = ["INVITE_KEY_NAME", "SharedState", "invite_key", "share_key"]

INVITE_KEY_NAME = "invite-key"
"The single node's invite key, under ``data_dir/secrets/``."


def _cluster_key(config: Config, purpose: str) -> bytes | None:
    if config.cluster_secret is None:
        return None
    return derive_key(config.cluster_secret.get_secret_value().encode("utf-8"), purpose)


def invite_key(config: Config) -> bytes:
    """The key invites are signed with: derived from the cluster secret (the same on every
    node), or a single node's own."""
    return _cluster_key(config, "invites") or load_or_create_secret(
        config.data_dir, INVITE_KEY_NAME
    )


def share_key(config: Config) -> bytes:
    """The key library share links are signed with, likewise."""
    return _cluster_key(config, "shares") or load_or_create_secret(config.data_dir, SHARE_KEY_NAME)


class SharedState:
    """This process's link to the cluster's Redis: the shared room store, and once
    :meth:`serve` has been given the live rooms, the change feed and the live counts.

    ``start()`` once the loop runs; ``await close()`` at cleanup.
    """

    def __init__(self, config: Config) -> None:
        if config.redis_url is None or config.advertise_url is None:
            raise ValueError("shared state needs redis_url and advertise_url (cluster mode)")
        node = load_or_create_node_id(config.data_dir)  # made by the front before its workers
        self.source = f"{node}/{config.worker_index or 0}"
        "This process among all the cluster's: the node's id and the worker's index."
        self.redis = connect_redis(parse_redis_url(config.redis_url), name="mcu")
        self.store = RedisRoomStore(self.redis)
        self.board: LiveCountBoard | None = None
        self._feed: RoomChangeFeed | None = None

    def serve(self, rooms: Rooms) -> LiveCountBoard:
        """Apply room changes to ``rooms`` and publish their counts; returns the counts, which
        the admin API's listing reads."""
        self._feed = RoomChangeFeed(self.redis, rooms, self.store)
        self.board = LiveCountBoard(self.redis, self.source, lambda: local_counts(rooms))
        return self.board

    def start(self) -> None:
        """Start listening for changes and publishing counts."""
        if self._feed is not None:
            self._feed.start()
        if self.board is not None:
            self.board.start()

    async def close(self) -> None:
        """Stop both (withdrawing this process's counts) and close the connections."""
        if self._feed is not None:
            await self._feed.stop()
        if self.board is not None:
            await self.board.stop()
        await self.redis.aclose()
