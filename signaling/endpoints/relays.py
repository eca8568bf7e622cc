"""A room's stage relayed between workers.

A room lives on one worker, its *home*: participants, floor, recording and the publishers' peer
connections are there. A lecture's WHEP viewers are spread over every worker; a worker that is not
the home (an *edge*) asks the home for a relay, receives the stage's RTP over loopback as plain
RTP (:mod:`mcu.sfu.relay`, never decoded), feeds it into local producers and forwards them to its
own viewers exactly as the home does. Control goes over the workers' internal HTTP sockets, with
the routes and typed bodies of :mod:`mcu.contracts.cluster` (every body is validated on receipt:
a malformed one is answered 400):

- edge → home ``POST`` :data:`~mcu.contracts.cluster.RELAYS_PATH` ``RelayRequest`` →
  ``RelayReply`` (the home's relay socket and the STAGE now); ``DELETE``
  :data:`~mcu.contracts.cluster.RELAY_PATH` when the edge's last viewer of the room leaves;
  ``POST`` :data:`~mcu.contracts.cluster.VIEWERS_PATH` ``ViewersReport`` as they change (a
  meeting's participants see who watches); ``POST`` :data:`~mcu.contracts.cluster.ADMIT_PATH`
  ``AdmitRequest`` → ``AdmitReply`` (a WHEP viewer's whole admission decided at the home, which
  keeps the room's wrong-password counts).
- home → edge ``POST`` :data:`~mcu.contracts.cluster.STAGE_PATH` ``StageDescription`` on every
  change of the stage.
- front → any worker ``GET`` :data:`~mcu.contracts.cluster.ROOM_EXISTS_PATH` →
  ``RoomExistsReply``.

An edge may also be a worker of another node: it asks over TCP with a signed call
(:mod:`mcu.signaling.endpoints.nodecalls`), names its node and sends a nonce, and the relay is
then SRTP under keys both ends derive (:mod:`mcu.sfu.relaykeying`). Calls to another node go
through a :class:`Nodes` the composition root provides (:mod:`mcu.signaling.endpoints.relaycalls`).
The edge side is :mod:`mcu.signaling.endpoints.edgerooms`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from mcu.contracts.cluster import (
    AdmitReply,
    Refusal,
    RelayReply,
    StageDescription,
    stage_path,
)
from mcu.sfu.producer import Producer
from mcu.sfu.relay import RelayEndpoint, RelayLink, assign_ssrc
from mcu.sfu.relaykeying import RelayKeying, relay_address
from mcu.sfu.relaywire import stream_description
from mcu.sfu.stage import Stage
from mcu.signaling.endpoints.edgerooms import EdgeRooms, admission_of
from mcu.signaling.endpoints.relaycalls import (
    PEER_TIMEOUT,
    ROOM_HOME,
    NodeLinks,
    Nodes,
    Peers,
    RelayError,
    RelayRefused,
    edge_name,
)
from mcu.signaling.endpoints.relaycalls import OnNode as _OnNode
from mcu.signaling.endpoints.relaycalls import call as _call
from mcu.signaling.endpoints.relaysource import RelaySource
from mcu.signaling.rooms.admission import Admitted, Refused
from mcu.signaling.rooms.errors import UnknownRoom
from mcu.signaling.rooms.records import RoomRecords
from mcu.signaling.rooms.session import Room, Rooms

__all__ = [
    "EDGE_CHECK_S",
    "PEER_TIMEOUT",
    "ROOM_HOME",
    "EdgeRooms",
    "HomeRelays",
    "NodeLinks",
    "Nodes",
    "Peers",
    "RelayError",
    "RelayRefused",
    "admission_of",
    "admit_reply",
    "edge_name",
]

logger = logging.getLogger(__name__)


def admit_reply(verdict: Admitted | Refused) -> AdmitReply:
    """The home's admission decision as the edge receives it."""
    if isinstance(verdict, Refused):
        refusal = Refusal(
            code=verdict.code, message=verdict.message, retry_after=verdict.retry_after
        )
        return AdmitReply(refused=refusal)
    return AdmitReply(own=verdict.own_session, role=verdict.role, name=verdict.name)


EDGE_CHECK_S = 2.0
"""How often a home checks that the other nodes it relays to are alive: with the registry's 5 s
TTL, a dead node's relays end (and its viewers leave the counts) within about 7 s."""


# -- the home side ---------------------------------------------------------------------------


@dataclass
class _Feed:
    """One edge worker receiving one room."""

    room: RelaySource
    worker: int
    node: str | None
    "The edge's node when it is another one (None: a worker of this node)."
    link: RelayLink
    unlisten: Callable[[], None]
    forwarded: dict[int, int] = field(default_factory=dict)
    "Relay SSRC by id() of the producer forwarded."
    pushing: asyncio.Task[None] | None = None
    dirty: bool = False


