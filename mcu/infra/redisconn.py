"""Where the cluster's Redis is, and a client for it that follows Sentinel's promotions.

``redis://``, ``rediss://`` and ``unix://`` URLs name one server (redis-py's own URL syntax).
``redis+sentinel://S1:26379,S2:26379/SERVICE[/DB]`` names Sentinels watching the primary called
``SERVICE``: the client asks them for the primary on every (re)connection, so when Sentinel
promotes a replica the nodes follow it without a restart. Passwords go in the URL's user info
(``redis://:PASSWORD@HOST``); for Sentinel they apply to the data servers.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel

__all__ = ["DEFAULT_SENTINEL_PORT", "RedisTarget", "connect_redis", "parse_redis_url"]

DEFAULT_SENTINEL_PORT = 26379
_SINGLE_SCHEMES = ("redis", "rediss", "unix")
SOCKET_TIMEOUT_S = 5.0
"""A command that gets no answer within this long fails (and the caller retries or reports):
a dead primary must not hang the event loop's callers until TCP gives up."""


@dataclass(frozen=True)
class RedisTarget:
    """A parsed Redis URL: one server (``url``), or Sentinels and the service they watch."""

    url: str | None = None
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    password: str | None = None


def parse_redis_url(url: str) -> RedisTarget:
    """Parse ``url``; raises ``ValueError`` saying what is wrong with it."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme in _SINGLE_SCHEMES:
        if parts.scheme != "unix" and not parts.hostname:
            raise ValueError(f"a Redis URL needs a host: {url!r}")
        return RedisTarget(url=url)
    if parts.scheme != "redis+sentinel":
        raise ValueError(
            "a Redis URL is redis://HOST[:PORT][/DB], rediss://..., unix://PATH or "
            f"redis+sentinel://HOST[:PORT][,HOST[:PORT]...]/SERVICE[/DB], got {url!r}"
        )
    userinfo, _, hosts = parts.netloc.rpartition("@")
    password = unquote(userinfo.partition(":")[2]) if userinfo else None
    sentinels = []
    for entry in hosts.split(","):
        host, port = _host_port(entry.strip(), url)
        sentinels.append((host, port))
    path = [segment for segment in parts.path.split("/") if segment]
    if not 1 <= len(path) <= 2:
        raise ValueError(f"a Sentinel URL names the service, then optionally the DB: {url!r}")
    db = 0
    if len(path) == 2:
        if not path[1].isdigit():
            raise ValueError(f"a Redis DB is a number, got {path[1]!r} in {url!r}")
        db = int(path[1])
    return RedisTarget(
        sentinels=tuple(sentinels), service=unquote(path[0]), db=db, password=password or None
    )


def _host_port(entry: str, url: str) -> tuple[str, int]:
    if not entry:
        raise ValueError(f"an empty Sentinel address in {url!r}")
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port_text = rest.removeprefix(":")
    else:
        host, _, port_text = entry.partition(":")
    if not host:
        raise ValueError(f"a Sentinel address needs a host: {entry!r} in {url!r}")
    if not port_text:
        return host, DEFAULT_SENTINEL_PORT
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"a Sentinel port is 1-65535, got {port_text!r} in {url!r}")
    return host, int(port_text)


def connect_redis(target: RedisTarget, *, name: str = "mcu") -> Redis:
    """A client for ``target`` (no I/O until the first command). Replies are ``str``."""
    if target.url is not None:
        client: Redis = Redis.from_url(
            target.url,
            decode_responses=True,
            socket_timeout=SOCKET_TIMEOUT_S,
            socket_connect_timeout=SOCKET_TIMEOUT_S,
            health_check_interval=15,
            client_name=name,
        )
        return client
    sentinel = Sentinel(
        list(target.sentinels),
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=SOCKET_TIMEOUT_S,
    )
    primary: Redis = sentinel.master_for(
        target.service,
        db=target.db,
        password=target.password,
        decode_responses=True,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=SOCKET_TIMEOUT_S,
        client_name=name,
    )
    return primary
