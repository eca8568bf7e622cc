"""The ``mcu`` command line: every flag, its help, and the variable or TOML key it stands for.

Only flags actually given appear in the parsed namespace (:mod:`mcu.app.config` layers them over
the TOML file and the environment and validates the whole).
"""

from __future__ import annotations

import argparse

from mcu.app.argparsing import QuietArgumentParser
from mcu.app.cluster_options import add_cluster_arguments
from mcu.app.turn_options import add_turn_arguments
from mcu.signaling.rooms.grace import MAX_GRACE_SECONDS

__all__ = ["MAX_JOIN_TIMEOUT", "MIN_JOIN_TIMEOUT", "build_arg_parser"]

MIN_JOIN_TIMEOUT = 0.5
"Shortest ``join_timeout``, seconds."
MAX_JOIN_TIMEOUT = 600.0
"Longest ``join_timeout``, seconds."


def build_arg_parser() -> argparse.ArgumentParser:
    """The ``mcu`` command line; only flags actually given appear in the parsed namespace."""
    parser = QuietArgumentParser(
        prog="mcu",
        description="Selective forwarding media server for telemedicine rooms and lessons.",
        epilog=(
            "Settings come from, lowest precedence first: built-in defaults, the TOML file "
            "(--config), MCU_* environment variables, then these flags. "
            "See docs/configuration.md. 'mcu token create --help': mint an access token."
        ),
        argument_default=argparse.SUPPRESS,
    )
    add = parser.add_argument
    add("--config", metavar="PATH", help="TOML configuration file (env MCU_CONFIG)")
    add(
        "--host",
        metavar="ADDR",
        help="address to listen on for HTTP/WebSocket (env MCU_HOST; default 127.0.0.1)",
    )
    add("--port", metavar="N", help="TCP port to listen on, 1-65535 (env MCU_PORT; default 8080)")
    add(
        "--data-dir",
        metavar="DIR",
        dest="data_dir",
        help="directory for the room database, "
        "secrets and recordings (env MCU_DATA_DIR; default ./data)",
    )
    add(
        "--admin-token",
        metavar="TOKEN",
        dest="admin_token",
        help="bearer token for the /api "
        "admin API, at least 16 characters; prefer MCU_ADMIN_TOKEN, since flags are visible "
        "in the process list (default: generated into DATA_DIR/secrets/admin-token)",
    )
    add(
        "--metrics-token",
        metavar="TOKEN",
        dest="metrics_token",
        help="bearer token that /metrics and the counts in /healthz require, at least 16 "
        "characters; prefer MCU_METRICS_TOKEN (default: unset, both open)",
    )
    add(
        "--public-ip",
        metavar="ADDR",
        dest="public_ip",
        help="IP address to announce in ICE "
        "candidates instead of the local one, for 1:1 NAT (env MCU_PUBLIC_IP)",
    )
    add(
        "--media-address",
        metavar="ADDR",
        dest="media_addresses",
        action="append",
        help="IP address to gather ICE host candidates on; repeat for several "
        "(env MCU_MEDIA_ADDRESSES, comma-separated; default: every interface "
        "address, loopback included)",
    )
    add(
        "--rtc-port-min",
        metavar="N",
        dest="rtc_port_min",
        help="lowest UDP port for media, "
        "1024-65535; needs --rtc-port-max (env MCU_RTC_PORT_MIN; default: any port)",
    )
    add(
        "--rtc-port-max",
        metavar="N",
        dest="rtc_port_max",
        help="highest UDP port for media, 1024-65535 (env MCU_RTC_PORT_MAX)",
    )
    add(
        "--ice-server",
        metavar="URL",
        dest="ice_servers",
        action="append",
        help="STUN URL offered to browsers (stun:host:port); repeat for several. TURN servers "
        "need credentials, so give those in the TOML file or MCU_ICE_SERVERS (JSON)",
    )
    add(
        "--api-key",
        metavar="ID=SECRET",
        dest="api_keys",
        action="append",
        help="an API key that signs the platform's access tokens (HS256; the secret at least "
        "32 bytes; the first key's secret also signs webhook requests); repeat for several. "
        "Prefer MCU_API_KEYS (comma-separated ID=SECRET pairs) or the TOML file, which also "
        "takes ES256 public keys (default: none)",
    )
    add(
        "--srtp-require-gcm",
        dest="srtp_require_gcm",
        action=argparse.BooleanOptionalAction,
        help="accept only AES-GCM SRTP profiles (env MCU_SRTP_REQUIRE_GCM; default off)",
    )
    add(
        "--opus-fec",
        dest="opus_fec",
        action=argparse.BooleanOptionalAction,
        help="ask Opus senders for in-band FEC and accept and forward RED redundancy "
        "(env MCU_OPUS_FEC; default on)",
    )
    add(
        "--opus-dtx",
        dest="opus_dtx",
        action=argparse.BooleanOptionalAction,
        help="ask Opus senders to stop sending during silence (env MCU_OPUS_DTX; default on)",
    )
    add(
        "--encrypt-recordings",
        dest="encrypt_recordings",
        action=argparse.BooleanOptionalAction,
        help="encrypt recordings and courseware at rest (env MCU_ENCRYPT_RECORDINGS; default on)",
    )
    add(
        "--tls-cert",
        metavar="PATH",
        dest="tls_cert",
        help="PEM certificate chain to serve HTTPS; needs --tls-key (env MCU_TLS_CERT)",
    )
    add(
        "--tls-key",
        metavar="PATH",
        dest="tls_key",
        help="PEM private key for --tls-cert (env MCU_TLS_KEY)",
    )
    add(
        "--workers",
        metavar="N",
        help="worker processes behind one front process, 0-64; 0 = one per CPU core, "
        "1 = everything in a single process (env MCU_WORKERS; default 0)",
    )
    add(
        "--join-timeout",
        metavar="SECONDS",
        dest="join_timeout",
        help="close a signalling WebSocket that has not joined a room after this long, "
        f"{MIN_JOIN_TIMEOUT:g}-{MAX_JOIN_TIMEOUT:g}; pings do not extend it "
        "(env MCU_JOIN_TIMEOUT; default 15)",
    )
    add(
        "--reconnect-grace",
        metavar="SECONDS",
        dest="reconnect_grace",
        help="keep a participant whose connection was lost this long for its client to resume "
        f"as the same participant, 0-{MAX_GRACE_SECONDS:g}; 0 = a lost connection is a leave "
        "(env MCU_RECONNECT_GRACE; default 30)",
    )
    add(
        "--adapt-downlinks",
        dest="adapt_downlinks",
        action=argparse.BooleanOptionalAction,
        help="fit what each subscriber is sent to its link: fewer frames, the speaker only, ... "
        "(env MCU_ADAPT_DOWNLINKS; default on; off sends everyone everything, for comparisons)",
    )
    add(
        "--max-websockets-per-address",
        metavar="N",
        dest="max_websockets_per_address",
        help="signalling WebSockets one client address (IPv6: one /64) may keep open; more "
        "are refused with 429 (env MCU_MAX_WEBSOCKETS_PER_ADDRESS; default 200)",
    )
    add(
        "--max-whep-per-address",
        metavar="N",
        dest="max_whep_per_address",
        help="WHEP sessions one client address (IPv6: one /64) may hold on one worker; more "
        "are refused with 429 (env MCU_MAX_WHEP_PER_ADDRESS; default 100)",
    )
    add(
        "--max-websockets",
        metavar="N",
        dest="max_websockets",
        help="signalling WebSockets the server keeps open in all; more are refused with 503 "
        "(env MCU_MAX_WEBSOCKETS; default 10000)",
    )
    add_turn_arguments(add)
    add_cluster_arguments(add)
    add(
        "--audit-retention-days",
        metavar="DAYS",
        dest="audit_retention_days",
        help="days the audit trail keeps entries, 1-36500 (env MCU_AUDIT_RETENTION_DAYS; "
        "default 365)",
    )
    add(
        "--webhook-url",
        metavar="URL",
        dest="webhook_urls",
        action="append",
        help="http(s) URL that room events are POSTed to, signed; repeat for several "
        "(env MCU_WEBHOOK_URLS, comma-separated; needs an API key)",
    )
    # Internal: the front starts worker i with this flag; not for operators.
    add("--worker-index", metavar="I", dest="worker_index", help=argparse.SUPPRESS)
    add(
        "--log-level",
        metavar="LEVEL",
        dest="log_level",
        help="debug, info, warning or error (env MCU_LOG_LEVEL; default info)",
    )
    add(
        "--log-format",
        metavar="FORMAT",
        dest="log_format",
        help="text or json (env MCU_LOG_FORMAT; default text)",
    )
    return parser
