"""Rooms of other workers (of this node or another) relayed to this worker, for its viewers.

The edge side of :mod:`mcu.signaling.endpoints.relays`: an edge asks the room's home (or, for a
room homed on another node, the worker that takes the stage from there) for a relay, feeds the
stage's packets into local producers, applies the STAGE pushes, reports its viewers, and has
the home admit each WHEP viewer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from mcu.contracts.cluster import (
    AdmitReply,
    AdmitRequest,
    RelayReply,
    RelayRequest,
    StageDescription,
    ViewersReport,
    Watcher,
    admit_path,
    relay_path,
    relays_path,
    viewers_path,
)
from mcu.sfu.producer import Producer
from mcu.sfu.relay import RelayEndpoint
from mcu.sfu.relaykeying import RelayKeying, relay_address
from mcu.sfu.relaywire import codec_from_description, source_from_description
from mcu.sfu.stage import Stage
from mcu.signaling.endpoints.relaycalls import ROOM_HOME, Nodes, Peers, RelayError, RelayTree
from mcu.signaling.endpoints.relaycalls import OnNode as _OnNode
from mcu.signaling.endpoints.relaycalls import ask as _ask
from mcu.signaling.endpoints.relaycalls import call as _call
from mcu.signaling.endpoints.relaysource import RelayedSource
from mcu.signaling.rooms.admission import Admitted, Entry, Refused, credential_needed
from mcu.signaling.rooms.store import RoomRecord

__all__ = ["EdgeRooms", "admission_of"]

logger = logging.getLogger(__name__)


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
    source: RelayedSource | None = None
    "The stage as a source of further relays, and their viewers."
    via: str | None = None
    "The room's home node, when the stage comes from another node of its relay tree."
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
        tree: RelayTree | None = None,
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
        self.tree = tree
        "Where this node takes a room homed elsewhere from (None: always from its home)."
        self._rooms: dict[str, _EdgeRoom] = {}
        self._joining: dict[str, asyncio.Future[_EdgeRoom]] = {}
        self._ending: set[asyncio.Future[None]] = set()

    async def join(
        self, room_id: str, home: int, node: str | None = None, *, via: str | None = None
    ) -> Stage:
        """The relayed stage of ``room_id`` (asking its home, worker ``home`` of ``node`` when
        that is another node, for a relay on first use; from another node it is SRTP).
        ``via``: the room's home node, when ``home`` is this node's entry for it (``node``
        None) or a node of the room's relay tree (``node`` another than the home's)."""
        room = self._rooms.get(room_id)
        if room is not None and room.home == home and room.home_node == node:
            return room.stage
        pending = self._joining.get(room_id)
        if pending is not None:
            return (await asyncio.shield(pending)).stage
        future: asyncio.Future[_EdgeRoom] = asyncio.get_running_loop().create_future()
        self._joining[room_id] = future
        try:
            peers, reply = await self._connect(room_id, home, node, via)
            room = _EdgeRoom(room_id, home, node, peers, Stage(room_id), reply.relay)
            room.via = via if node is not None else None
            room.source = RelayedSource(room_id, room.stage, lambda: self._report(room))
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

    async def _connect(
        self, room_id: str, home: int, node: str | None, via: str | None
    ) -> tuple[Peers, RelayReply]:
        """Ask worker ``home`` (of ``node``) for a relay of ``room_id``, keyed when between
        nodes; the way to it and its reply."""
        if node is None:
            peers: Peers = self.peers
            host, port = self.endpoint.address
            request = RelayRequest(worker=self.worker, host=host, port=port, home_node=via)
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
                home_node=None if via == node else via,
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
        return peers, reply

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
        if room.viewers > 0 or (room.source is not None and room.source.viewer_sessions):
            self._report(room)
            return
        await self._drop(room)

    def source_of(self, room_id: str) -> RelayedSource | None:
        """The stage of ``room_id`` received here, as a source of further relays."""
        room = self._rooms.get(room_id)
        return None if room is None else room.source

    async def stage_of(self, room_id: str, home: int, home_node: str | None) -> Stage:
        """The stage of ``room_id`` for a viewer here: from worker ``home`` of this node, or,
        for a room homed on ``home_node``, from this node's entry for it (``home``), the entry
        itself taking it from the home node."""
        if home_node is not None and home == self.worker:
            return (await self.entry(room_id, home_node)).stage
        return await self.join(room_id, home, None, via=home_node)

    async def entry(self, room_id: str, home_node: str) -> RelayedSource:
        """As this node's entry for ``room_id``, homed on ``home_node``: the stage from there,
        or from another node of the room's relay tree (joined on first use), to relay to this
        node's other workers and to nodes below it in the tree."""
        room = self._rooms.get(room_id)
        if room is not None and room.home_node is not None and room.home_node != home_node:
            if (room.via or room.home_node) != home_node:  # the room moved to another home
                await self._reattach(room, home_node)
        elif room is None or room.home_node is None:
            node, worker = await self._parent(room_id, home_node)
            try:
                await self.join(
                    room_id, ROOM_HOME if worker is None else worker, node, via=home_node
                )
            except RelayError as exc:
                if node == home_node:
                    raise
                # The parent lost the stage meanwhile: the home always has it.
                logger.warning(
                    "room %s: node %s relays it no more (%s); from the home", room_id, node, exc
                )
                await self.join(room_id, ROOM_HOME, home_node, via=home_node)
        source = self.source_of(room_id)
        if source is None:  # ended while joining
            raise RelayError(f"room {room_id}: the relay from node {home_node} ended")
        return source

    async def released(self, room_id: str) -> None:
        """A relay fed from this worker's stage of ``room_id`` ended: with no viewers and no
        other relay left, stop receiving it."""
        room = self._rooms.get(room_id)
        if room is None or room.viewers > 0:
            return
        if room.source is not None and room.source.viewer_sessions:
            self._report(room)
            return
        await self._drop(room)

    async def _parent(self, room_id: str, home_node: str) -> tuple[str, int | None]:
        """The node (and its entry worker; None: the home's) to take ``room_id`` from."""
        if self.tree is None:
            return home_node, None
        try:
            return await self.tree.attach(room_id, home_node, self.worker)
        except Exception as exc:  # the tree unreadable (Redis): the home always serves
            logger.warning("room %s: relay tree unavailable (%r); from the home", room_id, exc)
            return home_node, None

    async def watch_upstreams(self, interval: float) -> None:
        """Every ``interval`` seconds, take each room whose tree parent left the registry from
        another parent (until cancelled); the stage and its viewers stay."""
        while True:
            await asyncio.sleep(interval)
            for room in list(self._rooms.values()):
                if room.via is None or room.home_node in (None, room.via) or self.nodes is None:
                    continue
                try:
                    if not await self.nodes.alive(room.home_node):
                        await self._reattach(room, room.via)
                except Exception:  # one room's trouble must not end the watch
                    logger.exception("room %s: taking it from another node failed", room.room_id)

    async def _reattach(self, room: _EdgeRoom, home_node: str) -> None:
        logger.warning(
            "room %s: node %s is gone; relayed from another", room.room_id, room.home_node
        )
        for ssrc, producer in room.producers.items():
            self.endpoint.stop_receiving(room.relay, ssrc)
            producer.close()
        room.producers.clear()
        node, worker = await self._parent(room.room_id, home_node)
        index = ROOM_HOME if worker is None else worker
        room.peers, reply = await self._connect(room.room_id, index, node, home_node)
        room.home, room.home_node, room.relay = index, node, reply.relay
        room.via = None if node == home_node else home_node
        self.apply(room.room_id, reply.stage, node)
        self._report(room)

    async def _drop(self, room: _EdgeRoom) -> None:
        if self._rooms.get(room.room_id) is room:
            del self._rooms[room.room_id]
        if room.home_node is not None and self.tree is not None:
            with contextlib.suppress(Exception):  # the tree forgets dead places by itself
                await self.tree.detach(room.room_id)
        self._close(room)
        with contextlib.suppress(RelayError):
            await _call(room.peers, room.home, "DELETE", relay_path(room.room_id, self.worker))

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
            home if peers is self.peers else ROOM_HOME,  # another node finds its home worker
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
                    self._viewers_report(room),
                )
            except RelayError as exc:
                logger.warning("room %s: %s", room.room_id, exc)

    def _viewers_report(self, room: _EdgeRoom) -> ViewersReport:
        """This worker's viewers of the room, with those of the edges it relays it to."""
        count, watchers = len(room.watchers), dict(room.watchers)
        if room.source is not None:
            more, names = room.source.totals()
            count += more
            watchers.update(names)
        return ViewersReport(
            node=None if room.home_node is None else self.node,
            worker=self.worker,
            count=count,
            watchers=tuple(Watcher(id=i, name=n) for i, n in watchers.items()),
        )

    def _close(self, room: _EdgeRoom) -> None:
        if room.reporting is not None:
            room.reporting.cancel()
        if room.source is not None:  # the relays fed from this stage end with it
            for close in list(room.source.viewer_sessions.values()):
                task = asyncio.ensure_future(close())
                self._ending.add(task)
                task.add_done_callback(self._ending.discard)
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
