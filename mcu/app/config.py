"""Server configuration: one validated, frozen model and the layered loader that fills it.

Precedence, lowest first: the defaults below, a TOML file (``--config``), ``MCU_*`` environment
variables, command-line flags. Every layer is validated together, so a bad value is reported
once, naming the field and the layer it came from.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import tomllib
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mcu.app.apikeys import ApiKeyConfig, parse_key_pairs, unique_ids
from mcu.app.argparsing import CommandLineError
from mcu.app.cluster_options import (
    CLUSTER_TABLE,
    AdvertiseUrl,
    ClusterSecret,
    RedisUrl,
    RelayAddress,
    advertised_ip,
    flatten_cluster_table,
)
from mcu.app.options import MAX_JOIN_TIMEOUT, MIN_JOIN_TIMEOUT, build_arg_parser
from mcu.app.turn_options import DEFAULT_TURN_TTL, TurnSecret, TurnTtl, TurnUrl
from mcu.signaling.rooms.grace import MAX_GRACE_SECONDS

__all__ = ["Config", "ConfigError", "IceServer", "build_arg_parser", "load_config"]

ENV_PREFIX = "MCU_"
_ICE_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")
_TURN_SCHEMES = ("turn:", "turns:")
# Values never echoed back in error messages.
_SECRET_FIELDS = frozenset(
    {
        "admin_token",
        "metrics_token",
        "credential",
        "turn_secret",
        "api_keys",
        "secret",
        "cluster_secret",
        "redis_url",  # may carry a password
    }
)
_MIN_ADMIN_TOKEN_CHARS = 16
MAX_WORKERS = 64
MAX_WEBSOCKETS = 1_000_000
MAX_AUDIT_RETENTION_DAYS = 36_500
MAX_WEBHOOK_URLS = 16
# Set by the front for the worker processes it starts; never read from a file or the environment.
_INTERNAL_FIELDS = frozenset({"worker_index"})


class ConfigError(Exception):
    """A configuration value is missing, malformed or inconsistent; the message says which."""


class _CrossFieldError(ValueError):
    """A rule spanning several fields; carries them so the error can name every source."""

    def __init__(self, message: str, fields: tuple[str, ...]) -> None:
        super().__init__(message)
        self.fields = fields


class IceServer(BaseModel):
    """A STUN or TURN server handed to browsers as an ``RTCIceServer``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    urls: list[str]
    """``stun:``, ``stuns:``, ``turn:`` or ``turns:`` URLs of one server."""
    username: str | None = None
    """TURN user name; browsers refuse a TURN URL without one."""
    # Browsers need it in clear, so not a SecretStr; kept out of repr so logs don't leak it.
    credential: str | None = Field(default=None, repr=False)
    """TURN password."""

    @field_validator("urls")
    @classmethod
    def _check_urls(cls, urls: list[str]) -> list[str]:
        if not urls:
            raise ValueError("urls must list at least one URL")
        for url in urls:
            scheme = next((s for s in _ICE_SCHEMES if url.startswith(s)), None)
            if scheme is None or not url[len(scheme) :].strip():
                raise ValueError(
                    f"ICE server URL must start with stun:, stuns:, turn: or turns: "
                    f"and name a host, got {url!r}"
                )
        return urls

    @model_validator(mode="after")
    def _turn_needs_credentials(self) -> IceServer:
        # RTCPeerConnection throws on a TURN URL without both; catch it here, not in every browser.
        needs = any(url.startswith(_TURN_SCHEMES) for url in self.urls)
        if needs and (not self.username or not self.credential):
            raise ValueError(
                "TURN servers need a username and credential (set them in the TOML file or "
                f"MCU_ICE_SERVERS), got none for {', '.join(self.urls)}"
            )
        return self


def _normalise_ip(field: str, value: str) -> str:
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        raise ValueError(f"{field} must be an IP address, got {value!r}") from None
    if address.is_unspecified or address.is_multicast:
        raise ValueError(f"{field} must be a unicast host address, got {value!r}")
    return str(address)


