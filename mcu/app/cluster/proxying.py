"""What the front passes on, to a worker or to another node's front: the headers it drops, the
client headers aiohttp must not add to, and the timeouts of a passed-on request."""

from __future__ import annotations

import aiohttp

from mcu.contracts.cluster import (
    CALLER_NODE_HEADER,
    FORWARDED_FOR_HEADER,
    HOME_NODE_HEADER,
    HOME_WORKER_HEADER,
    JOIN_WITHIN_HEADER,
    NODE_CREDENTIAL_HEADER,
    WORKER_HEADER,
)

__all__ = ["CHUNK_BYTES", "CONNECT_TIMEOUT", "NOT_PASSED", "PROXY_TIMEOUT", "SKIP_AUTO_HEADERS"]

CONNECT_TIMEOUT = 10.0
"Seconds to open a connection to a worker's socket or to another node."
CHUNK_BYTES = 64 * 1024
"Bodies are streamed in pieces of this size."
PROXY_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT, sock_read=300.0)
"A passed-on request may stream for as long as it needs, but not sit silent for five minutes."

NOT_PASSED = frozenset(
    h.lower()
    for h in (
        # About one connection, not the request (RFC 9110 7.6.1).
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Expect",
        # Set afresh by whoever passes the request on. Trusted only from another node, whose
        # verified call is passed on without them.
        FORWARDED_FOR_HEADER,
        HOME_WORKER_HEADER,
        JOIN_WITHIN_HEADER,
        NODE_CREDENTIAL_HEADER,
        CALLER_NODE_HEADER,
        WORKER_HEADER,
        HOME_NODE_HEADER,
    )
)
"""Headers never passed on as they came."""

SKIP_AUTO_HEADERS = ("Accept", "Accept-Encoding", "Content-Type", "User-Agent")
"The client's headers go as they are: aiohttp adds none of its own."
