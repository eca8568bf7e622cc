"""What makes a server process a worker: its socket, identity, peers and trusted client address."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from mcu.app.cluster.peers import WorkerPeers
from mcu.app.config import Config
from mcu.contracts.cluster import FORWARDED_FOR_HEADER, socket_dir, worker_socket
from mcu.infra import metrics

__all__ = [
    "WORKER_CONTEXT",
    "WorkerContext",
    "attach",
    "forwarded_for_middleware",
    "prepare_socket",
    "watch_parent",
    "worker_config",
]

logger = logging.getLogger(__name__)

PARENT_CHECK_SECONDS = 1.0
"How often a worker checks that the front that started it is still alive."


@dataclass(frozen=True)
class WorkerContext:
    """This process's place among the workers."""

    index: int
    "This process's worker index (0 in a single-process server)."
    count: int
    "How many workers there are (1 in a single-process server)."
    peers: WorkerPeers | None
    "Clients to every worker's socket (this one's too); None in a single-process server."


WORKER_CONTEXT = web.AppKey("worker_context", WorkerContext)
"The application's :class:`WorkerContext`; set on every application ``python -m mcu`` serves."


@web.middleware
async def forwarded_for_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Take the client address from ``X-Forwarded-For``, which the front sets.

    Only the front and other workers reach a worker's socket (mode 0600 in a 0700 directory),
    so the header is trusted; its last entry is the one the front wrote.
    """
    forwarded = request.headers.get(FORWARDED_FOR_HEADER, "")
    address = forwarded.rsplit(",", 1)[-1].strip()
    if address:
        request = request.clone(remote=address)
    return await handler(request)


def worker_config(config: Config) -> Config:
    """``config`` as worker ``config.worker_index`` uses it: its own slice of the media ports."""
    assert config.worker_index is not None
    ports = config.rtc_port_slice(config.worker_index, config.workers)
    if ports is None:
        return config
    return config.model_copy(update={"rtc_port_min": ports[0], "rtc_port_max": ports[1]})


def attach(app: web.Application, config: Config) -> WorkerContext:
    """Give ``app`` (not yet started) its :class:`WorkerContext`; in a worker, also the trusted
    ``X-Forwarded-For``, the metrics' worker label and the peers' cleanup."""
    if config.worker_index is None:
        context = WorkerContext(index=0, count=1, peers=None)
    else:
        metrics.set_worker(config.worker_index)
        peers = WorkerPeers(config.data_dir, config.workers)
        context = WorkerContext(index=config.worker_index, count=config.workers, peers=peers)
        app.middlewares.append(forwarded_for_middleware)

        async def close_peers(app: web.Application) -> None:
            await peers.close()

        app.on_cleanup.append(close_peers)
    app[WORKER_CONTEXT] = context
    return context


def prepare_socket(data_dir: Path, index: int) -> Path:
    """Make the socket directory (mode 0700) and remove a stale socket; returns the path."""
    directory = socket_dir(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    path = worker_socket(data_dir, index)
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(path.lstat().st_mode):
            path.unlink()
    return path


async def watch_parent(stop: asyncio.Event) -> None:
    """Set ``stop`` when the front that started this worker is gone (killed without warning),
    so no orphaned worker keeps its socket and ports."""
    parent = os.getppid()
    while not stop.is_set():
        await asyncio.sleep(PARENT_CHECK_SECONDS)
        if os.getppid() != parent:
            logger.warning("front process %d is gone; shutting down", parent)
            stop.set()