class HomeRelays:
    """This worker's rooms, relayed to the edges that have viewers of them."""

    def __init__(
        self,
        worker: int,
        peers: Peers,
        endpoint: RelayEndpoint,
        rooms: Rooms,
        store: RoomRecords,
        *,
        keying: RelayKeying | None = None,
        nodes: Nodes | None = None,
    ) -> None:
        self.worker = worker
        self.peers = peers
        self.endpoint = endpoint
        self.rooms = rooms
        self.store = store
        self.keying = keying
        "The SRTP keys of relays to other nodes (None: this worker serves no other node)."
        self.nodes = nodes
        self.edges: EdgeRooms | None = None
        "The rooms this worker receives as an edge, which it relays further as a home does."
        self._feeds: dict[tuple[str, str], _Feed] = {}
        self._ssrcs: dict[int, tuple[Producer, int]] = {}
        self._sent_before: dict[str, int] = {}
        "RTP packets sent to each edge over links closed since."

    def packets_sent(self) -> dict[str, int]:
        """RTP packets this worker relayed to each edge (:func:`edge_name`), ever: one copy of
        each stage packet per edge, however many viewers the edge serves."""
        sent = dict(self._sent_before)
        links = {id(f.link): (edge_name(f.node, f.worker), f.link) for f in self._feeds.values()}
        for edge, link in links.values():
            sent[edge] = sent.get(edge, 0) + link.packets_sent
        return sent

    def _ssrc(self, producer: Producer) -> int:
        known = self._ssrcs.get(id(producer))
        if known is None or known[0] is not producer:
            known = self._ssrcs[id(producer)] = (producer, assign_ssrc())
        return known[1]

    def describe(self, stage: Stage) -> StageDescription:
        """The STAGE message: every stream with its relay SSRC and codec."""
        return StageDescription(
            video=tuple(stream_description(p, self._ssrc(p)) for p in stage.video),
            audio=tuple(stream_description(p, self._ssrc(p)) for p in stage.audio),
        )

    def _edge(self, feed: _Feed) -> Peers:
        if feed.node is None:
            return self.peers
        assert self.nodes is not None  # add() serves no other node without it
        return _OnNode(self.nodes, feed.node)

    async def add(
        self,
        room_id: str,
        worker: int,
        host: str,
        port: int,
        *,
        node: str | None = None,
        nonce: str | None = None,
        home_node: str | None = None,
    ) -> RelayReply:
        """An edge asks for a room: start relaying its stage; returns the current STAGE.

        ``node``: the edge's node when it is another one; ``nonce``: the edge's relay nonce, to
        relay SRTP (required from another node); ``home_node``: the room's home node when it
        is another one (this worker is then this node's entry for it and relays the stage it
        receives from there). Raises :class:`UnknownRoom` when the store has no such room,
        :class:`RelayRefused` when this worker cannot serve the request, :class:`RelayError`
        when the stage cannot be had from the home node.
        """
        if node is not None and nonce is None:
            raise RelayRefused("a relay to another node is SRTP: the request needs a nonce")
        if (node is not None or nonce is not None) and (self.keying is None or self.nodes is None):
            raise RelayRefused("this worker relays to no other node")
        room = self._source(room_id)
        if home_node is not None and node is None and self.edges is not None:
            # This node's entry, asked by another of its workers: from the room's home now.
            room = await self.edges.entry(room_id, home_node)
        elif room is None and home_node is not None:
            # A node below in the relay tree: only a stage held here is passed on.
            raise RelayRefused(f"this node no longer receives room {room_id}")
        if room is None:
            record = await self.store.get(room_id)
            if record is None:
                raise UnknownRoom(f"no room {room_id!r}")
            room = self.rooms.get_or_create(record.id, record.title, record.kind, record.e2ee)
        edge = edge_name(node, worker)
        key = (room_id, edge)
        old = self._feeds.pop(key, None)
        if old is not None:
            self._stop(old)
        link = self.endpoint.link((host, port))
        home_nonce = None
        if nonce is not None:
            assert self.keying is not None
            home_nonce = self.keying.secure_link(
                link, relay_address(self.endpoint.address), f"{host}:{port}", nonce
            )
        feed = _Feed(room, worker, node, link, lambda: None)
        feed.unlisten = room.stage.listen(lambda: self._stage_changed(feed))
        self._feeds[key] = feed

        async def closed_by_room() -> None:
            await self._end(feed, push=True)

        room.viewer_sessions[f"relay-{edge}"] = closed_by_room
        self._sync(feed)
        secured = "SRTP" if nonce is not None else "RTP"
        logger.info("room %s: relaying %s to %s at %s:%d", room_id, secured, edge, host, port)
        return RelayReply(
            relay=self.endpoint.address, stage=self.describe(room.stage), nonce=home_nonce
        )

    async def remove(self, room_id: str, worker: int, node: str | None = None) -> None:
        """The edge has no viewers of the room left."""
        feed = self._feeds.get((room_id, edge_name(node, worker)))
        if feed is not None:
            await self._end(feed, push=False)

    def set_viewers(
        self,
        room_id: str,
        worker: int,
        count: int,
        watchers: dict[str, str] | None = None,
        node: str | None = None,
    ) -> None:
        """An edge's count of WHEP viewers of a room, and their names by watcher id."""
        room = self._source(room_id)
        if room is not None:
            room.audience.set_remote_watchers(edge_name(node, worker), count, watchers or {})

    async def _end(self, feed: _Feed, *, push: bool) -> None:
        edge = edge_name(feed.node, feed.worker)
        if self._feeds.get((feed.room.id, edge)) is feed:
            del self._feeds[(feed.room.id, edge)]
        self._stop(feed)
        feed.room.viewer_sessions.pop(f"relay-{edge}", None)
        feed.room.audience.forget_worker(edge)
        if push:
            with contextlib.suppress(RelayError):
                await _call(
                    self._edge(feed),
                    feed.worker,
                    "POST",
                    stage_path(feed.room.id),
                    StageDescription(video=(), audio=()),
                )
        if isinstance(feed.room, Room):
            self.rooms.discard_if_empty(feed.room)
        elif self.edges is not None:  # an edge relaying further: its last feed may have ended
            await self.edges.released(feed.room.id)

    def _source(self, room_id: str) -> RelaySource | None:
        """The live room here, or the stage this worker receives of it as an edge."""
        room = self.rooms.rooms.get(room_id)
        if room is None and self.edges is not None:
            return self.edges.source_of(room_id)
        return room

    def _stop(self, feed: _Feed) -> None:
        feed.unlisten()
        # Rooms relayed to one edge share its link (and its keys): stop only this room's streams.
        for ssrc in feed.forwarded.values():
            feed.link.stop(ssrc)
        feed.forwarded.clear()
        if not any(other.link is feed.link for other in self._feeds.values()):
            edge = edge_name(feed.node, feed.worker)
            self._sent_before[edge] = self._sent_before.get(edge, 0) + feed.link.packets_sent
            feed.link.close()
        if feed.pushing is not None:
            feed.pushing.cancel()

    def _sync(self, feed: _Feed) -> None:
        """Forward exactly the stage's producers on the feed's link."""
        stage = feed.room.stage
        wanted = {id(p): p for p in stage.video + stage.audio}
        for key in list(feed.forwarded):
            if key not in wanted:
                feed.link.stop(feed.forwarded.pop(key))
        for key, producer in wanted.items():
            if key not in feed.forwarded:
                ssrc = self._ssrc(producer)
                feed.link.forward(producer, ssrc)
                feed.forwarded[key] = ssrc
        live = {
            id(p) for f in self._feeds.values() for p in f.room.stage.video + f.room.stage.audio
        }
        for key in [k for k in self._ssrcs if k not in live]:
            del self._ssrcs[key]

    def _stage_changed(self, feed: _Feed) -> None:
        self._sync(feed)
        feed.dirty = True
        if feed.pushing is None or feed.pushing.done():
            feed.pushing = asyncio.create_task(self._push(feed))

    async def _push(self, feed: _Feed) -> None:
        # One push at a time per edge, always the latest stage: pushes never arrive reordered.
        while feed.dirty:
            feed.dirty = False
            try:
                await _call(
                    self._edge(feed),
                    feed.worker,
                    "POST",
                    stage_path(feed.room.id),
                    self.describe(feed.room.stage),
                )
            except RelayError as exc:
                logger.warning("room %s: %s", feed.room.id, exc)

    async def prune_dead_edges(self) -> list[str]:
        """End the feeds to edges on nodes that left the registry (a SIGKILLed machine says no
        goodbye): their viewers leave the room's count and nothing more is sent there. Returns
        the nodes found dead."""
        if self.nodes is None:
            return []
        dead = []
        for node in {f.node for f in self._feeds.values() if f.node is not None}:
            if not await self.nodes.alive(node):
                dead.append(node)
        for feed in [f for f in self._feeds.values() if f.node in dead]:
            logger.info("room %s: node %s is gone; its relay ends", feed.room.id, feed.node)
            await self._end(feed, push=False)
        return dead

    async def watch_edges(self, interval: float) -> None:
        """Prune dead edges every ``interval`` seconds (until cancelled)."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.prune_dead_edges()
            except Exception:  # a registry hiccup must not end the watch
                logger.exception("checking the relays' edge nodes failed")

    async def close(self) -> None:
        """Shutdown: stop every feed."""
        for feed in list(self._feeds.values()):
            self._stop(feed)
        self._feeds.clear()
