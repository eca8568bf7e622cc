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
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from mcu.contracts.cluster import (
    AdmitReply,
    AdmitRequest,
    Refusal,
    RelayReply,
    RelayRequest,
    StageDescription,
    ViewersReport,
    Watcher,
    admit_path,
    relay_path,
    relays_path,
    stage_path,
    viewers_path,
)
from mcu.sfu.producer import Producer
from mcu.sfu.relay import RelayEndpoint, RelayLink, assign_ssrc
from mcu.sfu.relaykeying import RelayKeying, relay_address
from mcu.sfu.relaywire import codec_from_description, source_from_description, stream_description
from mcu.sfu.stage import Stage
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
from mcu.signaling.endpoints.relaycalls import ask as _ask
from mcu.signaling.endpoints.relaycalls import call as _call
from mcu.signaling.rooms.admission import Admitted, Entry, Refused, credential_needed
from mcu.signaling.rooms.errors import UnknownRoom
from mcu.signaling.rooms.records import RoomRecords
from mcu.signaling.rooms.session import Room, Rooms
from mcu.signaling.rooms.store import RoomRecord

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


def admission_of(reply: Any, record: RoomRecord) -> Admitted:
    """An edge reading the home's decision on a viewer of ``record``'s room: admitted, else
    :class:`Refused` (anything malformed admits nobody)."""
    try:
        answer = AdmitReply.model_validate(reply)
    except ValidationError:
        answer = AdmitReply()
    if answer.refused is not None:
        refused = answer.refused
        raise Refused(refused.code, refused.message, refused.retry_after)
    if answer.role is None:
        raise Refused("bad_invite", credential_needed(Entry.WATCH, record.kind))
    return Admitted(record, answer.role, own_session=answer.own, name=answer.name)


EDGE_CHECK_S = 2.0
"""How often a home checks that the other nodes it relays to are alive: with the registry's 5 s
TTL, a dead node's relays end (and its viewers leave the counts) within about 7 s."""


# -- the home side ---------------------------------------------------------------------------


@dataclass
class _Feed:
    """One edge worker receiving one room."""

    room: Room
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
    ) -> RelayReply:
        """An edge asks for a room: start relaying its stage; returns the current STAGE.

        ``node``: the edge's node when it is another one; ``nonce``: the edge's relay nonce, to
        relay SRTP (required from another node). Raises :class:`UnknownRoom` when the store has
        no such room, :class:`RelayRefused` when this worker cannot serve the request.
        """
        if node is not None and nonce is None:
            raise RelayRefused("a relay to another node is SRTP: the request needs a nonce")
        if (node is not None or nonce is not None) and (self.keying is None or self.nodes is None):
            raise RelayRefused("this worker relays to no other node")
        room = self.rooms.rooms.get(room_id)
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
        room = self.rooms.rooms.get(room_id)
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
        self.rooms.discard_if_empty(feed.room)

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


# -- the edge side ---------------------------------------------------------------------------


@dataclass
class _EdgeRoom:
    room_id: str
    home: int
    home_node: str | None
    "The home's node when it is another one."
    peers: Peers
    "Where the home is reached."
    stage: Stage
    relay: tuple[str, int] = ("127.0.0.1", 0)
    producers: dict[int, Producer] = field(default_factory=dict)
    "Edge producers by relay SSRC."
    viewers: int = 0
    watchers: dict[str, str] = field(default_factory=dict)
    "The counted WHEP sessions (not a participant's own page): names by watcher id."
    reporting: asyncio.Task[None] | None = None
    report_dirty: bool = False