class Config(BaseModel):
    """Everything the server reads at start-up; immutable once loaded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    """Address the HTTP/WebSocket listener binds to."""
    port: int = 8080
    """TCP port of the HTTP/WebSocket listener."""
    data_dir: Path = Path("data")
    """Directory for the room database, secrets and recordings."""
    admin_token: SecretStr | None = None
    """Bearer token for ``/api``; when unset one is generated in ``data_dir/secrets``."""
    metrics_token: SecretStr | None = None
    """Bearer token ``/metrics`` and ``/healthz``'s counts need; unset: both are open."""
    public_ip: str | None = None
    """Address announced in ICE candidates instead of the bind address (1:1 NAT)."""
    media_addresses: list[str] = []
    """Addresses to gather ICE host candidates on; empty means every interface, loopback too."""
    rtc_port_min: int | None = None
    """Lowest UDP port for media; set together with ``rtc_port_max``."""
    rtc_port_max: int | None = None
    """Highest UDP port for media."""
    ice_servers: list[IceServer] = []
    """STUN/TURN servers offered to browsers."""
    turn_urls: list[TurnUrl] = []
    """TURN relay URLs handed to clients with credentials made from ``turn_secret``."""
    turn_secret: TurnSecret | None = None
    """The relay's shared secret (coturn's ``static-auth-secret``)."""
    turn_ttl: TurnTtl = DEFAULT_TURN_TTL
    """Seconds a handed-out TURN credential stays valid."""
    api_keys: list[ApiKeyConfig] = []
    """Keys that sign the platform's access tokens (JWTs); none: access tokens are refused.
    The first key's secret also signs webhook requests."""
    srtp_require_gcm: bool = False
    """Accept only AES-GCM SRTP protection profiles."""
    opus_fec: bool = True
    """Ask Opus senders for in-band FEC (``useinbandfec=1``) and take and pass on RED."""
    opus_dtx: bool = True
    """Ask Opus senders to stop sending during silence (``usedtx=1``)."""
    tls_cert: Path | None = None
    """PEM certificate chain for HTTPS; set together with ``tls_key``."""
    tls_key: Path | None = None
    """PEM private key for HTTPS."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Lowest severity logged."""
    log_format: Literal["text", "json"] = "text"
    """Human-readable lines or one JSON object per line."""
    max_message_bytes: int = 131072
    """Largest signalling WebSocket message accepted."""
    max_participants_default: int = 16
    """Room capacity when a room sets no ``max_participants``."""
    join_timeout: float = 15.0
    """Seconds a signalling WebSocket may stay open without joining a room (pings do not count)."""
    reconnect_grace: float = 30.0
    """Seconds a participant whose connection was lost is kept for its client to resume."""
    adapt_downlinks: bool = True
    """Fit what each subscriber is sent to its link (docs/thin-links.md); off: everything."""
    max_websockets_per_address: int = 200
    """Signalling WebSockets one client address (an IPv6 /64) may keep open at once."""
    max_websockets: int = 10_000
    """Signalling WebSockets the server keeps open at once, from all addresses."""
    max_whep_per_address: int = 100
    """WHEP sessions one client address (an IPv6 /64) may hold on one worker at once."""
    encrypt_recordings: bool = True
    """Encrypt recordings and uploaded courseware at rest (AES-256-GCM, per-file keys)."""
    audit_retention_days: int = 365
    """Days the audit trail keeps entries; older days are pruned (the chain stays verifiable)."""
    workers: int = 0
    """Worker processes behind one front process; 0 = one per CPU core, 1 = a single process."""
    worker_index: int | None = None
    """Internal: this process is worker ``worker_index`` of ``workers`` (None: not a worker)."""
    webhook_urls: list[str] = []
    """http(s) URLs the room events are POSTed to, signed (docs/webhooks.md)."""
    redis_url: RedisUrl | None = None
    """The cluster's Redis (docs/cluster.md); None: a single node."""
    advertise_url: AdvertiseUrl | None = None
    """Where other nodes and clients reach this node (cluster mode)."""
    cluster_secret: ClusterSecret | None = Field(default=None, repr=False)
    """The secret the cluster's nodes share (cluster mode)."""
    relay_address: RelayAddress | None = None
    """IPv4 address other nodes reach this node's relay sockets at (cluster mode; default: the
    advertise URL's host when it is an IPv4 address)."""

    def resolved_workers(self) -> int:
        """How many worker processes ``workers`` means here: 0 = the CPU cores this process may
        run on (its affinity, so ``taskset`` and cpusets count), else ``workers``."""
        if self.workers:
            return self.workers
        try:
            return len(os.sched_getaffinity(0)) or 1
        except (AttributeError, OSError):  # not every platform has affinity
            return os.cpu_count() or 1

    def rtc_port_slice(self, index: int, count: int) -> tuple[int, int] | None:
        """Worker ``index`` of ``count``'s share of the media port range: the ``index``-th of
        ``count`` equal slices (None when no range is configured). Raises ``ValueError`` when
        the range has fewer ports than workers.
        """
        if self.rtc_port_min is None or self.rtc_port_max is None:
            return None
        size = (self.rtc_port_max - self.rtc_port_min + 1) // count
        if size < 1:
            raise ValueError(
                f"the media port range {self.rtc_port_min}-{self.rtc_port_max} has fewer ports "
                f"than the {count} workers; widen rtc_port_min..rtc_port_max or lower workers"
            )
        low = self.rtc_port_min + index * size
        return low, low + size - 1

    @field_validator("host")
    @classmethod
    def _check_host(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("host must not be empty")
        return value.strip()

    @field_validator("port")
    @classmethod
    def _check_port(cls, value: int) -> int:
        if not 1 <= value <= 65535:
            raise ValueError(f"port must be between 1 and 65535, got {value}")
        return value

    @field_validator("admin_token", "metrics_token")
    @classmethod
    def _check_token(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < _MIN_ADMIN_TOKEN_CHARS:
            raise ValueError(
                f"{info.field_name} must be at least {_MIN_ADMIN_TOKEN_CHARS} characters"
            )
        return value

    @field_validator("api_keys")
    @classmethod
    def _check_api_keys(cls, value: list[ApiKeyConfig]) -> list[ApiKeyConfig]:
        unique_ids(value)
        return value

    @field_validator("public_ip")
    @classmethod
    def _check_public_ip(cls, value: str | None) -> str | None:
        return None if value is None else _normalise_ip("public_ip", value)

    @field_validator("media_addresses")
    @classmethod
    def _check_media_addresses(cls, values: list[str]) -> list[str]:
        normalised = [_normalise_ip("media_addresses", value) for value in values]
        return list(dict.fromkeys(normalised))

    @field_validator("rtc_port_min", "rtc_port_max")
    @classmethod
    def _check_rtc_port(cls, value: int | None, info: ValidationInfo) -> int | None:
        # Below 1024 needs privileges and collides with well-known services.
        if value is not None and not 1024 <= value <= 65535:
            raise ValueError(f"{info.field_name} must be between 1024 and 65535, got {value}")
        return value

    @field_validator("max_message_bytes")
    @classmethod
    def _check_max_message_bytes(cls, value: int) -> int:
        if not 1024 <= value <= 16 * 1024 * 1024:
            raise ValueError(f"max_message_bytes must be between 1024 and 16777216, got {value}")
        return value

    @field_validator("max_participants_default")
    @classmethod
    def _check_max_participants(cls, value: int) -> int:
        if not 1 <= value <= 1000:
            raise ValueError(f"max_participants_default must be between 1 and 1000, got {value}")
        return value

    @field_validator("join_timeout")
    @classmethod
    def _check_join_timeout(cls, value: float) -> float:
        if not MIN_JOIN_TIMEOUT <= value <= MAX_JOIN_TIMEOUT:
            raise ValueError(
                f"join_timeout must be between {MIN_JOIN_TIMEOUT:g} and {MAX_JOIN_TIMEOUT:g} "
                f"seconds, got {value:g}"
            )
        return value

    @field_validator("reconnect_grace")
    @classmethod
    def _check_reconnect_grace(cls, value: float) -> float:
        if not 0 <= value <= MAX_GRACE_SECONDS:  # also refuses nan
            raise ValueError(
                f"reconnect_grace must be between 0 and {MAX_GRACE_SECONDS:g} seconds, "
                f"got {value:g}"
            )
        return value

    @field_validator("max_websockets_per_address", "max_websockets", "max_whep_per_address")
    @classmethod
    def _check_websocket_caps(cls, value: int, info: ValidationInfo) -> int:
        if not 1 <= value <= MAX_WEBSOCKETS:
            raise ValueError(
                f"{info.field_name} must be between 1 and {MAX_WEBSOCKETS}, got {value}"
            )
        return value

    @field_validator("audit_retention_days")
    @classmethod
    def _check_audit_retention(cls, value: int) -> int:
        if not 1 <= value <= MAX_AUDIT_RETENTION_DAYS:
            raise ValueError(
                f"audit_retention_days must be between 1 and {MAX_AUDIT_RETENTION_DAYS}, "
                f"got {value}"
            )
        return value

    @field_validator("webhook_urls")
    @classmethod
    def _check_webhook_urls(cls, urls: list[str]) -> list[str]:
        if len(urls) > MAX_WEBHOOK_URLS:
            raise ValueError(f"webhook_urls: at most {MAX_WEBHOOK_URLS} URLs")
        for url in urls:
            parsed = urllib.parse.urlsplit(url)
            if parsed.scheme not in ("http", "https") or not parsed.hostname:
                raise ValueError(f"webhook_urls: {url!r} is no http:// or https:// URL with a host")
        return list(dict.fromkeys(urls))

    @field_validator("workers")
    @classmethod
    def _check_workers(cls, value: int) -> int:
        if not 0 <= value <= MAX_WORKERS:
            raise ValueError(f"workers must be between 0 and {MAX_WORKERS}, got {value}")
        return value

    @field_validator("worker_index")
    @classmethod
    def _check_worker_index(cls, value: int | None) -> int | None:
        if value is not None and not 0 <= value < MAX_WORKERS:
            raise ValueError(f"worker_index must be between 0 and {MAX_WORKERS - 1}, got {value}")
        return value

    @model_validator(mode="after")
    def _check_pairs(self) -> Config:
        ports = ("rtc_port_min", "rtc_port_max")
        if (self.rtc_port_min is None) != (self.rtc_port_max is None):
            raise _CrossFieldError("rtc_port_min and rtc_port_max must be set together", ports)
        if (
            self.rtc_port_min is not None
            and self.rtc_port_max is not None
            and self.rtc_port_min > self.rtc_port_max
        ):
            raise _CrossFieldError(
                f"rtc_port_min ({self.rtc_port_min}) must not exceed "
                f"rtc_port_max ({self.rtc_port_max})",
                ports,
            )
        if self.webhook_urls and (not self.api_keys or self.api_keys[0].secret is None):
            raise _CrossFieldError(
                "webhook_urls need an API key (api_keys) whose secret signs the requests: the "
                "first key must have a secret",
                ("webhook_urls", "api_keys"),
            )
        if (self.tls_cert is None) != (self.tls_key is None):
            raise _CrossFieldError(
                "tls_cert and tls_key must be set together", ("tls_cert", "tls_key")
            )
        if self.worker_index is not None:
            if self.worker_index >= self.workers:
                raise _CrossFieldError(
                    f"worker_index ({self.worker_index}) must be below workers ({self.workers})",
                    ("worker_index", "workers"),
                )
            try:
                self.rtc_port_slice(self.worker_index, self.workers)
            except ValueError as exc:
                raise _CrossFieldError(
                    str(exc), ("rtc_port_min", "rtc_port_max", "workers")
                ) from None
        elif self.workers > 1:
            try:
                self.rtc_port_slice(0, self.workers)
            except ValueError as exc:
                raise _CrossFieldError(
                    str(exc), ("rtc_port_min", "rtc_port_max", "workers")
                ) from None
        return self

    @model_validator(mode="after")
    def _check_turn(self) -> Config:
        # Either half alone is a mistake: URLs without a secret cannot be used, a secret without
        # URLs is never handed out.
        if bool(self.turn_urls) != (self.turn_secret is not None):
            raise _CrossFieldError(
                "turn_urls and turn_secret must be set together", ("turn_urls", "turn_secret")
            )
        return self

    @model_validator(mode="after")
    def _check_cluster(self) -> Config:
        # A node nobody can reach, or one that cannot prove it belongs, is no node at all.
        if self.redis_url is not None and (
            self.advertise_url is None or self.cluster_secret is None
        ):
            raise _CrossFieldError(
                "redis_url needs advertise_url and cluster_secret",
                ("redis_url", "advertise_url", "cluster_secret"),
            )
        if self.redis_url is None and (
            self.advertise_url is not None or self.cluster_secret is not None
        ):
            raise _CrossFieldError(
                "advertise_url and cluster_secret apply to a cluster: set redis_url too",
                ("redis_url", "advertise_url", "cluster_secret"),
            )
        if self.redis_url is None and self.relay_address is not None:
            raise _CrossFieldError(
                "relay_address applies to a cluster: set redis_url too",
                ("redis_url", "relay_address"),
            )
        # A generated token would differ from node to node, and so would the admin API.
        if self.redis_url is not None and self.admin_token is None:
            raise _CrossFieldError(
                "a cluster needs admin_token (MCU_ADMIN_TOKEN), the same on every node",
                ("redis_url", "admin_token"),
            )
        if (
            self.advertise_url is not None
            and self.relay_address is None
            and advertised_ip(self.advertise_url) is None
        ):
            raise _CrossFieldError(
                "advertise_url's host is no IPv4 address: set relay_address, the address other "
                "nodes reach this node's relay sockets at",
                ("advertise_url", "relay_address"),
            )
        return self

    @property
    def clustered(self) -> bool:
        """Whether this server is a node of a cluster (``redis_url`` is set)."""
        return self.redis_url is not None

    @property
    def relay_host(self) -> str:
        """The address this server's relay sockets bind: reachable by other nodes in a cluster
        (``relay_address``, else the advertise URL's IPv4 host), loopback otherwise."""
        if self.relay_address is not None:
            return self.relay_address
        if self.advertise_url is not None:
            return advertised_ip(self.advertise_url) or "127.0.0.1"
        return "127.0.0.1"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration file: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    # The cluster's settings live in their [cluster] table only.
    public = [
        field
        for field in Config.model_fields
        if field not in _INTERNAL_FIELDS and field not in CLUSTER_TABLE.values()
    ]
    cluster = data.pop("cluster", None)
    for key in data:
        if key not in public:
            close = difflib.get_close_matches(key, [*public, "cluster"], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{path}: unknown key {key!r}{hint}")
    if cluster is not None:
        try:
            data.update(flatten_cluster_table(cluster, str(path)))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return data


def _read_environ(environ: Mapping[str, str]) -> dict[str, tuple[str, Any]]:
    """Field name -> (variable name, raw value); empty variables count as unset."""
    values: dict[str, tuple[str, Any]] = {}
    for field in Config.model_fields:
        if field in _INTERNAL_FIELDS:
            continue
        name = ENV_PREFIX + field.upper()
        raw = environ.get(name, "")
        if not raw.strip():
            continue
        value: Any = raw
        if field in ("media_addresses", "turn_urls", "webhook_urls"):
            value = [part.strip() for part in raw.split(",") if part.strip()]
        elif field == "ice_servers":
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{name}: invalid JSON: {exc}") from None
        elif field == "api_keys":
            value = _key_pairs(raw.split(","), name)
        values[field] = (name, value)
    return values


def _key_pairs(pairs: Sequence[str], source: str) -> list[dict[str, str]]:
    try:
        return parse_key_pairs(pairs, source)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _flag_name(field: str) -> str:
    return {
        "media_addresses": "--media-address",
        "ice_servers": "--ice-server",
        "turn_urls": "--turn-url",
        "api_keys": "--api-key",
        "webhook_urls": "--webhook-url",
    }.get(field, "--" + field.replace("_", "-"))


def _loc_path(loc: Sequence[int | str]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else part)
    return path


_TYPE_MESSAGES = {
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "list_type": "must be a list",
    "string_type": "must be a string",
    "missing": "is required",
}


def _describe(error: Mapping[str, Any], sources: Mapping[str, str]) -> str:
    loc: tuple[int | str, ...] = tuple(error["loc"])
    field = str(loc[0]) if loc else ""
    source = sources.get(field, "default")
    path = _loc_path(loc)
    kind = error["type"]
    if kind == "value_error":
        exc = error["ctx"]["error"]
        message = str(exc)
        if isinstance(exc, _CrossFieldError):
            given = [sources[f] for f in exc.fields if f in sources]
            source = ", ".join(dict.fromkeys(given)) or "default"
        elif len(loc) > 1:
            message = f"{path}: {message}"
        return f"{source}: {message}"
    if kind == "extra_forbidden":
        return f"{source}: unknown key {path!r}"
    if kind == "literal_error":
        message = f"{path} must be {error['ctx']['expected']}"
    elif kind in _TYPE_MESSAGES:
        message = f"{path} {_TYPE_MESSAGES[kind]}"
    else:
        message = f"{path}: {str(error['msg'])[:1].lower()}{str(error['msg'])[1:]}"
    value = error.get("input")
    secret = any(part in _SECRET_FIELDS for part in loc)
    if kind != "missing" and not secret and isinstance(value, str | int | float | bool):
        message += f", got {value!r}"
    return f"{source}: {message}"


def load_config(argv: Sequence[str] | None, environ: Mapping[str, str]) -> Config:
    """Build the configuration from flags (``argv``, default ``sys.argv[1:]``), ``environ`` and
    the TOML file they name; raises ``ConfigError`` naming the field and source of a bad value.
    """
    try:
        flags = vars(build_arg_parser().parse_args(argv))
    except CommandLineError as exc:
        raise ConfigError(str(exc)) from None
    raw: dict[str, Any] = {}
    sources: dict[str, str] = {}

    config_path = flags.pop("config", None) or environ.get(ENV_PREFIX + "CONFIG") or None
    if config_path is not None:
        path = Path(config_path)
        for field, value in _read_toml(path).items():
            raw[field], sources[field] = value, str(path)

    for field, (name, value) in _read_environ(environ).items():
        raw[field], sources[field] = value, name

    for field, value in flags.items():
        if field == "ice_servers":
            value = [{"urls": [url]} for url in value]
        elif field == "api_keys":
            value = _key_pairs(value, "--api-key")
        raw[field], sources[field] = value, _flag_name(field)

    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        lines = dict.fromkeys(_describe(error, sources) for error in exc.errors())
        raise ConfigError("\n".join(lines)) from None
