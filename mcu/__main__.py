"""``python -m mcu``: run the server."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import ssl
import sys
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from .config import Config, ConfigError, load_config
from .server import begin_shutdown, create_app
from .signaling.recording import wait_for_composites

# Attributes every LogRecord has; anything else on a record came from the call's ``extra``.
_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
) | {"message", "asctime", "taskName"}


class AccessLogger(AbstractAccessLogger):
    """Access log lines without query strings: invite and share tokens travel there."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %d %d %.3fs',
            request.remote,
            request.method,
            request.path,
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


def setup_logging(config: Config) -> None:
    """Log to stderr in the configured level and format."""
    handler = logging.StreamHandler()
    if config.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=config.log_level.upper(), handlers=[handler], force=True)
    # aioice and aiortc are chatty at INFO about every candidate pair.
    for name in ("aioice", "aiortc"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))


async def serve(config: Config) -> None:
    """Run until SIGINT or SIGTERM, then close every peer connection and exit."""
    app = await create_app(config)
    runner = web.AppRunner(app, handle_signals=False, access_log_class=AccessLogger)
    await runner.setup()
    ssl_context = None
    if config.tls_cert is not None and config.tls_key is not None:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(config.tls_cert, config.tls_key)
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
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    begin_shutdown(app)  # /readyz answers 503 while sessions are being ended
    logging.getLogger("mcu").info("shutting down")
    # End rooms while sockets are still open, so every client is told why before aiohttp closes
    # them (aiohttp's own shutdown closes WebSockets before its on_shutdown hooks run).
    await app["rooms"].close_all()
    await wait_for_composites(timeout=300)
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    """Console entry point."""
    try:
        config = load_config(argv if argv is not None else sys.argv[1:], os.environ)
    except ConfigError as exc:
        print(f"mcu: configuration error: {exc}", file=sys.stderr)
        return 2
    setup_logging(config)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; keep running without it
        asyncio.run(serve(config))
    else:
        uvloop.run(serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
