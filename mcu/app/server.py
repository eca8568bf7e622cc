"""The aiohttp application: signalling, admin API, web client, metrics and health."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from mcu import __version__
from mcu.app.apikeys import api_keys
from mcu.app.cluster.nodepeers import ClusterNodes, NodePeers, cluster_secret, node_credentials
from mcu.app.cluster.registry import NodeRegistry
from mcu.app.cluster.relaytree import RedisRelayTree
from mcu.app.cluster.worker import WORKER_CONTEXT
from mcu.app.config import Config
from mcu.app.sharedstate import SharedState, invite_key, share_key
from mcu.crypto.accesstokens import AccessTokens
from mcu.crypto.secrets import load_or_create_admin_token, load_or_create_secret
from mcu.crypto.tokens import InviteSigner, ShareSigner
from mcu.infra import metrics
from mcu.infra.auditfiles import AUDIT_DIRNAME
from mcu.infra.auditlog import AuditLog
from mcu.infra.heaptrim import HeapTrimmer
from mcu.infra.httpapi import MetricsAccess
from mcu.infra.looplag import LoopLagMonitor
from mcu.infra.redisconn import connect_redis, parse_redis_url
from mcu.infra.runtimegauges import RuntimeCollector
from mcu.infra.socketlimits import SocketLimits, SocketLimitsCollector
from mcu.library.api import MASTER_KEY_NAME, setup_library
from mcu.mixer.session import MixedVideo
from mcu.recorder.catalogue import Catalogue
from mcu.recorder.writer import TrackWriter
from mcu.sfu import aiortc_adapter, aiortc_joins, ice
from mcu.sfu.consumer import Consumer
from mcu.sfu.lateness import INGRESS
from mcu.sfu.peer import IceServerConfig
from mcu.sfu.producer import Producer
from mcu.sfu.relaykeying import RelayKeying
from mcu.sfu.turn import ClientIceServers, TurnRelay
from mcu.signaling.endpoints.admin import setup_admin_api
from mcu.signaling.endpoints.internalroutes import setup_internal_routes
from mcu.signaling.endpoints.joinpage import setup_join_page
from mcu.signaling.endpoints.keys import ROOMS, SANDBOX
from mcu.signaling.endpoints.nodecalls import node_calls_middleware
from mcu.signaling.endpoints.relays import NodeLinks
from mcu.signaling.endpoints.uploads import upload_document
from mcu.signaling.endpoints.webhooks import WebhookSender, setup_webhook_routes
from mcu.signaling.endpoints.whip import BROADCASTING, Broadcasting, setup_broadcasting
from mcu.signaling.endpoints.ws import SIGNALING, SignalingServices, websocket_handler
from mcu.signaling.rooms.entrance import Entrance
from mcu.signaling.rooms.events import NO_EVENTS
from mcu.signaling.rooms.recording import (
    RecordingServices,
    composite_executor,
    recover_recordings,
)
from mcu.signaling.rooms.records import RoomRecords
from mcu.signaling.rooms.session import Rooms
from mcu.signaling.rooms.store import RoomStore
from mcu.signaling.rooms.throttle import LoginThrottle
from mcu.slides.sandbox import Sandbox

logger = logging.getLogger(__name__)

WHEP_REFUSE_LAG_SECONDS = 0.25
"""New WHEP viewers are refused while the event loop runs this late for seconds on end, or while
ingress runs behind (:meth:`mcu.sfu.lateness.IngressBoard.behind`)."""

WEB_ROOT = Path(str(resources.files("mcu.signaling") / "web"))


class MediaCollector(Collector):
    """Forwarding and recording totals, read from live objects at scrape time.

    Counting in the hot path with prometheus counters would cost a lock per packet per consumer;
    plain integers on the objects cost nothing, and a scrape sums them. A :class:`CounterSweep`
    per kind of object keeps what departed objects counted, so the totals are true counters.
    """

    def __init__(self, rooms: Rooms, broadcasting: Broadcasting) -> None:
        self._rooms = rooms
        self._broadcasting = broadcasting
        self._producers = metrics.CounterSweep(
            (
                "packets_received",
                "bytes_received",
                "keyframe_packets_received",
                "packets_shed",
                "frames_shed",
            )
        )
        self._consumers = metrics.CounterSweep(
            ("packets_sent", "bytes_sent", "packets_dropped", "stalls", "packets_skipped")
        )
        self._writers = metrics.CounterSweep(("bytes_written",))
        self._repairs = metrics.CounterSweep(REPAIR_SKIPS)

    def collect(self) -> Iterator[Metric]:
        """One scrape: walk the rooms once."""
        producers: list[Producer] = []
        consumers: list[Consumer] = []
        writers: list[TrackWriter] = []
        recording = 0
        for room in self._rooms.rooms.values():
            recording += room.recording.active
            for participant in room.participants.values():
                for track in participant.tracks.values():
                    producers.append(track.producer)
                    writers.extend(s for s in track.producer.sinks if isinstance(s, TrackWriter))
                if participant.subscriber is not None:
                    consumers.extend(participant.subscriber.consumers())
        for viewer in self._broadcasting.viewer_connections():
            consumers.extend(viewer.consumers())
        packets_in, bytes_in, keyframes_in, packets_shed, frames_shed = self._producers.collect(
            producers
        )
        packets_out, bytes_out, dropped, stalls, skipped = self._consumers.collect(consumers)
        (written,) = self._writers.collect(writers)
        skipped_repairs = CounterMetricFamily(
            "mcu_retransmissions_skipped_total",
            "Packets subscribers NACKed that were not resent: too old to help, resent moments "
            "ago, or over the subscriber's repair budget (includes departed consumers).",
            labels=["reason"],
        )
        for reason, count in zip(
            REPAIR_SKIPS, self._repairs.collect([c.repair for c in consumers]), strict=True
        ):
            skipped_repairs.add_metric([reason], count)
        yield skipped_repairs
        yield _counter(
            "mcu_rtp_packets_received_total",
            "RTP packets received from publishers (RTX unwrapped; includes departed tracks).",
            packets_in,
        )
        yield _counter(
            "mcu_rtp_received_bytes_total",
            "RTP payload bytes received from publishers (includes departed tracks).",
            bytes_in,
        )
        yield _counter(
            "mcu_video_keyframes_received_total",
            "Packets from publishers that start a keyframe (H.264: SPS and IDR starts).",
            keyframes_in,
        )
        yield _counter(
            "mcu_rtp_packets_sent_total",
            "RTP packets forwarded to subscribers (includes departed consumers).",
            packets_out,
        )
        yield _counter(
            "mcu_rtp_sent_bytes_total",
            "RTP payload bytes forwarded to subscribers (includes departed consumers).",
            bytes_out,
        )
        yield _counter(
            "mcu_rtp_packets_dropped_total",
            "RTP packets not sent to a subscriber: transport not ready or send queue full.",
            dropped,
        )
        yield _counter(
            "mcu_video_consumer_stalls_total",
            "Times a video consumer stopped after a refused send, to resume at a keyframe.",
            stalls,
        )
        yield _counter(
            "mcu_video_packets_skipped_total",
            "Video packets not sent to a subscriber while its consumer waited for a keyframe.",
            skipped,
        )
        yield _counter(
            "mcu_rtp_packets_shed_total",
            "Publishers' packets not forwarded to viewers because this process ran behind.",
            packets_shed,
        )
        yield _counter(
            "mcu_video_frames_shed_total",
            "Video frames not forwarded to viewers because this process ran behind.",
            frames_shed,
        )
        yield GaugeMetricFamily(
            "mcu_video_producers_shedding",
            "Video tracks whose delta frames are being shed until a keyframe arrives in time.",
            sum(1 for p in producers if p.shedding),
        )
        now = time.monotonic()
        yield GaugeMetricFamily(
            "mcu_ingress_lateness_seconds",
            "How late the server processes the publishers' packets: the socket furthest behind.",
            INGRESS.worst(now),
        )
        yield GaugeMetricFamily(
            "mcu_ingress_lateness_sustained_seconds",
            "The median of that lateness over the last 2 s, for the socket furthest behind.",
            INGRESS.worst_sustained(now),
        )
        yield GaugeMetricFamily(
            "mcu_video_consumers_waiting_keyframe",
            "Video consumers sending nothing until their producer's next keyframe.",
            sum(1 for c in consumers if c.waiting_for_keyframe),
        )
        yield _counter(
            "mcu_recording_written_bytes_total",
            "Bytes written to recording files (plaintext, before encryption at rest).",
            written,
        )
        yield GaugeMetricFamily("mcu_recordings_active", "Rooms being recorded.", recording)
        relayed = CounterMetricFamily(
            "mcu_relay_packets_sent_total",
            "RTP packets this worker relayed to each edge (a worker index, or node/worker on "
            "another node): one copy of the stage per edge, however many viewers it serves.",
            labels=["edge"],
        )
        if self._broadcasting.relays is not None:
            for edge, sent in sorted(self._broadcasting.relays.packets_sent().items()):
                relayed.add_metric([edge], sent)
        yield relayed
        yield GaugeMetricFamily(
            "mcu_recording_tracks", "Tracks being written to recordings.", len(writers)
        )
        yield GaugeMetricFamily(
            "mcu_mix_encodes",
            "Composite pictures being composed and encoded (each distinct mix spec in use).",
            MixedVideo.running,
        )


REPAIR_SKIPS = ("too_old", "just_resent", "over_budget")
"Why NACKed packets were not resent (:class:`mcu.sfu.repair.RepairBudget`'s counters)."


def _counter(name: str, documentation: str, value: int) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


@dataclass
class Readiness:
    """Whether this process should get new sessions (the load balancer's ``/readyz``)."""

    started: float = field(default_factory=time.monotonic)
    "Monotonic time the application was built, for ``uptime_seconds``."
    shutting_down: bool = False
    "Set when shutdown begins: ``/readyz`` answers 503 from then on."


READINESS = web.AppKey("readiness", Readiness)


def begin_shutdown(app: web.Application) -> None:
    """Mark the process as shutting down, so ``/readyz`` steers new sessions elsewhere."""
    app[READINESS].shutting_down = True


METRICS_ACCESS = web.AppKey("metrics_access", MetricsAccess)


async def metrics_handler(request: web.Request) -> web.Response:
    """``GET /metrics`` in Prometheus text format."""
    access = request.app[METRICS_ACCESS]
    if not access.allows(request):
        return access.refuse()
    return web.Response(
        body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


async def health_handler(request: web.Request) -> web.Response:
    """``GET /healthz``: liveness for load balancers, with room and participant counts (those
    only for the metrics token, when one is configured)."""
    if not request.app[METRICS_ACCESS].allows(request):
        return web.json_response({"status": "ok"})
    rooms = request.app[ROOMS]
    readiness = request.app[READINESS]
    return web.json_response(
        {"status": "ok"}
        | rooms.stats()
        | {
            "viewers": request.app[BROADCASTING].viewers,
            "uptime_seconds": round(time.monotonic() - readiness.started, 3),
            "version": __version__,
            "worker": metrics.WORKER,
        }
    )


async def readiness_handler(request: web.Request) -> web.Response:
    """``GET /readyz``: 200 while accepting sessions, 503 once shutdown has begun."""
    readiness = request.app[READINESS]
    if readiness.shutting_down:
        return web.json_response({"status": "shutting_down"}, status=503)
    return web.json_response({"status": "ready"})


async def index_page(request: web.Request) -> web.Response:
    """``GET /``: a short pointer for people who open the bare address."""
    return web.Response(
        text="Telemedicine media server. Open the room link you were given (/r/<room>).\n"
    )


def apply_media_policy(config: Config) -> None:
    """Process-wide media settings: ICE candidate policy, SRTP profiles, Opus FEC/RED and DTX,
    decode counting, one DTLS certificate for the process."""
    aiortc_adapter.install()
    aiortc_joins.install()
    addresses = tuple(config.media_addresses)
    if not addresses and config.host not in ("0.0.0.0", "::", ""):
        addresses = (config.host,)
    ice.install(
        ice.IcePolicy(
            addresses=addresses,
            port_min=config.rtc_port_min,
            port_max=config.rtc_port_max,
            public_ip=config.public_ip,
        )
    )
    if config.srtp_require_gcm:
        aiortc_adapter.require_gcm_srtp()
    aiortc_adapter.configure_opus(fec=config.opus_fec, dtx=config.opus_dtx)


def ice_servers(config: Config) -> list[IceServerConfig]:
    """The configured STUN/TURN servers (none by default: never a public server unasked)."""
    return [
        IceServerConfig(urls=tuple(s.urls), username=s.username, credential=s.credential)
        for s in config.ice_servers
    ]


def client_ice_servers(config: Config) -> ClientIceServers:
    """What clients are handed: the configured servers, and the TURN relay (``turn_urls``) with
    a credential made for each client from ``turn_secret``."""
    relay = None
    if config.turn_urls and config.turn_secret is not None:
        relay = TurnRelay(
            urls=tuple(config.turn_urls),
            secret=config.turn_secret.get_secret_value().encode(),
            ttl=config.turn_ttl,
        )
    return ClientIceServers(configured=tuple(ice_servers(config)), relay=relay)


def webhook_sender(config: Config) -> WebhookSender | None:
    """The sender of room events to the platform's webhook URLs (None when there are none),
    signing with the first API key's secret."""
    if not config.webhook_urls:
        return None
    secret = config.api_keys[0].secret
    assert secret is not None  # the configuration refuses webhooks whose first key has none
    return WebhookSender(config.webhook_urls, secret.get_secret_value().encode("utf-8"))


def cluster_registry(config: Config) -> NodeRegistry | None:
    """The cluster's node registry, read by ``GET /api/cluster/nodes`` (None: a single node)."""
    if config.redis_url is None:
        return None
    return NodeRegistry(connect_redis(parse_redis_url(config.redis_url)))


async def create_app(config: Config) -> web.Application:
    """Build the application for ``config`` (opens the room store; closed on cleanup)."""
    apply_media_policy(config)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    # A cluster's nodes share their rooms in Redis; a single node keeps them in SQLite.
    shared = SharedState(config) if config.clustered else None
    sqlite_store: RoomStore | None = None
    store: RoomRecords
    if shared is not None:
        store = shared.store
    else:
        store = sqlite_store = await RoomStore.open(config.data_dir / "mcu.sqlite3")
    admin_token = (
        config.admin_token.get_secret_value()
        if config.admin_token is not None
        else load_or_create_admin_token(config.data_dir)
    )
    signer = InviteSigner(invite_key(config))
    tokens = AccessTokens(api_keys(config.api_keys))
    catalogue = await Catalogue.open(config.data_dir)
    master_key = load_or_create_secret(config.data_dir, MASTER_KEY_NAME)
    composer = composite_executor()
    recording = RecordingServices(
        catalogue=catalogue,
        data_dir=config.data_dir,
        master_key=master_key,
        encrypt=config.encrypt_recordings,
        composer=composer,
    )
    if config.worker_index in (None, 0):  # one process recovers, while no worker records yet
        for item in await recover_recordings(recording):
            logger.warning("recording %s was interrupted; catalogued as %s", item.id, item.status)
    clients_ice = client_ice_servers(config)
    webhooks = webhook_sender(config)
    rooms = Rooms(
        ice_servers(config),
        recording,
        client_ice=clients_ice,
        events=webhooks or NO_EVENTS,
        reconnect_grace=config.reconnect_grace,
        adapt_downlinks=config.adapt_downlinks,
    )
    live_counts = shared.serve(rooms) if shared else None
    # Each worker appends to a chain of its own; GET /api/audit merges them.
    audit_dir = config.data_dir / AUDIT_DIRNAME
    audit = AuditLog(audit_dir, config.worker_index or 0, config.audit_retention_days)
    await audit.open()
    app = web.Application(client_max_size=256 * 1024)
    app[ROOMS] = rooms
    sandbox = app[SANDBOX] = Sandbox()
    app[READINESS] = Readiness()
    # Behind a front (worker_index set) only the front reaches a worker, over its Unix socket;
    # the front checks the token.
    token = config.metrics_token if config.worker_index is None else None
    app[METRICS_ACCESS] = MetricsAccess(token.get_secret_value().encode() if token else None)
    # One per-address record of failures for joins, WHIP and the join page's look-ups alike.
    throttle = LoginThrottle()
    entrance = Entrance(
        store,
        signer,
        throttle,
        rooms,
        config.max_participants_default,
        tokens=tokens,
        deny_list=store,
        audit=audit,
    )
    signaling = app[SIGNALING] = SignalingServices(
        rooms=rooms,
        entrance=entrance,
        max_message_bytes=config.max_message_bytes,
        sockets=SocketLimits(
            config.max_websockets_per_address, config.max_websockets, config.join_timeout
        ),
        behind_front=config.worker_index is not None,
        audit=audit,
    )
    sockets_collector = SocketLimitsCollector(signaling.sockets)
    REGISTRY.register(sockets_collector)
    broadcasting = Broadcasting(
        signaling,
        ice_servers(config),
        max_per_address=config.max_whep_per_address,
        client_ice=clients_ice,
        public_url=config.advertise_url or "",
    )
    setup_broadcasting(app, broadcasting)
    setup_internal_routes(app, broadcasting.relaying, store, entrance)
    # Internal routes only over the node's Unix sockets: other nodes' calls come via the front.
    app.middlewares.append(node_calls_middleware())
    collector = MediaCollector(rooms, broadcasting)
    REGISTRY.register(collector)
    runtime_collector = RuntimeCollector()
    REGISTRY.register(runtime_collector)
    loop_lag = LoopLagMonitor()
    heap_trimmer = HeapTrimmer()
    broadcasting.busy = lambda: (
        loop_lag.sustained_lag() >= WHEP_REFUSE_LAG_SECONDS or INGRESS.behind(time.monotonic())
    )
    setup_library(
        app,
        catalogue=catalogue,
        data_dir=config.data_dir,
        master_key=master_key,
        admin_token=admin_token,
        signer=ShareSigner(share_key(config)),
        encrypt_uploads=config.encrypt_recordings,
        audit=audit,
        tokens=tokens,
        revoked=store.token_revoked,
    )
    registry = cluster_registry(config)
    credentials = node_credentials(config)
    node_peers = None if credentials is None else NodePeers(credentials)
    cluster = None
    if node_peers is not None and registry is not None:
        node_id = node_peers.credentials.node_id
        cluster = NodeLinks(
            node=node_id,
            host=config.relay_host,
            keying=RelayKeying(cluster_secret(config)),
            nodes=ClusterNodes(node_peers, registry),
            tree=RedisRelayTree(registry.redis, registry, node_id),
        )
    setup_admin_api(
        app,
        store=store,
        signer=signer,
        admin_token=admin_token,
        live=rooms,
        audit=audit,
        audit_dir=audit_dir,
        tokens=tokens,
        counts=live_counts,
        cluster_nodes=registry,
    )
    setup_webhook_routes(app, webhooks, admin_token=admin_token)
    app.router.add_get("/", index_page)
    app.router.add_get("/ws", websocket_handler)
    setup_join_page(app, page=WEB_ROOT / "room.html", store=store, signer=signer, throttle=throttle)
    app.router.add_post("/rooms/{room}/documents", upload_document)
    app.router.add_static("/static/", WEB_ROOT, show_index=False)
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", health_handler)
    app.router.add_get("/readyz", readiness_handler)

    async def startup(app: web.Application) -> None:
        loop_lag.start()
        heap_trimmer.start()
        if shared is not None:
            shared.start()
        context = app.get(WORKER_CONTEXT)
        if context is not None and context.peers is not None:
            await broadcasting.start_relaying(context.index, context.peers, store, cluster)

    async def shutdown(app: web.Application) -> None:
        begin_shutdown(app)
        await broadcasting.close_all()
        await rooms.close_all()
        if webhooks is not None:  # after the rooms, whose last events it still sends
            await webhooks.close()
        await sandbox.close()

    async def cleanup(app: web.Application) -> None:
        await loop_lag.stop()
        await heap_trimmer.stop()
        await broadcasting.stop_relaying()
        if node_peers is not None:
            await node_peers.close()
        REGISTRY.unregister(collector)
        REGISTRY.unregister(sockets_collector)
        REGISTRY.unregister(runtime_collector)
        composer.shutdown(wait=True)  # a composite being made is finished, not lost
        await catalogue.close()
        if shared is not None:
            await shared.close()
        if sqlite_store is not None:
            await sqlite_store.close()
        await audit.close()  # last: the leaves of the rooms just ended are on it
        if registry is not None:
            await registry.redis.aclose()

    app.on_startup.append(startup)
    app.on_shutdown.append(shutdown)
    app.on_cleanup.append(cleanup)
    return app
