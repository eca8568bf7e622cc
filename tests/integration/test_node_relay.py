"""A relay between nodes: SRTP over real UDP on 127.0.0.1, keyed over signed internal calls.

First the media plane alone (a home's RelayLink and an edge's RelayEndpoint, keyed as the two
nodes would key them): the edge's producer gets the home producer's packets intact, and packets
injected onto the edge's socket are dropped, counted, and do not stop the stream. Then two nodes
in one process, each a worker application on its Unix socket behind a front on its own TCP port
(the front verifies other nodes' calls and passes them on): an edge asks the home for a relay
with a signed call, both derive the keys from the nonces they exchanged, and the lecture's
packets cross as SRTP.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import REGISTRY
from pydantic import BaseModel

from mcu.app.cluster.internalcalls import pass_internal_call
from mcu.app.cluster.nodecalls import node_call_middleware
from mcu.app.cluster.nodepeers import NodePeers
from mcu.app.cluster.peers import WorkerPeers
from mcu.app.cluster.worker import prepare_socket
from mcu.contracts.cluster import (
    CALLER_NODE_HEADER,
    NODE_CREDENTIAL_HEADER,
    ROOM_EXISTS_PATH,
    ROOM_HOME_WORKER,
    WORKER_HEADER,
    RelayRequest,
    StageDescription,
    relays_path,
    room_exists_path,
    stage_path,
)
from mcu.crypto.clustercalls import NodeCredentials
from mcu.crypto.relaykeys import relay_keys
from mcu.crypto.relaysrtp import REPLAYED, UNAUTHENTICATED, RelayCipher
from mcu.crypto.tokens import InviteSigner
from mcu.media import CodecInfo, IncomingPacket, TrackSource
from mcu.sfu.producer import Producer
from mcu.sfu.relay import RelayEndpoint, assign_ssrc
from mcu.sfu.relaykeying import RelayKeying, relay_address
from mcu.sfu.rtp import build_header
from mcu.signaling.endpoints.internalroutes import setup_internal_routes
from mcu.signaling.endpoints.nodecalls import node_calls_middleware
from mcu.signaling.endpoints.relays import ROOM_HOME, EdgeRooms, HomeRelays
from mcu.signaling.rooms.entrance import Entrance
from mcu.signaling.rooms.session import Rooms
from mcu.signaling.rooms.store import RoomRecord, RoomStore
from mcu.signaling.rooms.throttle import LoginThrottle

SECRET = os.urandom(32)
VP8 = CodecInfo("video/VP8", 90000)
KEYFRAME = bytes([0x10, 0x00, 0x00, 0x00]) + b"key"
DELTA = bytes([0x10, 0x01, 0x00, 0x00])


@dataclass
class Sink:
    packets: list[IncomingPacket] = field(default_factory=list)
    reports: list[tuple[int, int]] = field(default_factory=list)

    def on_packet(self, packet: IncomingPacket) -> None:
        self.packets.append(packet)

    def on_sender_report(self, ntp_time: int, rtp_time: int) -> None:
        self.reports.append((ntp_time, rtp_time))

    def resync(self) -> None:
        pass

    def close(self) -> None:
        pass


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait (bounded) for datagrams on loopback to be delivered and handled."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.002)


def rejected(reason: str) -> float:
    value = REGISTRY.get_sample_value("mcu_relay_packets_rejected_total", {"reason": reason})
    return value or 0.0


def producer(requests: list[int] | None = None) -> Producer:
    asked = requests if requests is not None else []
    return Producer("cam", "lecturer", TrackSource.CAMERA, VP8, lambda: asked.append(1))


# -- the media plane --------------------------------------------------------------------------


@pytest.fixture
async def endpoints() -> AsyncIterator[tuple[RelayEndpoint, RelayEndpoint]]:
    home, edge = await RelayEndpoint.open(), await RelayEndpoint.open()
    yield home, edge
    home.close()
    edge.close()


async def test_srtp_relay_carries_packets_intact_and_drops_injected_ones(
    endpoints: tuple[RelayEndpoint, RelayEndpoint],
) -> None:
    home, edge = endpoints
    home_keys, edge_keys = RelayKeying(SECRET), RelayKeying(SECRET)
    home_name, edge_name = relay_address(home.address), relay_address(edge.address)
    # What RelayRequest and RelayReply carry: the edge's nonce, then the home's.
    link = home.link(edge.address)
    home_nonce = home_keys.secure_link(link, home_name, edge_name, edge_keys.nonce)
    edge_keys.secure_source(edge, home.address, home_name, edge_name, home_nonce)
    assert link.cipher is not None and edge.sources[home.address].nonce == link.cipher.nonce

    requests: list[int] = []
    source = producer(requests)
    ssrc = assign_ssrc()
    relayed = Producer(
        "cam", "lecturer", TrackSource.CAMERA, VP8, lambda: None, keyframe_interval=0
    )
    sink = Sink()
    relayed.add_sink(sink)
    edge.receive(home.address, ssrc, relayed)
    link.forward(source, ssrc)

    # What crosses the wire is SRTP: a listener in the edge's place sees no payload.
    sent = [
        (100, 9000, False, KEYFRAME + b"\x5a" * 1100),
        (101, 9000, True, DELTA + b"\x5a" * 1100),
    ]
    for sequence, timestamp, marker, payload in sent:
        source.on_rtp(sequence, timestamp, marker, payload, None, 1.0)
    source.on_sender_report(0x0102_0304_0506_0708, 9000)
    await until(lambda: len(sink.packets) == 2 and len(sink.reports) == 1)
    assert [(p.ext_sequence, p.timestamp, p.marker, p.payload) for p in sink.packets] == sent
    assert sink.reports == [(0x0102_0304_0506_0708, 9000)]
    # The edge's keyframe request reaches the home as SRTCP.
    relayed.request_keyframe(2.0)
    await until(lambda: link.keyframe_requests_received == 1)
    assert requests == [1]

    # Injected: from a stranger's socket, and from the home's own address (a spoofed source,
    # here a second handle on the home's socket): plain RTP, SRTP under another key, and a
    # genuine packet captured on the path and sent again. AES-GCM is deterministic, so a cipher
    # with the link's keys makes exactly the bytes the home sent for packet 102.
    source.on_rtp(102, 12000, True, DELTA + b"tapped", None, 3.0)
    await until(lambda: len(sink.packets) == 3)
    keys = relay_keys(SECRET, home_name, edge_name, *link.cipher.nonce.split(":"))
    wire = build_header(96, True, 102, 12000, ssrc, b"") + DELTA + b"tapped"
    captured = RelayCipher(keys.home_to_edge, keys.edge_to_home).protect(wire)
    assert captured is not None and b"tapped" not in captured
    spoof = socket.socket(fileno=os.dup(home._sock.fileno()))
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        before = (rejected(UNAUTHENTICATED), rejected(REPLAYED))
        plain = build_header(96, True, 103, 15000, ssrc, b"") + DELTA + b"forged"
        foreign = RelayCipher(os.urandom(44), os.urandom(44)).protect(plain)
        assert foreign is not None
        for data in (plain, foreign, captured):
            spoof.sendto(data, edge.address)
            stranger.sendto(data, edge.address)
        cipher = edge.sources[home.address]
        await until(lambda: sum(cipher.rejected.values()) == 3)
        assert cipher.rejected == {UNAUTHENTICATED: 2, REPLAYED: 1}
        assert (rejected(UNAUTHENTICATED), rejected(REPLAYED)) == (before[0] + 2, before[1] + 1)
        await until(lambda: edge.datagrams_unknown == 3)  # the stranger's: nobody expects it
    finally:
        for sock in (spoof, stranger):
            sock.close()

    # Nothing injected reached the producer, and the stream goes on.
    source.on_rtp(103, 15000, True, DELTA + b"genuine", None, 4.0)
    await until(lambda: len(sink.packets) == 4)
    assert [p.payload for p in sink.packets[2:]] == [DELTA + b"tapped", DELTA + b"genuine"]
    assert [p.ext_sequence for p in sink.packets] == [100, 101, 102, 103]
    assert relayed.packets_received == 4


async def test_a_packet_lost_between_nodes_is_nacked_and_resent_as_rtx(
    endpoints: tuple[RelayEndpoint, RelayEndpoint],
) -> None:
    home, edge = endpoints
    home_keys, edge_keys = RelayKeying(SECRET), RelayKeying(SECRET)
    home_name, edge_name = relay_address(home.address), relay_address(edge.address)
    link = home.link(edge.address)
    home_nonce = home_keys.secure_link(link, home_name, edge_name, edge_keys.nonce)
    edge_keys.secure_source(edge, home.address, home_name, edge_name, home_nonce)
    source, ssrc = producer(), assign_ssrc()
    relayed = Producer(
        "cam", "lecturer", TrackSource.CAMERA, VP8, lambda: None, keyframe_interval=0
    )
    sink = Sink()
    relayed.add_sink(sink)
    edge.receive(home.address, ssrc, relayed)
    relay = link.forward(source, ssrc)

    source.on_rtp(200, 9000, True, KEYFRAME, None, time.monotonic())
    await until(lambda: len(sink.packets) == 1)
    # Packet 201 is lost on the way (the wire drops it); 202 arrives and shows the gap.
    send = relay._sendto
    relay._sendto = lambda data, address: None  # type: ignore[method-assign]
    source.on_rtp(201, 12000, True, DELTA + b"lost on the WAN", None, time.monotonic())
    relay._sendto = send  # type: ignore[method-assign]
    source.on_rtp(202, 15000, True, DELTA + b"after", None, time.monotonic())
    # The edge NACKs 201 (SRTCP), the home resends it from its history as RTX (SRTP).
    await until(lambda: len(sink.packets) == 3)
    assert [p.ext_sequence for p in sink.packets] == [200, 202, 201]
    assert sink.packets[2].payload == DELTA + b"lost on the WAN"
    assert link.resender.resent == 1
    assert sum(edge.sources[home.address].rejected.values()) == 0


async def test_a_stream_forwarded_again_continues_its_numbers(
    endpoints: tuple[RelayEndpoint, RelayEndpoint],
) -> None:
    home, edge = endpoints
    home_keys, edge_keys = RelayKeying(SECRET), RelayKeying(SECRET)
    names = relay_address(home.address), relay_address(edge.address)
    link = home.link(edge.address)
    nonce = home_keys.secure_link(link, *names, edge_keys.nonce)
    edge_keys.secure_source(edge, home.address, *names, nonce)
    # Asked again by the same edge, the home keeps its keys (other rooms share the link).
    assert home_keys.secure_link(link, *names, edge_keys.nonce) == nonce
    source, ssrc, sink = producer(), assign_ssrc(), Sink()
    relayed = producer()
    relayed.add_sink(sink)
    edge.receive(home.address, ssrc, relayed)
    link.forward(source, ssrc)
    source.on_rtp(500, 0, True, KEYFRAME, None, 1.0)
    source.paused = True  # a pause: the relay's numbering departs from the publisher's
    source.on_rtp(501, 3000, True, DELTA, None, 1.0)
    source.paused = False
    source.on_rtp(30000, 90000, True, KEYFRAME, None, 2.0)
    await until(lambda: len(sink.packets) == 2)
    # Off the stage and on again: SRTP refuses to go back, so the numbers continue.
    link.stop(ssrc)
    link.forward(source, ssrc)
    source.on_rtp(30001, 93000, True, KEYFRAME, None, 3.0)
    await until(lambda: len(sink.packets) == 3)
    assert [p.ext_sequence for p in sink.packets] == [500, 501, 502]
    assert sum(edge.sources[home.address].rejected.values()) == 0
    assert link.packets_dropped == 0


# -- two nodes --------------------------------------------------------------------------------


class SignedNodes:
    """This test's cluster: node ids and the URLs their fronts listen on (the registry's part)."""

    def __init__(self, peers: NodePeers, urls: dict[str, str]) -> None:
        self.peers = peers
        self.urls = urls

    async def request(
        self, node: str, worker: int | None, method: str, path: str, body: BaseModel | None = None
    ) -> tuple[int, Any]:
        headers = {WORKER_HEADER: ROOM_HOME_WORKER if worker is None else str(worker)}
        return await self.peers.request(self.urls[node], method, path, body, headers)

    async def alive(self, node: str) -> bool:
        return node in self.urls


class NoWorkers:
    """Each test node is one worker: nothing goes to other workers of the same node."""

    async def request(
        self,
        worker: int,
        method: str,
        path: str,
        body: BaseModel | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        raise AssertionError(f"no other worker here: {method} {path}")


@dataclass
class Node:
    """One node of one worker: the worker's application on its Unix socket, and a front on
    TCP that verifies other nodes' calls and passes them to the worker, as a real front does."""

    id: str
    url: str
    runners: list[web.AppRunner]
    rooms: Rooms
    store: RoomStore
    endpoint: RelayEndpoint
    home: HomeRelays
    edges: EdgeRooms
    peers: NodePeers
    workers: WorkerPeers


