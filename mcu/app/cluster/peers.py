"""HTTP over the workers' Unix sockets: JSON requests between workers, and the front's proxy.

The bodies are the models of :mod:`mcu.contracts.cluster`; the caller validates a reply against
the model it expects.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import BaseModel

from mcu.contracts.cluster import worker_socket

__all__ = ["WorkerPeers", "WorkerUnavailable", "close_sessions", "json_reply"]

REQUEST_TIMEOUT = 10.0
"Default bound, in seconds, on one JSON request to another worker."


class WorkerUnavailable(Exception):
    """A worker could not be reached (not running, restarting, or too slow to answer)."""


class WorkerPeers:
    """Client sessions to every worker's Unix socket, one per worker, created on first use.

    ``limit`` bounds the connections open to one worker (0: unbounded, for the front, whose
    proxied WebSockets each hold one). Sessions keep no cookies and leave bodies as sent.
    """

    def __init__(self, data_dir: Path, count: int, *, limit: int = 100) -> None:
        if count < 1:
            raise ValueError("count must be at least 1")
        self.data_dir = data_dir
        self.count = count
        self._limit = limit
        self._sessions: dict[int, aiohttp.ClientSession] = {}

    def socket_path(self, worker: int) -> Path:
        """The Unix socket of ``worker``."""
        return worker_socket(self.data_dir, worker)

    def session(self, worker: int) -> aiohttp.ClientSession:
        """The session bound to ``worker``'s socket; URLs are ``http://localhost/<path>``."""
        if not 0 <= worker < self.count:
            raise ValueError(f"no worker {worker} (there are {self.count})")
        session = self._sessions.get(worker)
        if session is None or session.closed:
            session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(
                    path=str(self.socket_path(worker)), limit=self._limit
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
            )
            self._sessions[worker] = session
        return session

    async def request(
        self,
        worker: int,
        method: str,
        path: str,
        body: BaseModel | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        timeout: float = REQUEST_TIMEOUT,
    ) -> tuple[int, Any]:
        """Send one request to ``worker`` (``body`` as JSON when not None) and return the
        status and the decoded JSON reply (None when the reply is not JSON).

        Raises :class:`WorkerUnavailable` when the worker cannot be reached in ``timeout`` s.
        """
        data = None if body is None else body.model_dump_json().encode()
        all_headers = dict(headers or {})
        if data is not None:
            all_headers.setdefault("Content-Type", "application/json")
        try:
            async with self.session(worker).request(
                method,
                "http://localhost" + path,
                data=data,
                headers=all_headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as response:
                raw = await response.read()
                status = response.status
                content_type = response.content_type
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise WorkerUnavailable(f"worker {worker}: {method} {path}: {exc!r}") from exc
        return status, json_reply(content_type, raw)

    async def close(self) -> None:
        """Close every session (bounded: a stuck close is abandoned after a few seconds)."""
        sessions, self._sessions = list(self._sessions.values()), {}
        await close_sessions(sessions)


def json_reply(content_type: str, raw: bytes) -> Any:
    """A reply's decoded JSON body, or None when it is not JSON."""
    if content_type != "application/json" or not raw:
        return None
    try:
        return jsonlib.loads(raw)
    except ValueError:
        return None


async def close_sessions(sessions: list[aiohttp.ClientSession]) -> None:
    """Close ``sessions`` (bounded: a stuck close is abandoned after a few seconds)."""
    if sessions:
        await asyncio.wait([asyncio.ensure_future(s.close()) for s in sessions], timeout=5.0)
