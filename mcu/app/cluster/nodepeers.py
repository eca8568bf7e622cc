"""HTTP to other nodes of the cluster: internal calls signed with this node's credential.

The same shape as :class:`mcu.app.cluster.peers.WorkerPeers`, for the network instead of the
node's own Unix sockets: a node is named by the URL it advertises (``--advertise-url``), which is
also its id in the credentials. Every request carries
:data:`~mcu.contracts.cluster.NODE_CREDENTIAL_HEADER` made for its method, path (with its query,
sent exactly as signed) and the exact body bytes, so the receiving node
(:mod:`mcu.signaling.endpoints.nodecalls`) can check all three.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
from collections.abc import Mapping
from typing import Any

import aiohttp
from pydantic import BaseModel
from yarl import URL

from mcu.app.config import Config
from mcu.contracts.cluster import NODE_CREDENTIAL_HEADER
from mcu.crypto.clustercalls import NodeCredentials

__all__ = ["NodePeers", "NodeUnavailable", "cluster_secret", "node_credentials"]

REQUEST_TIMEOUT = 10.0
"Default bound, in seconds, on one request to another node."


class NodeUnavailable(Exception):
    """Another node could not be reached (down, unreachable, or too slow to answer)."""


def cluster_secret(config: Config) -> bytes:
    """The cluster secret as key material (only call on a clustered configuration)."""
    if config.cluster_secret is None:
        raise ValueError("this server is no node of a cluster")
    return config.cluster_secret.get_secret_value().encode()


def node_credentials(config: Config) -> NodeCredentials | None:
    """This node's credentials (its id: its advertised URL); None when it is no node of a
    cluster."""
    if not config.clustered or config.advertise_url is None:
        return None
    return NodeCredentials(cluster_secret(config), config.advertise_url)


class NodePeers:
    """Client sessions to other nodes, one per node, created on first use.

    ``limit`` bounds the connections open to one node. Sessions keep no cookies.
    """

    def __init__(self, credentials: NodeCredentials, *, limit: int = 100) -> None:
        self.credentials = credentials
        self._limit = limit
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    def session(self, node: str) -> aiohttp.ClientSession:
        """The session for ``node`` (its advertised ``http(s)://host:port``)."""
        session = self._sessions.get(node)
        if session is None or session.closed:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._limit),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
            self._sessions[node] = session
        return session

    async def request(
        self,
        node: str,
        method: str,
        path: str,
        body: BaseModel | None = None,
        headers: Mapping[str, str] | None = None,
        *,
        timeout: float = REQUEST_TIMEOUT,
    ) -> tuple[int, Any]:
        """Send one signed request to ``node`` (``path`` percent-encoded, starting with ``/``;
        ``body`` as JSON when not None) and return the status and the decoded JSON reply
        (None when the reply is not JSON).

        Raises :class:`NodeUnavailable` when the node cannot be reached in ``timeout`` s.
        """
        if not path.startswith("/"):
            raise ValueError(f"not an absolute path: {path!r}")
        data = b"" if body is None else body.model_dump_json().encode()
        all_headers = dict(headers or {})
        if body is not None:
            all_headers.setdefault("Content-Type", "application/json")
        all_headers[NODE_CREDENTIAL_HEADER] = self.credentials.sign(method, path, data)
        # encoded=True: the path goes out byte for byte as it was signed.
        url = URL(node.rstrip("/") + path, encoded=True)
        try:
            async with self.session(node).request(
                method,
                url,
                data=data if body is not None else None,
                headers=all_headers,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as response:
                raw = await response.read()
                status = response.status
                content_type = response.content_type
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise NodeUnavailable(f"node {node}: {method} {path}: {exc!r}") from exc
        reply: Any = None
        if content_type == "application/json" and raw:
            try:
                reply = jsonlib.loads(raw)
            except ValueError:
                reply = None
        return status, reply

    async def close(self) -> None:
        """Close every session (bounded: a stuck close is abandoned after a few seconds)."""
        sessions, self._sessions = list(self._sessions.values()), {}
        if sessions:
            await asyncio.wait([asyncio.ensure_future(s.close()) for s in sessions], timeout=5.0)
