"""The TURN relay's settings (--turn-url, --turn-secret, --turn-ttl) and what clients are handed."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import pytest

from mcu.app.config import ConfigError, build_arg_parser, load_config
from mcu.app.server import client_ice_servers
from mcu.sfu.peer import IceServerConfig
from mcu.sfu.turn import ClientIceServers, TurnRelay
from mcu.signaling.endpoints.whip import ice_server_links

SECRET = "a-shared-secret-of-coturn"
NOW = 1_700_000_000.0


def error_for(argv: list[str], environ: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(argv, environ)
    return str(caught.value)


def test_defaults_hand_out_no_relay() -> None:
    config = load_config([], {})
    assert (config.turn_urls, config.turn_secret, config.turn_ttl) == ([], None, 86400)
    assert client_ice_servers(config).issue("p1", NOW) == []


def test_flags_env_and_toml(tmp_path: Path) -> None:
    flags = load_config(
        [
            "--turn-url", "turn:turn.example.org:3478?transport=udp",
            "--turn-url", "turns:turn.example.org:443?transport=tcp",
            "--turn-ttl", "7200",
        ],
        {"MCU_TURN_SECRET": SECRET},
    )  # fmt: skip
    assert flags.turn_urls == [
        "turn:turn.example.org:3478?transport=udp",
        "turns:turn.example.org:443?transport=tcp",
    ]
    assert flags.turn_secret is not None and flags.turn_secret.get_secret_value() == SECRET
    assert flags.turn_ttl == 7200

    env = load_config(
        [],
        {
            "MCU_TURN_URLS": "turn:10.0.0.5:3478?transport=udp, turn:10.0.0.5:3478?transport=tcp",
            "MCU_TURN_SECRET": SECRET,
            "MCU_TURN_TTL": "3600",
        },
    )
    assert env.turn_urls == ["turn:10.0.0.5:3478?transport=udp", "turn:10.0.0.5:3478?transport=tcp"]
    assert env.turn_ttl == 3600

    path = tmp_path / "mcu.toml"
    path.write_text(
        f'turn_urls = ["turn:[2001:db8::5]:3478"]\nturn_secret = "{SECRET}"\n', encoding="utf-8"
    )
    toml = load_config(["--config", str(path)], {})
    assert toml.turn_urls == ["turn:[2001:db8::5]:3478"]


def test_errors_name_the_setting_and_never_the_secret() -> None:
    assert error_for(["--turn-url", "turn:t.example:3478"], {}) == (
        "--turn-url: turn_urls and turn_secret must be set together"
    )
    assert error_for([], {"MCU_TURN_SECRET": SECRET}) == (
        "MCU_TURN_SECRET: turn_urls and turn_secret must be set together"
    )
    message = error_for(["--turn-url", "turn:t.example"], {"MCU_TURN_SECRET": "hunter2"})
    assert message == "MCU_TURN_SECRET: turn_secret must be at least 16 characters"
    assert "hunter2" not in message
    for bad in (
        "stun:t.example:3478",
        "turn:",
        "turn:t.example:3478?transport=sctp",
        "turn:user@t.example",
        "https://t.example",
    ):
        message = error_for(["--turn-url", bad], {"MCU_TURN_SECRET": SECRET})
        assert message.startswith("--turn-url: turn_urls[0]: a TURN URL is turn:HOST"), message
    assert "port must be between 1 and 65535" in error_for(
        ["--turn-url", "turn:t.example:99999"], {"MCU_TURN_SECRET": SECRET}
    )
    assert error_for(
        ["--turn-url", "turn:t.example", "--turn-ttl", "60"], {"MCU_TURN_SECRET": SECRET}
    ) == ("--turn-ttl: turn_ttl must be between 600 and 604800 seconds, got 60")
    assert "turn_ttl must be a whole number" in error_for(["--turn-ttl", "a day"], {})


def test_help_names_the_variables() -> None:
    text = " ".join(build_arg_parser().format_help().split())
    for name in ("--turn-url", "--turn-secret", "--turn-ttl"):
        assert name in text
    for name in ("MCU_TURN_URLS", "MCU_TURN_SECRET", "MCU_TURN_TTL"):
        assert name in text


def test_clients_get_configured_servers_and_a_fresh_relay_credential() -> None:
    config = load_config(
        [
            "--ice-server", "stun:stun.example.org:3478",
            "--turn-url", "turn:turn.example.org:3478?transport=udp",
            "--turn-url", "turn:turn.example.org:3478?transport=tcp",
        ],
        {"MCU_TURN_SECRET": SECRET, "MCU_TURN_TTL": "3600"},
    )  # fmt: skip
    servers = client_ice_servers(config).issue("p1a2", NOW)
    assert servers[0] == IceServerConfig(urls=("stun:stun.example.org:3478",))
    relay = servers[1]
    assert relay.urls == (
        "turn:turn.example.org:3478?transport=udp",
        "turn:turn.example.org:3478?transport=tcp",
    )
    assert relay.username == "1700003600:p1a2"
    expected = hmac.new(SECRET.encode(), b"1700003600:p1a2", hashlib.sha1).digest()
    assert relay.credential == base64.b64encode(expected).decode()
    # Neither the secret nor a password shows in what a log line would print.
    assert SECRET not in repr(client_ice_servers(config))
    assert relay.credential not in repr(relay)


def test_each_client_and_moment_gets_its_own_credential() -> None:
    ice = ClientIceServers(relay=TurnRelay(urls=("turn:t:3478",), secret=b"s" * 16, ttl=600))
    first = ice.issue("p1", NOW)[0]
    assert ice.issue("p2", NOW)[0].credential != first.credential
    later = ice.issue("p1", NOW + 60)[0]
    assert later.username == f"{int(NOW) + 660}:p1" and later.credential != first.credential


def test_link_headers_follow_rfc_9725() -> None:
    links = ice_server_links(
        [
            IceServerConfig(urls=("stun:stun.example.org:3478",)),
            IceServerConfig(
                urls=("turn:t.example:3478?transport=udp", "turns:t.example:443?transport=tcp"),
                username="1700003600:p1",
                credential='a"b\\c=',
            ),
        ]
    )
    assert links == [
        '<stun:stun.example.org:3478>; rel="ice-server"',
        '<turn:t.example:3478?transport=udp>; rel="ice-server"; username="1700003600:p1"; '
        'credential="a\\"b\\\\c="; credential-type="password"',
        '<turns:t.example:443?transport=tcp>; rel="ice-server"; username="1700003600:p1"; '
        'credential="a\\"b\\\\c="; credential-type="password"',
    ]
    assert ice_server_links([]) == []
