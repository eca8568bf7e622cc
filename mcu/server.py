"""The aiohttp application: signalling, admin API, web client, metrics and health."""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from mcu.crypto.secrets import load_or_create_admin_token, load_or_create_secret
from mcu.crypto.tokens import InviteSigner
from mcu.recorder.catalogue import Catalogue
from mcu.recorder.library import MASTER_KEY_NAME, SHARE_KEY_NAME, ShareSigner, setup_library
from mcu.signaling.admin import setup_admin_api
from mcu.signaling.recording import RecordingServices, composite_executor
from mcu.signaling.session import Rooms
from mcu.signaling.store import RoomStore
from mcu.signaling.throttle import LoginThrottle
from mcu.signaling.uploads import upload_document
from mcu.signaling.ws import SignalingServices, websocket_handler

from . import aiortc_adapter, ice
from .config import Config
from .peer import IceServerConfig

logger = logging.getLogger(__name__)

WEB_ROOT = Path(str(resources.files("mcu.signaling") / "web"))


class MediaCollector(Collector):
    """Forwarding totals, summed from the producers and consumers at scrape time.

    Counting in the hot path with prometheus counters would cost a lock per packet per consumer;
    plain integers on the objects cost nothing, and a scrape sums them.
    """

    def __init__(self, rooms: Rooms) -> None:
        self._rooms = rooms
        self._retired = [0, 0, 0, 0]

    def collect(self):  # type: ignore[no-untyped-def]
        packets_in = bytes_in = packets_out = bytes_out = 0
        for room in self._rooms.rooms.values():
            for participant in room.participants.values():
                for track in participant.tracks.values():
                    packets_in += track.producer.packets_received
                    bytes_in += track.producer.bytes_received
                if participant.subscriber is not None:
                    for consumer in participant.subscriber.consumers():
                        packets_out += consumer.packets_sent
                        bytes_out += consumer.bytes_sent
        totals = [packets_in, bytes_in, packets_out, bytes_out]
        # Counters must not go down when a participant leaves: keep the high-water mark.
        self._retired = [max(a, b) for a, b in zip(self._retired, totals, strict=True)]
        names = (
            ("mcu_rtp_packets_received", "RTP packets received from publishers (live tracks)."),
            ("mcu_rtp_received_bytes", "RTP payload bytes received from publishers (live tracks)."),
            ("mcu_rtp_packets_sent", "RTP packets forwarded to subscribers (live consumers)."),
            ("mcu_rtp_sent_bytes", "RTP payload bytes forwarded to subscribers (live consumers)."),
        )
        for (name, doc), value in zip(names, totals, strict=True):
            family = CounterMetricFamily(name, doc)
            family.add_metric([], value)
            yield family


async def metrics_handler(request: web.Request) -> web.Response:
    """``GET /metrics`` in Prometheus text format."""
    return web.Response(
        body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


async def health_handler(request: web.Request) -> web.Response:
    """``GET /healthz``: liveness for load balancers, with room and participant counts."""
    rooms: Rooms = request.app["rooms"]
    return web.json_response({"status": "ok"} | rooms.stats())


async def room_page(request: web.Request) -> web.FileResponse:
    """``GET /r/{room}``: the browser client (join page, then the room)."""
    return web.FileResponse(WEB_ROOT / "room.html", headers={"Cache-Control": "no-cache"})


async def library_page(request: web.Request) -> web.FileResponse:
    """``GET /library``: the recordings and courseware library (staff)."""
    return web.FileResponse(WEB_ROOT / "library.html", headers={"Cache-Control": "no-cache"})


async def index_page(request: web.Request) -> web.Response:
    """``GET /``: a short pointer for people who open the bare address."""
    return web.Response(
        text="Telemedicine media server. Open the room link you were given (/r/<room>).\n"
    )


def apply_media_policy(config: Config) -> None:
    """Process-wide media settings: ICE candidate policy, SRTP profiles, decode counting."""
    aiortc_adapter.install()
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


def ice_servers(config: Config) -> list[IceServerConfig]:
    """The configured STUN/TURN servers (none by default: never a public server unasked)."""
    return [
        IceServerConfig(urls=tuple(s.urls), username=s.username, credential=s.credential)
        for s in config.ice_servers
    ]


async def create_app(config: Config) -> web.Application:
    """Build the application for ``config`` (opens the room store; closed on cleanup)."""
    apply_media_policy(config)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = await RoomStore.open(config.data_dir / "mcu.sqlite3")
    admin_token = (
        config.admin_token.get_secret_value()
        if config.admin_token is not None
        else load_or_create_admin_token(config.data_dir)
    )
    signer = InviteSigner(load_or_create_secret(config.data_dir, "invite-key"))
    catalogue = await Catalogue.open(config.data_dir)
    recovered = await catalogue.recover()
    for item in recovered:
        logger.warning("recording %s was interrupted; catalogued as %s", item.id, item.status)
    master_key = load_or_create_secret(config.data_dir, MASTER_KEY_NAME)
    composer = composite_executor()
    recording = RecordingServices(
        catalogue=catalogue,
        data_dir=config.data_dir,
        master_key=master_key,
        encrypt=config.encrypt_recordings,
        composer=composer,
    )
    rooms = Rooms(ice_servers(config), recording)
    app = web.Application(client_max_size=256 * 1024)
    app["rooms"] = rooms
    app["signaling"] = SignalingServices(
        rooms=rooms,
        store=store,
        signer=signer,
        throttle=LoginThrottle(),
        max_message_bytes=config.max_message_bytes,
        max_participants_default=config.max_participants_default,
    )
    collector = MediaCollector(rooms)
    REGISTRY.register(collector)
    # Before setup_library: its /library sub-application would otherwise answer /library itself.
    app.router.add_get("/library", library_page)
    setup_library(
        app,
        catalogue=catalogue,
        data_dir=config.data_dir,
        master_key=master_key,
        admin_token=admin_token,
        signer=ShareSigner(load_or_create_secret(config.data_dir, SHARE_KEY_NAME)),
        encrypt_uploads=config.encrypt_recordings,
    )
    setup_admin_api(app, store=store, signer=signer, admin_token=admin_token, live=rooms)
    app.router.add_get("/", index_page)
    app.router.add_get("/ws", websocket_handler)
    app.router.add_get("/r/{room}", room_page)
    app.router.add_post("/rooms/{room}/documents", upload_document)
    app.router.add_static("/static/", WEB_ROOT, show_index=False)
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", health_handler)

    async def shutdown(app: web.Application) -> None:
        await rooms.close_all()

    async def cleanup(app: web.Application) -> None:
        REGISTRY.unregister(collector)
        composer.shutdown(wait=True)  # a composite being made is finished, not lost
        await catalogue.close()
        await store.close()

    app.on_shutdown.append(shutdown)
    app.on_cleanup.append(cleanup)
    return app