async def start_node(directory: Path, node_id: str, port: int, urls: dict[str, str]) -> Node:
    url = urls[node_id] = f"http://127.0.0.1:{port}"
    data_dir = directory / node_id
    store = await RoomStore.open(directory / f"rooms-{node_id}.db")
    rooms = Rooms([])
    entrance = Entrance(store, InviteSigner(os.urandom(32)), LoginThrottle(), rooms, 10)
    peers = NodePeers(NodeCredentials(SECRET, node_id))
    nodes = SignedNodes(peers, urls)
    endpoint = await RelayEndpoint.open()
    keying = RelayKeying(SECRET)
    home = HomeRelays(0, NoWorkers(), endpoint, rooms, store, keying=keying, nodes=nodes)
    edges = EdgeRooms(0, NoWorkers(), endpoint, node=node_id, keying=keying, nodes=nodes)
    worker = web.Application(middlewares=[node_calls_middleware()])
    setup_internal_routes(worker, lambda: (home, edges), store, entrance)
    worker_runner = web.AppRunner(worker)
    await worker_runner.setup()
    await web.UnixSite(worker_runner, str(prepare_socket(data_dir, 0))).start()
    workers = WorkerPeers(data_dir, 1)

    async def home_of(room: str) -> int:
        return 0

    async def internal(request: web.Request) -> web.StreamResponse:
        return await pass_internal_call(request, workers, home_of)

    front = web.Application(middlewares=[node_call_middleware(NodeCredentials(SECRET, node_id))])
    front.router.add_route("*", "/{tail:.*}", internal)
    front_runner = web.AppRunner(front)
    await front_runner.setup()
    await web.TCPSite(front_runner, "127.0.0.1", port).start()
    runners = [front_runner, worker_runner]
    return Node(node_id, url, runners, rooms, store, endpoint, home, edges, peers, workers)


