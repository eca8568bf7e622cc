"""The `mcu` command (and `python -m mcu`): load the configuration, run one server or a cluster."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import ssl
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from mcu.app.config import Config, ConfigError, load_config
from mcu.infra import native

# Attributes every LogRecord has; anything else on a record came from the call's ``extra``.
_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
) | {"message", "asctime", "taskName"}


# Control characters (and Unicode line breaks) in a logged value would let a request forge log
# lines: a percent-decoded path with %0A, a participant name with a newline. Written escaped.
_CONTROL_ESCAPES = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F, 0x85]} | {
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def escape_controls(text: str) -> str:
    """``text`` with control characters written as escapes, so it stays on one log line."""
    return text.translate(_CONTROL_ESCAPES)


class TextFormatter(logging.Formatter):
    """The plain text log format, one line per record whatever the logged values hold."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


def loggable_path(path: str) -> str:
    """``path`` as the access log shows it: a WHIP/WHEP session id (``/whep/room/<session>``,
    which with its token ends the session) is left out."""
    parts = path.split("/", 4)
    if len(parts) >= 4 and parts[0] == "" and parts[1] in ("whip", "whep") and parts[3]:
        return "/".join([*parts[:3], "<session>", *parts[4:]])
    return path


class AccessLogger(AbstractAccessLogger):
    """Access log lines without query strings (invite and share tokens travel there) and
    without WHIP/WHEP session ids."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %d %d %.3fs',
            request.remote,
            request.method,
            loggable_path(request.path),
            response.status,
            response.body_length,
            time,
        )


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers.

    Fields passed with ``extra`` (``logger.info("...", extra={"room": r, "participant": p})``)
    become top-level fields of the object; values JSON cannot hold are written as ``str()``.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


class ProcessFilter(logging.Filter):
    """Marks every record with the process it came from (``worker``: an index or ``front``)."""

    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def filter(self, record: logging.LogRecord) -> bool:
        record.worker = self.process
        return True


def setup_logging(config: Config, process: str | None = None) -> None:
    """Log to stderr in the configured level and format; ``process`` (a worker index or
    ``front``) marks each line when several processes share the log."""
    handler = logging.StreamHandler()
    if config.log_format == "json":
        handler.setFormatter(JsonFormatter())
    elif process is None:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(
            TextFormatter("%(asctime)s %(levelname)s [%(worker)s] %(name)s: %(message)s")
        )
    if process is not None:
        handler.addFilter(ProcessFilter(process))
    logging.basicConfig(level=config.log_level.upper(), handlers=[handler], force=True)
    # aioice and aiortc are chatty at INFO about every candidate pair.
    for name in ("aioice", "aiortc"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))


def _ssl_context(config: Config) -> ssl.SSLContext | None:
    if config.tls_cert is None or config.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.tls_cert, config.tls_key)
    return context


def _log_forwarding_build() -> None:
    """Say whether packets are forwarded by the compiled build or the (slower) source."""
    log = logging.getLogger("mcu")
    if native.STALE:
        log.warning("forwarding path: %s", native.STATUS)
    else:
        log.info("forwarding path: %s", native.STATUS)


async def _public_site(runner: web.AppRunner, config: Config) -> web.TCPSite:
    """Listen on the public address and say so."""
    ssl_context = _ssl_context(config)
    site = web.TCPSite(runner, config.host, config.port, ssl_context=ssl_context)
    await site.start()
    scheme = "https" if ssl_context else "http"
    logging.getLogger("mcu").info(
        "listening on %s://%s:%d (data in %s)", scheme, config.host, config.port, config.data_dir
    )
    if config.admin_token is None:
        logging.getLogger("mcu").info(
            "admin token: %s", config.data_dir / "secrets" / "admin-token"
        )
    return site


def _check_open_files(config: Config, per_socket: int) -> None:
    """Warn when ``ulimit -n`` cannot hold ``max_websockets`` sockets: past it ``accept()`` fails
    for every client, media included, instead of the clear refusal the cap gives."""
    import resource

    from mcu.infra.socketlimits import descriptors_short

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return
    short = descriptors_short(config.max_websockets, per_socket, soft)
    if short:
        logging.getLogger("mcu").warning(
            "the open-files limit (%d) is %d short of max_websockets = %d at %d descriptors "
            "each plus headroom: raise ulimit -n (LimitNOFILE=) or lower max_websockets",
            soft,
            short,
            config.max_websockets,
            per_socket,
        )


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def serve(config: Config) -> None:
    """Run the application until SIGINT or SIGTERM, then close every peer connection and exit.

    A single-process server listens on the public address; worker ``config.worker_index``
    listens on its Unix socket instead, and also stops when the front that started it is gone.
    """
    from mcu.app.cluster import worker
    from mcu.app.server import begin_shutdown, create_app
    from mcu.sfu.closing import filter_close_races
    from mcu.signaling.endpoints.keys import ROOMS
    from mcu.signaling.endpoints.whip import BROADCASTING
    from mcu.signaling.rooms.recording import wait_for_composites

    filter_close_races(asyncio.get_running_loop())
    _log_forwarding_build()
    stop = _stop_on_signals()
    if config.worker_index is not None:
        config = worker.worker_config(config)
    app = await create_app(config)
    worker.attach(app, config)
    if config.worker_index is None:
        runner = web.AppRunner(app, handle_signals=False, access_log_class=AccessLogger)
    else:  # the front logs every request it passes on, with the client's address
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    # Everything made while starting (modules, classes, the app) lives as long as the process:
    # frozen out of the cyclic collector, so each full collection walks only what rooms and
    # connections made since (mcu.infra.heaptrim runs one when a room empties).
    gc.collect()
    gc.freeze()
    watcher: asyncio.Task[None] | None = None
    if config.worker_index is None:
        _check_open_files(config, per_socket=1)
        await _public_site(runner, config)
    else:
        path = worker.prepare_socket(config.data_dir, config.worker_index)
        await web.UnixSite(runner, str(path)).start()
        path.chmod(0o600)
        logging.getLogger("mcu").info("worker %d listening on %s", config.worker_index, path)
        watcher = asyncio.create_task(worker.watch_parent(stop))
    await stop.wait()
    if watcher is not None:
        watcher.cancel()
    begin_shutdown(app)  # /readyz answers 503 while sessions are being ended
    logging.getLogger("mcu").info("shutting down")
    # End rooms while sockets are still open, so every client is told why before aiohttp closes
    # them (aiohttp's own shutdown closes WebSockets before its on_shutdown hooks run).
    await app[BROADCASTING].close_all()
    await app[ROOMS].close_all()
    await wait_for_composites(timeout=300)
    await runner.cleanup()


async def serve_front(config: Config, argv: Sequence[str], count: int) -> int:
    """Run the front and ``count`` workers until SIGINT or SIGTERM; the exit status."""
    from mcu.app.cluster.directory import InMemoryRoomDirectory
    from mcu.app.cluster.front import Front, create_front_app
    from mcu.app.cluster.peers import WorkerPeers
    from mcu.app.cluster.supervisor import Supervisor, WorkerStartError

    log = logging.getLogger("mcu")
    stop = _stop_on_signals()
    if config.clustered:  # made before the workers start: they sign as this node
        from mcu.app.cluster.registry import load_or_create_node_id

        try:
            load_or_create_node_id(config.data_dir)
        except (ValueError, OSError) as exc:
            log.error("cannot join the cluster: %s", exc)
            return 2
    peers = WorkerPeers(config.data_dir, count, limit=0)
    supervisor = Supervisor(config, argv, count, peers)
    log.info("starting %d workers", count)
    starting = asyncio.create_task(supervisor.start())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    error: BaseException | None = None
    if starting.done():
        error = starting.exception()
    else:  # stopped while starting
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError, WorkerStartError):
            await starting
    if error is not None or stopping.done():
        if isinstance(error, WorkerStartError):
            log.error("%s", error)
        elif error is not None:
            log.error("workers did not start", exc_info=error)
        await supervisor.stop(timeout=30)
        await peers.close()
        return 0 if error is None else 1
    front = Front(config, supervisor, peers, InMemoryRoomDirectory(count))
    node = None
    if config.clustered:
        from mcu.app.cluster.nodesetup import start_node

        node = await start_node(config, count, front.health)
        if node is None:  # said why
            await supervisor.stop(timeout=30)
            await peers.close()
            return 2
        front.node = node
    runner = web.AppRunner(
        create_front_app(front), handle_signals=False, access_log_class=AccessLogger
    )
    await runner.setup()
    _check_open_files(config, per_socket=2)  # the client's socket and the worker's
    site = await _public_site(runner, config)
    await stopping
    log.info("shutting down")
    front.shutting_down = True  # /readyz answers 503 from now on
    await site.stop()  # no new connections; open ones carry the workers' goodbyes
    if node is not None:  # the other nodes take this node's rooms from now on
        await node.leave()
    status = await supervisor.stop()
    await runner.cleanup()
    await peers.close()
    if node is not None:
        await node.close()
    return status


def main(argv: list[str] | None = None) -> int:
    """Console entry point: ``mcu [options]`` runs the server; ``mcu audit ...`` works with
    the audit trail; ``mcu token create ...`` mints an access token."""
    words = list(argv if argv is not None else sys.argv[1:])
    if words[:1] == ["audit"]:
        from mcu.app.auditcli import audit_main

        return audit_main(words[1:])
    if words[:1] == ["token"]:
        from mcu.app.tokencli import token_command

        return token_command(words[1:], os.environ)
    try:
        config = load_config(argv if argv is not None else sys.argv[1:], os.environ)
    except ConfigError as exc:
        print(f"mcu: configuration error: {exc}", file=sys.stderr)
        return 2
    count = config.resolved_workers() if config.worker_index is None else 1
    if config.worker_index is not None:
        setup_logging(config, str(config.worker_index))
        return _run(serve(config))
    if count == 1 and not config.clustered:  # a node of a cluster routes between nodes
        setup_logging(config)
        return _run(serve(config))
    setup_logging(config, "front")
    try:
        config.rtc_port_slice(0, count)
    except ValueError as exc:
        print(f"mcu: configuration error: {exc}", file=sys.stderr)
        return 2
    args = list(argv if argv is not None else sys.argv[1:])
    return _run(serve_front(config, args, count))


def _run(main: Coroutine[Any, Any, int | None]) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; keep running without it
        result = asyncio.run(main)
    else:
        result = uvloop.run(main)
    return result or 0
