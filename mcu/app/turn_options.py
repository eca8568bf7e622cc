"""The TURN relay's options (``--turn-url``, ``--turn-secret``, ``--turn-ttl``): their flags and
the checks on their values, kept beside :mod:`mcu.app.config`, which holds the fields."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, SecretStr

__all__ = [
    "DEFAULT_TURN_TTL",
    "MAX_TURN_TTL",
    "MIN_TURN_SECRET_CHARS",
    "MIN_TURN_TTL",
    "TurnSecret",
    "TurnTtl",
    "TurnUrl",
    "add_turn_arguments",
]

DEFAULT_TURN_TTL = 86400
"""A day. coturn checks the expiry on every Refresh of an allocation (every ~10 minutes), so a
credential that expires mid-lesson drops that client's relay within minutes: it must outlive the
longest session, a full day of a lesson or a clinic's open consultation room. A rejoin gets a
fresh one. A day also bounds how long a credential copied out of a page can be used to relay."""
MIN_TURN_TTL = 600
"""Below coturn's default allocation lifetime a credential could expire before its first refresh."""
MAX_TURN_TTL = 7 * 86400
"""A leaked credential relays for at most a week."""
MIN_TURN_SECRET_CHARS = 16
"""Whoever knows the secret can mint credentials; a short one can be guessed offline from one."""

# turn:HOST[:PORT][?transport=udp|tcp] (RFC 7065); HOST a name, an IPv4 address or [IPv6].
_TURN_URL = re.compile(
    r"turns?:(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?(?:\?transport=(?:udp|tcp))?"
)


def _check_turn_url(url: str) -> str:
    url = url.strip()
    if _TURN_URL.fullmatch(url) is None:
        raise ValueError(
            "a TURN URL is turn:HOST[:PORT] or turns:HOST[:PORT], optionally with "
            f"?transport=udp or ?transport=tcp, got {url!r}"
        )
    port = url.rpartition("]")[2].split("?")[0].rpartition(":")[2]
    if port.isdigit() and not 1 <= int(port) <= 65535:
        raise ValueError(f"a TURN URL's port must be between 1 and 65535, got {url!r}")
    return url


def _check_turn_secret(value: SecretStr) -> SecretStr:
    # The message never repeats the value (config.py's error reporting keeps it out as well).
    if len(value.get_secret_value()) < MIN_TURN_SECRET_CHARS:
        raise ValueError(f"turn_secret must be at least {MIN_TURN_SECRET_CHARS} characters")
    return value


def _check_turn_ttl(value: int) -> int:
    if not MIN_TURN_TTL <= value <= MAX_TURN_TTL:
        raise ValueError(
            f"turn_ttl must be between {MIN_TURN_TTL} and {MAX_TURN_TTL} seconds, got {value}"
        )
    return value


TurnUrl = Annotated[str, AfterValidator(_check_turn_url)]
"""A ``turn:`` or ``turns:`` URL."""
TurnSecret = Annotated[SecretStr, AfterValidator(_check_turn_secret)]
"""coturn's ``static-auth-secret``."""
TurnTtl = Annotated[int, AfterValidator(_check_turn_ttl)]
"""Lifetime of a handed-out credential, in seconds."""


def add_turn_arguments(add: Callable[..., Any]) -> None:
    """Add the TURN flags with ``add`` (a parser's ``add_argument``)."""
    add(
        "--turn-url",
        metavar="URL",
        dest="turn_urls",
        action="append",
        help="TURN relay URL handed to clients with time-limited credentials "
        "(turn:HOST:3478?transport=udp, turn:HOST:3478?transport=tcp, "
        "turns:HOST:443?transport=tcp); repeat for several; needs --turn-secret "
        "(env MCU_TURN_URLS, comma-separated)",
    )
    add(
        "--turn-secret",
        metavar="SECRET",
        dest="turn_secret",
        help="the relay's shared secret (coturn's static-auth-secret), at least "
        f"{MIN_TURN_SECRET_CHARS} characters; prefer MCU_TURN_SECRET, since flags are visible in "
        "the process list",
    )
    add(
        "--turn-ttl",
        metavar="SECONDS",
        dest="turn_ttl",
        help=f"how long a handed-out TURN credential is valid, {MIN_TURN_TTL}-{MAX_TURN_TTL} "
        f"(env MCU_TURN_TTL; default {DEFAULT_TURN_TTL}, a day)",
    )