async def stop_node(node: Node) -> None:
    await node.edges.close()
    await node.home.close()
    await node.peers.close()
    await node.workers.close()
    for runner in node.runners:
        await runner.cleanup()
    node.endpoint.close()
    await node.store.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def two_nodes(tmp_path: Path) -> AsyncIterator[tuple[Node, Node]]:
    urls: dict[str, str] = {}
    a = await start_node(tmp_path, "node-a", free_port(), urls)
    b = await start_node(tmp_path, "node-b", free_port(), urls)
    try:
        yield a, b
    finally:
        await stop_node(b)
        await stop_node(a)


async def test_an_edge_on_another_node_gets_the_lecture_as_srtp(
    two_nodes: tuple[Node, Node],
) -> None:
    a, b = two_nodes
    record = RoomRecord("lesson", "Lesson", "x", time.time(), None, None, None, kind="lecture")
    await a.store.create(record)
    room = a.rooms.get_or_create(record.id, record.title, record.kind)
    camera = producer()
    room.stage.set([camera], [])

    stage = await b.edges.join("lesson", ROOM_HOME, node=a.id)
    assert [p.track_id for p in stage.video] == ["cam"]
    # Both ends keyed the relay from the nonces they exchanged: the same nonce pair.
    link = a.endpoint.link(b.endpoint.address)
    source = b.endpoint.sources[a.endpoint.address]
    assert link.cipher is not None and link.cipher.nonce == source.nonce
    sink = Sink()
    stage.video[0].add_sink(sink)
    camera.on_rtp(7, 700, True, KEYFRAME, None, 1.0)
    camera.on_rtp(8, 700, True, DELTA + b"\x01" * 1180, None, 1.0)
    await until(lambda: len(sink.packets) == 2)
    assert [(p.ext_sequence, p.payload) for p in sink.packets] == [
        (7, KEYFRAME),
        (8, DELTA + b"\x01" * 1180),
    ]
    assert a.home.packets_sent() == {"node-b/0": 2}

    # A stage change is pushed to the other node with a signed call, through its front.
    screen = Producer("screen", "lecturer", TrackSource.CONTENT, VP8, lambda: None)
    room.stage.set([screen, camera], [])
    await until(lambda: [p.track_id for p in stage.video] == ["screen", "cam"])

    # The edge's viewers are counted at the home under the edge's node id.
    b.edges.viewer_added("lesson", ("w1", "Dr Li"))
    await until(lambda: room.audience.remote_viewers.get("node-b/0") == 1)
    await b.edges.leave("lesson", "w1")
    await until(lambda: "node-b/0" not in room.audience.remote_viewers)
    assert [p.track_id for p in stage.video] == []
    assert a.home.packets_sent() == {"node-b/0": 2}  # kept after the link closed

    # An edge node that dies says no goodbye: once the registry drops it, its relay ends.
    await until(lambda: ("lesson", "node-b/0") not in a.home._feeds)  # the goodbye above
    await b.edges.join("lesson", ROOM_HOME, node=a.id)
    b.edges.viewer_added("lesson", ("w2", "Dr Xu"))
    room = a.rooms.rooms["lesson"]  # made again for the new relay (the last one emptied it)
    await until(lambda: room.audience.remote_viewers.get("node-b/0") == 1)
    assert await a.home.prune_dead_edges() == []
    del a.home.nodes.urls["node-b"]  # type: ignore[union-attr]
    assert await a.home.prune_dead_edges() == ["node-b"]
    assert "node-b/0" not in room.audience.remote_viewers
    assert ("lesson", "node-b/0") not in a.home._feeds


