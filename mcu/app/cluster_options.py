"""The cluster's options (``--redis-url``, ``--advertise-url``, ``--cluster-secret``,
``--relay-address``): their
flags, the checks on their values and the TOML ``[cluster]`` table, kept beside
:mod:`mcu.app.config`, which holds the fields.

Without ``redis_url`` the server is the single node it always was (rooms in SQLite under the
data directory). With it, nodes share rooms, invites and liveness through Redis
(docs/cluster.md); each needs the URL the others and the clients reach it at, and all share one
secret that authenticates calls between nodes and keys the media relayed between them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, SecretStr

from mcu.infra.redisconn import parse_redis_url

__all__ = [
    "CLUSTER_TABLE",
    "MIN_CLUSTER_SECRET_CHARS",
    "AdvertiseUrl",
    "ClusterSecret",
    "RedisUrl",
    "RelayAddress",
    "add_cluster_arguments",
    "advertised_ip",
    "flatten_cluster_table",
]

MIN_CLUSTER_SECRET_CHARS = 32
"""Whoever knows the secret can act as a node: at least 32 characters (e.g. ``openssl rand -hex
32``), far beyond guessing."""

CLUSTER_TABLE = {
    "redis_url": "redis_url",
    "advertise_url": "advertise_url",
    "secret": "cluster_secret",
    "relay_address": "relay_address",
}
"""Keys of the TOML ``[cluster]`` table -> the configuration fields they set."""


def _check_redis_url(url: str) -> str:
    parse_redis_url(url)  # raises ValueError naming what is wrong
    return url.strip()


def _check_advertise_url(url: str) -> str:
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"advertise_url must be an http:// or https:// URL with a host, got {url!r}"
        )
    if parts.path or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(
            f"advertise_url is scheme, host and port only (no path, query or user), got {url!r}"
        )
    try:
        parts.port  # noqa: B018 - raises on a port outside 0-65535
    except ValueError:
        raise ValueError(f"advertise_url has an invalid port: {url!r}") from None
    return url


def _check_cluster_secret(value: SecretStr) -> SecretStr:
    # The message never repeats the value (config.py's error reporting keeps it out as well).
    if len(value.get_secret_value()) < MIN_CLUSTER_SECRET_CHARS:
        raise ValueError(f"cluster_secret must be at least {MIN_CLUSTER_SECRET_CHARS} characters")
    return value


RedisUrl = Annotated[str, AfterValidator(_check_redis_url)]
"""``redis://``, ``rediss://``, ``unix://`` or ``redis+sentinel://`` (docs/cluster.md)."""


def _check_relay_address(value: str) -> str:
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        raise ValueError(f"relay_address must be an IPv4 address, got {value!r}") from None
    if address.version != 4 or address.is_unspecified:
        raise ValueError(f"relay_address must be one IPv4 address of this machine, got {value!r}")
    return str(address)


def advertised_ip(url: str) -> str | None:
    """The host of an advertise URL when it is an IPv4 address (None: a name or IPv6)."""
    host = urlsplit(url).hostname or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return str(address) if address.version == 4 else None


AdvertiseUrl = Annotated[str, AfterValidator(_check_advertise_url)]
RelayAddress = Annotated[str, AfterValidator(_check_relay_address)]
"""``http(s)://HOST[:PORT]`` at which other nodes and clients reach this node."""
ClusterSecret = Annotated[SecretStr, AfterValidator(_check_cluster_secret)]
"""The secret every node of a cluster shares."""


def flatten_cluster_table(table: Any, path: str) -> dict[str, Any]:
    """The fields a TOML ``[cluster]`` table sets; raises ``ValueError`` on an unknown key."""
    if not isinstance(table, dict):
        raise ValueError(f"{path}: 'cluster' must be a table ([cluster])")
    fields = {}
    for key, value in table.items():
        if key not in CLUSTER_TABLE:
            known = ", ".join(sorted(CLUSTER_TABLE))
            raise ValueError(f"{path}: unknown key 'cluster.{key}' (known: {known})")
        fields[CLUSTER_TABLE[key]] = value
    return fields


def add_cluster_arguments(add: Callable[..., Any]) -> None:
    """Add the cluster flags with ``add`` (a parser's ``add_argument``)."""
    add(
        "--redis-url",
        metavar="URL",
        dest="redis_url",
        help="run as a node of a cluster sharing this Redis: redis://HOST:PORT/DB, rediss://..., "
        "or redis+sentinel://S1:26379,S2:26379/SERVICE/DB to follow Sentinel's promotions "
        "(env MCU_REDIS_URL; TOML cluster.redis_url; default: a single node); needs "
        "--advertise-url and --cluster-secret",
    )
    add(
        "--advertise-url",
        metavar="URL",
        dest="advertise_url",
        help="http(s)://HOST:PORT at which other nodes and clients reach this node "
        "(env MCU_ADVERTISE_URL; TOML cluster.advertise_url)",
    )
    add(
        "--relay-address",
        metavar="IP",
        dest="relay_address",
        help="IPv4 address of this machine at which other nodes reach its relay sockets "
        "(env MCU_RELAY_ADDRESS; TOML cluster.relay_address; default: the advertise URL's host, "
        "which must then be an IPv4 address)",
    )
    add(
        "--cluster-secret",
        metavar="SECRET",
        dest="cluster_secret",
        help=f"secret all nodes share, at least {MIN_CLUSTER_SECRET_CHARS} characters: "
        "authenticates calls between nodes and keys relayed media; prefer MCU_CLUSTER_SECRET "
        "or TOML cluster.secret, since flags are visible in the process list",
    )
