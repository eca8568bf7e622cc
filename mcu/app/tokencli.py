"""``mcu token create``: mint an access token as the hospital platform would, for operators
checking a deployment and for tests. It prints the token and nothing else.

    mcu token create --api-key ID=SECRET --sub ID --name NAME --role ROLE [--room ROOM]
                     [--department DEPT] [--ttl SECONDS]

Without ``--api-key`` the first key of ``MCU_API_KEYS`` signs (flags show in the process list).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from typing import cast

from mcu.app.apikeys import parse_key_pairs
from mcu.app.argparsing import CommandLineError, QuietArgumentParser
from mcu.crypto.accesstokens import ACCESS_ROLES, AccessRole, ApiKey, issue_access_token

__all__ = ["DEFAULT_TTL_SECONDS", "token_command"]

DEFAULT_TTL_SECONDS = 3600
MAX_TTL_SECONDS = 30 * 86_400


def _parser() -> QuietArgumentParser:
    parser = QuietArgumentParser(
        prog="mcu token create",
        description="Print an access token signed with an API key (HS256).",
    )
    add = parser.add_argument
    add(
        "--api-key",
        metavar="ID=SECRET",
        help="the key to sign with (default: the first of MCU_API_KEYS)",
    )
    add("--sub", required=True, metavar="ID", help="the user's id in the platform")
    add("--name", metavar="NAME", help="the display name")
    add("--role", required=True, choices=ACCESS_ROLES, help="what the token admits as")
    add("--room", metavar="ROOM", help="the room (needed for chair, participant and viewer)")
    add("--department", metavar="DEPT", help="a staff token's library scope")
    add(
        "--ttl",
        type=int,
        default=DEFAULT_TTL_SECONDS,
        metavar="SECONDS",
        help=f"lifetime, 1-{MAX_TTL_SECONDS} (default {DEFAULT_TTL_SECONDS})",
    )
    return parser


def create_token(argv: Sequence[str], environ: Mapping[str, str], now: float) -> str:
    """The token ``mcu token create ARGV`` prints; ``ValueError`` or ``CommandLineError`` say
    what is wrong, never with a secret."""
    args = _parser().parse_args(argv)
    if args.api_key is not None:
        pairs, source = [args.api_key], "--api-key"
    else:
        pairs = [p for p in environ.get("MCU_API_KEYS", "").split(",") if p.strip()]
        source = "MCU_API_KEYS"
        if not pairs:
            raise ValueError("give --api-key ID=SECRET or set MCU_API_KEYS")
    first = parse_key_pairs(pairs, source)[0]
    key = ApiKey(first["id"], secret=first["secret"].encode())
    if not 0 < args.ttl <= MAX_TTL_SECONDS:
        raise ValueError(f"--ttl must be between 1 and {MAX_TTL_SECONDS} seconds")
    return issue_access_token(
        key,
        subject=args.sub,
        role=cast(AccessRole, args.role),
        ttl_seconds=args.ttl,
        now=now,
        name=args.name,
        room=args.room,
        department=args.department,
    )


def token_command(argv: Sequence[str], environ: Mapping[str, str]) -> int:
    """``mcu token ARGV``: the exit status."""
    if not argv or argv[0] not in ("create", "-h", "--help"):
        print("usage: mcu token create --help", file=sys.stderr)
        return 2
    if argv[0] != "create":
        _parser().print_help()
        return 0
    try:
        print(create_token(argv[1:], environ, time.time()))
    except (CommandLineError, ValueError) as exc:
        print(f"mcu token: {exc}", file=sys.stderr)
        return 2
    return 0