async def test_rooms_sharing_a_link_end_independently(two_nodes: tuple[Node, Node]) -> None:
    a, b = two_nodes
    cameras: dict[str, Producer] = {}
    for name in ("one", "two"):
        record = RoomRecord(name, name, "x", time.time(), None, None, None, kind="lecture")
        await a.store.create(record)
        cameras[name] = producer()
        a.rooms.get_or_create(name, name, "lecture").stage.set([cameras[name]], [])
    stages = {name: await b.edges.join(name, ROOM_HOME, node=a.id) for name in cameras}
    sink = Sink()
    stages["two"].video[0].add_sink(sink)
    for name in cameras:
        b.edges.viewer_added(name, None)
    # One key pair for the link both rooms share.
    assert len(b.endpoint.sources) == 1
    await b.edges.leave("one", None)
    await until(lambda: ("one", "node-b/0") not in a.home._feeds)
    cameras["two"].on_rtp(1, 1, True, KEYFRAME, None, 1.0)
    await until(lambda: len(sink.packets) == 1)


# -- who may call the internal routes ---------------------------------------------------------


async def test_internal_calls_pass_the_front_only_signed(two_nodes: tuple[Node, Node]) -> None:
    a, _ = two_nodes
    other = NodeCredentials(SECRET, "node-c")
    stranger = NodeCredentials(os.urandom(32), "node-c")  # no cluster secret
    stage = StageDescription(video=(), audio=()).model_dump_json().encode()
    path = stage_path("lesson")
    async with aiohttp.ClientSession() as http:

        async def post(
            credential: str | None, body: bytes = stage, target: str = path, worker: str = "0"
        ) -> int:
            headers = {"Content-Type": "application/json", WORKER_HEADER: worker}
            if credential is not None:
                headers[NODE_CREDENTIAL_HEADER] = credential
            async with http.post(a.url + target, data=body, headers=headers) as r:
                return r.status

        assert await post(None) == 404  # a client: no such route
        assert await post("not-a-credential") == 403
        assert await post(stranger.sign("POST", path, stage)) == 403  # forged
        assert await post(other.sign("POST", path, b"{}")) == 403  # for another body
        assert await post(other.sign("POST", stage_path("x"), stage)) == 403  # another path
        assert await post(other.sign("GET", path, stage)) == 403  # another method
        assert await post(other.sign("POST", path, stage), worker="7") == 404  # no such worker
        signed = other.sign("POST", path, stage)
        assert await post(signed) == 200
        assert await post(signed) == 403  # replayed
        # A client cannot name a caller: the worker sees the front's verified one only.
        headers = {CALLER_NODE_HEADER: "node-a", WORKER_HEADER: "0"}
        async with http.post(a.url + path, data=stage, headers=headers) as r:
            assert r.status == 404

    # The node client signs what it sends, query and percent-encoding included.
    peers = NodePeers(other)
    try:
        headers = {WORKER_HEADER: "0"}
        status, reply = await peers.request(
            a.url, "POST", path, StageDescription(video=(), audio=()), headers
        )
        assert (status, reply) == (200, {})
        status, reply = await peers.request(a.url, "GET", room_exists_path("no such/room"))
        assert (status, reply) == (200, {"exists": False})
        # Another node speaks only for itself, and a relay to it must be SRTP.
        request = RelayRequest(worker=0, host="127.0.0.1", port=9, node="node-b")
        status, _ = await peers.request(a.url, "POST", relays_path("lesson"), request)
        assert status == 403
        request = RelayRequest(worker=0, host="127.0.0.1", port=9, node=other.node_id)
        status, reply = await peers.request(a.url, "POST", relays_path("lesson"), request)
        assert status == 400
    finally:
        await peers.close()

    # Over the node's own Unix socket the routes stay as they were: no credential.
    connector = aiohttp.UnixConnector(path=str(a.workers.socket_path(0)))
    async with aiohttp.ClientSession(connector=connector) as local:
        async with local.post("http://localhost" + path, data=stage) as r:
            assert r.status == 200


async def test_a_worker_serves_internal_routes_over_its_unix_socket_only(
    tmp_path: Path,
) -> None:
    app = web.Application(middlewares=[node_calls_middleware()])

    async def exists(request: web.Request) -> web.Response:
        return web.json_response({"exists": True})

    app.router.add_get(ROOM_EXISTS_PATH, exists)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    credentials = NodeCredentials(SECRET, "node-c")
    try:
        async with aiohttp.ClientSession() as http:
            path = room_exists_path("lesson")
            headers = {NODE_CREDENTIAL_HEADER: credentials.sign("GET", path)}
            async with http.get(f"http://127.0.0.1:{port}{path}", headers=headers) as r:
                assert r.status == 404
    finally:
        await runner.cleanup()