class EdgeRooms:
    """Rooms of other workers, relayed here for this worker's WHEP viewers."""

    def __init__(
        self,
        worker: int,
        peers: Peers,
        endpoint: RelayEndpoint,
        *,
        node: str | None = None,
        keying: RelayKeying | None = None,
        nodes: Nodes | None = None,
        relay: tuple[str, int] | None = None,
    ) -> None:
        self.worker = worker
        self.peers = peers
        self.endpoint = endpoint
        self.node = node
        "This worker's node, named to homes on other nodes."
        self.keying = keying
        self.nodes = nodes
        self.relay = endpoint.address if relay is None else relay
        "The relay socket as other nodes reach it (host, port)."
        self._rooms: dict[str, _EdgeRoom] = {}
        self._joining: dict[str, asyncio.Future[_EdgeRoom]] = {}

    async def join(self, room_id: str, home: int, node: str | None = None) -> Stage:
        """The relayed stage of ``room_id`` (asking its home, worker ``home`` of ``node`` when
        that is another node, for a relay on first use; from another node it is SRTP)."""
        room = self._rooms.get(room_id)
        if room is not None and room.home == home and room.home_node == node:
            return room.stage
        pending = self._joining.get(room_id)
        if pending is not None:
            return (await asyncio.shield(pending)).stage
        future: asyncio.Future[_EdgeRoom] = asyncio.get_running_loop().create_future()
        self._joining[room_id] = future
        try:
            if node is None:
                peers: Peers = self.peers
                host, port = self.endpoint.address
                request = RelayRequest(worker=self.worker, host=host, port=port)
            else:
                if self.keying is None or self.nodes is None or self.node is None:
                    raise RelayError(f"room {room_id}: this worker reaches no other node")
                peers = _OnNode(self.nodes, node)
                host, port = self.relay
                request = RelayRequest(
                    worker=self.worker,
                    host=host,
                    port=port,
                    node=self.node,
                    nonce=self.keying.nonce,
                )
            reply = await _ask(peers, home, "POST", relays_path(room_id), request, RelayReply)
            if node is not None:
                if reply.nonce is None:  # never take plain RTP from another node
                    raise RelayError(f"room {room_id}: node {node} offered no SRTP relay")
                assert self.keying is not None
                self.keying.secure_source(
                    self.endpoint,
                    reply.relay,
                    relay_address(reply.relay),
                    f"{host}:{port}",
                    reply.nonce,
                )
            room = _EdgeRoom(room_id, home, node, peers, Stage(room_id), reply.relay)
            self._rooms[room_id] = room
            self.apply(room_id, reply.stage, node)
            future.set_result(room)
            return room.stage
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here; other waiters get it too
            raise
        finally:
            del self._joining[room_id]

    def viewer_added(self, room_id: str, watcher: tuple[str, str] | None) -> None:
        """A WHEP session of the room started here; ``watcher`` (id, name) when it is counted."""
        room = self._rooms.get(room_id)
        if room is not None:
            room.viewers += 1
            if watcher is not None:
                room.watchers[watcher[0]] = watcher[1]
            self._report(room)

    async def leave(self, room_id: str, watcher_id: str | None) -> None:
        """A WHEP session of the room ended here; the last one ends the relay."""
        room = self._rooms.get(room_id)
        if room is None:
            return
        room.viewers -= 1
        if watcher_id is not None:
            room.watchers.pop(watcher_id, None)
        if room.viewers > 0:
            self._report(room)
            return
        del self._rooms[room_id]
        self._close(room)
        with contextlib.suppress(RelayError):
            await _call(room.peers, room.home, "DELETE", relay_path(room_id, self.worker))

    def apply(self, room_id: str, description: StageDescription, node: str | None = None) -> None:
        """A STAGE from the home (on ``node``, when another): open new streams, close gone
        ones, reorder the stage. Another node than the room's home is not listened to."""
        room = self._rooms.get(room_id)
        if room is None or room.home_node != node:
            return
        streams = {s.ssrc: s for s in description.video + description.audio}
        for ssrc in [s for s in room.producers if s not in streams]:
            self.endpoint.stop_receiving(room.relay, ssrc)
            room.producers.pop(ssrc).close()
        for ssrc, stream in streams.items():
            if ssrc not in room.producers:
                producer = Producer(
                    track_id=stream.track_id,
                    participant_id=stream.participant_id,
                    source=source_from_description(stream),
                    codec=codec_from_description(stream.codec),
                    send_keyframe_request=lambda: None,
                )
                self.endpoint.receive(room.relay, ssrc, producer)
                room.producers[ssrc] = producer
        room.stage.set(
            [room.producers[s.ssrc] for s in description.video],
            [room.producers[s.ssrc] for s in description.audio],
        )

    async def admit(
        self, home: int, record: RoomRecord, token: str, address: str, node: str | None = None
    ) -> Admitted:
        """The home's admission of a WHEP viewer with a bearer credential to ``record``'s room,
        or :class:`Refused` (the home keeps the room's wrong-password counts, so guesses spread
        over workers count once). ``node``: the home's node when it is another one."""
        peers = self.peers if node is None or self.nodes is None else _OnNode(self.nodes, node)
        reply = await _call(
            peers,
            home,
            "POST",
            admit_path(record.id),
            AdmitRequest(token=token, address=address),
        )
        return admission_of(reply, record)

    def _report(self, room: _EdgeRoom) -> None:
        room.report_dirty = True
        if room.reporting is None or room.reporting.done():
            room.reporting = asyncio.create_task(self._send_count(room))

    async def _send_count(self, room: _EdgeRoom) -> None:
        while room.report_dirty:
            room.report_dirty = False
            try:
                await _call(
                    room.peers,
                    room.home,
                    "POST",
                    viewers_path(room.room_id),
                    ViewersReport(
                        node=None if room.home_node is None else self.node,
                        worker=self.worker,
                        count=len(room.watchers),
                        watchers=tuple(Watcher(id=i, name=n) for i, n in room.watchers.items()),
                    ),
                )
            except RelayError as exc:
                logger.warning("room %s: %s", room.room_id, exc)

    def _close(self, room: _EdgeRoom) -> None:
        if room.reporting is not None:
            room.reporting.cancel()
        room.stage.set([], [])
        for ssrc, producer in room.producers.items():
            self.endpoint.stop_receiving(room.relay, ssrc)
            producer.close()
        room.producers.clear()

    async def close(self) -> None:
        """Shutdown: stop receiving every room."""
        for room in list(self._rooms.values()):
            self._close(room)
        self._rooms.clear()
