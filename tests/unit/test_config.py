"""Configuration loading: defaults, layer precedence and error messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from mcu.app.config import Config, ConfigError, IceServer, build_arg_parser, load_config


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mcu.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults() -> None:
    config = load_config([], {})
    assert config == Config()
    assert (config.host, config.port, config.data_dir) == ("127.0.0.1", 8080, Path("data"))
    assert config.admin_token is None
    assert config.public_ip is None
    assert config.media_addresses == []
    assert (config.rtc_port_min, config.rtc_port_max) == (None, None)
    assert config.ice_servers == []
    assert config.srtp_require_gcm is False
    assert (config.tls_cert, config.tls_key) == (None, None)
    assert (config.log_level, config.log_format) == ("info", "text")
    assert config.max_message_bytes == 131072
    assert config.max_participants_default == 16


def test_config_is_frozen() -> None:
    config = Config()
    with pytest.raises(ValidationError):
        config.port = 1  # type: ignore[misc]


def test_toml_then_env_then_flags(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        'host = "0.0.0.0"\nport = 1000\nlog_level = "debug"\nsrtp_require_gcm = true\n'
        "max_participants_default = 4\n",
    )
    toml_only = load_config(["--config", str(path)], {})
    assert (toml_only.host, toml_only.port, toml_only.log_level) == ("0.0.0.0", 1000, "debug")
    assert toml_only.max_participants_default == 4

    environ = {"MCU_PORT": "2000", "MCU_LOG_LEVEL": "warning"}
    with_env = load_config(["--config", str(path)], environ)
    assert (with_env.host, with_env.port, with_env.log_level) == ("0.0.0.0", 2000, "warning")

    flags = ["--config", str(path), "--port", "3000", "--no-srtp-require-gcm"]
    with_flags = load_config(flags, environ)
    assert with_flags.port == 3000
    assert with_flags.srtp_require_gcm is False
    assert with_flags.log_level == "warning"
    assert with_flags.host == "0.0.0.0"


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "port = 4444\n")
    assert load_config([], {"MCU_CONFIG": str(path)}).port == 4444


def test_every_field_from_toml(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        """
        host = "::1"
        port = 8443
        data_dir = "/var/lib/mcu"
        admin_token = "0123456789abcdef0123"
        public_ip = "203.0.113.7"
        media_addresses = ["10.0.0.5", "10.0.0.5", "fe80::1"]
        rtc_port_min = 40000
        rtc_port_max = 40100
        srtp_require_gcm = true
        tls_cert = "cert.pem"
        tls_key = "key.pem"
        log_level = "error"
        log_format = "json"
        max_message_bytes = 65536
        max_participants_default = 8

        [[ice_servers]]
        urls = ["stun:stun.example.org:3478"]

        [[ice_servers]]
        urls = ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"]
        username = "mcu"
        credential = "s3cret"
        """,
    )
    config = load_config(["--config", str(path)], {})
    assert config.admin_token is not None
    assert config.admin_token.get_secret_value() == "0123456789abcdef0123"
    assert config.media_addresses == ["10.0.0.5", "fe80::1"]
    assert (config.rtc_port_min, config.rtc_port_max) == (40000, 40100)
    assert config.ice_servers == [
        IceServer(urls=["stun:stun.example.org:3478"]),
        IceServer(
            urls=["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"],
            username="mcu",
            credential="s3cret",
        ),
    ]
    assert (config.tls_cert, config.tls_key) == (Path("cert.pem"), Path("key.pem"))
    assert (config.log_level, config.log_format) == ("error", "json")


def test_environment_lists_and_json() -> None:
    environ = {
        "MCU_MEDIA_ADDRESSES": "10.0.0.1, 192.168.1.2,",
        "MCU_ICE_SERVERS": (
            '[{"urls": ["turn:t.example:3478"], "username": "u", "credential": "c"}]'
        ),
        "MCU_SRTP_REQUIRE_GCM": "true",
        "MCU_PUBLIC_IP": "198.51.100.1",
        "MCU_HOST": "",  # empty counts as unset
    }
    config = load_config([], environ)
    assert config.media_addresses == ["10.0.0.1", "192.168.1.2"]
    assert config.ice_servers[0].username == "u"
    assert config.srtp_require_gcm is True
    assert config.public_ip == "198.51.100.1"
    assert config.host == "127.0.0.1"


def test_repeatable_flags_replace_lower_layers() -> None:
    argv = [
        "--media-address",
        "10.0.0.9",
        "--media-address",
        "10.0.0.10",
        "--ice-server",
        "stun:a.example:3478",
        "--ice-server",
        "stun:b.example:3478",
    ]
    config = load_config(argv, {"MCU_MEDIA_ADDRESSES": "10.0.0.1"})
    assert config.media_addresses == ["10.0.0.9", "10.0.0.10"]
    assert [server.urls for server in config.ice_servers] == [
        ["stun:a.example:3478"],
        ["stun:b.example:3478"],
    ]


def error_for(argv: list[str], environ: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(argv, environ)
    return str(caught.value)


def test_port_out_of_range_names_variable() -> None:
    assert error_for([], {"MCU_PORT": "70000"}) == (
        "MCU_PORT: port must be between 1 and 65535, got 70000"
    )
    assert error_for(["--port", "0"], {}) == "--port: port must be between 1 and 65535, got 0"
    assert error_for(["--port", "http"], {}) == "--port: port must be a whole number, got 'http'"


def test_toml_errors(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "prot = 80\n")
    assert error_for(["--config", str(path)], {}) == (
        f"{path}: unknown key 'prot' (did you mean 'port'?)"
    )
    path = write_toml(tmp_path, 'log_format = "xml"\n')
    assert error_for(["--config", str(path)], {}) == (
        f"{path}: log_format must be 'text' or 'json', got 'xml'"
    )
    path = write_toml(tmp_path, "port = \n")
    assert error_for(["--config", str(path)], {}).startswith(f"{path}: invalid TOML:")
    missing = tmp_path / "absent.toml"
    assert error_for(["--config", str(missing)], {}).startswith(
        f"{missing}: cannot read configuration file"
    )
    path = write_toml(tmp_path, '[[ice_servers]]\nurls = ["stun:x"]\npasword = "x"\n')
    assert error_for(["--config", str(path)], {}) == (
        f"{path}: unknown key 'ice_servers[0].pasword'"
    )


def test_paired_settings() -> None:
    assert error_for(["--rtc-port-min", "40000"], {}) == (
        "--rtc-port-min: rtc_port_min and rtc_port_max must be set together"
    )
    assert error_for(["--rtc-port-min", "40100"], {"MCU_RTC_PORT_MAX": "40000"}) == (
        "--rtc-port-min, MCU_RTC_PORT_MAX: rtc_port_min (40100) must not exceed "
        "rtc_port_max (40000)"
    )
    assert error_for(["--rtc-port-min", "80", "--rtc-port-max", "90"], {}) == (
        "--rtc-port-min: rtc_port_min must be between 1024 and 65535, got 80\n"
        "--rtc-port-max: rtc_port_max must be between 1024 and 65535, got 90"
    )
    assert error_for([], {"MCU_TLS_KEY": "key.pem"}) == (
        "MCU_TLS_KEY: tls_cert and tls_key must be set together"
    )


def test_address_and_ice_server_errors() -> None:
    assert error_for(["--public-ip", "example.org"], {}) == (
        "--public-ip: public_ip must be an IP address, got 'example.org'"
    )
    assert error_for([], {"MCU_MEDIA_ADDRESSES": "10.0.0.1,0.0.0.0"}) == (
        "MCU_MEDIA_ADDRESSES: media_addresses must be a unicast host address, got '0.0.0.0'"
    )
    assert "must start with stun:, stuns:, turn: or turns:" in error_for(
        ["--ice-server", "https://stun.example"], {}
    )
    assert "TURN servers need a username and credential" in error_for(
        ["--ice-server", "turn:turn.example:3478"], {}
    )
    assert error_for([], {"MCU_ICE_SERVERS": "[{"}).startswith("MCU_ICE_SERVERS: invalid JSON")
    assert error_for([], {"MCU_ICE_SERVERS": '{"urls": ["stun:x"]}'}) == (
        "MCU_ICE_SERVERS: ice_servers must be a list"
    )


def test_admin_token_errors_do_not_echo_it() -> None:
    message = error_for([], {"MCU_ADMIN_TOKEN": "hunter2"})
    assert message == "MCU_ADMIN_TOKEN: admin_token must be at least 16 characters"
    assert "hunter2" not in message


def test_bad_flags_are_config_errors() -> None:
    assert error_for(["--bogus"], {}) == "command line: unknown option --bogus"
    assert error_for(["--port"], {}).startswith("command line: argument --port")


def test_help_names_environment_variables() -> None:
    text = " ".join(build_arg_parser().format_help().split())
    for field in (
        "host",
        "port",
        "data_dir",
        "admin_token",
        "public_ip",
        "media_addresses",
        "rtc_port_min",
        "rtc_port_max",
        "ice_servers",
        "srtp_require_gcm",
        "tls_cert",
        "tls_key",
        "log_level",
        "log_format",
        "join_timeout",
        "reconnect_grace",
        "adapt_downlinks",
        "max_websockets_per_address",
        "max_websockets",
    ):
        assert f"MCU_{field.upper()}" in text, field


def test_reconnect_grace_from_every_layer(tmp_path: Path) -> None:
    assert Config().reconnect_grace == 30.0
    path = write_toml(tmp_path, "reconnect_grace = 45\n")
    assert load_config(["--config", str(path)], {}).reconnect_grace == 45.0
    assert load_config([], {"MCU_RECONNECT_GRACE": "0"}).reconnect_grace == 0.0
    assert load_config(["--reconnect-grace", "5"], {}).reconnect_grace == 5.0


def test_downlink_adaptation_from_every_layer(tmp_path: Path) -> None:
    assert Config().adapt_downlinks is True
    path = write_toml(tmp_path, "adapt_downlinks = false\n")
    assert load_config(["--config", str(path)], {}).adapt_downlinks is False
    assert load_config([], {"MCU_ADAPT_DOWNLINKS": "false"}).adapt_downlinks is False
    assert (
        load_config(["--no-adapt-downlinks"], {"MCU_ADAPT_DOWNLINKS": "1"}).adapt_downlinks is False
    )
    assert load_config(["--adapt-downlinks"], {"MCU_ADAPT_DOWNLINKS": "0"}).adapt_downlinks is True


def test_websocket_limits_from_every_layer(tmp_path: Path) -> None:
    assert (Config().join_timeout, Config().max_websockets_per_address) == (15.0, 200)
    assert Config().max_websockets == 10_000
    path = write_toml(
        tmp_path,
        "join_timeout = 12.5\nmax_websockets_per_address = 50\nmax_websockets = 900\n",
    )
    config = load_config(["--config", str(path)], {})
    assert (config.join_timeout, config.max_websockets_per_address) == (12.5, 50)
    assert config.max_websockets == 900
    config = load_config(
        ["--config", str(path), "--join-timeout", "3", "--max-websockets", "7"],
        {"MCU_MAX_WEBSOCKETS_PER_ADDRESS": "4", "MCU_JOIN_TIMEOUT": "9"},
    )
    assert (config.join_timeout, config.max_websockets_per_address) == (3.0, 4)
    assert config.max_websockets == 7


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (["--join-timeout", "0"], {}, "--join-timeout: join_timeout must be between 0.5 and 600"),
        (["--reconnect-grace", "-1"], {}, "--reconnect-grace: reconnect_grace must be between 0"),
        ([], {"MCU_RECONNECT_GRACE": "nan"}, "MCU_RECONNECT_GRACE: reconnect_grace must be"),
        ([], {"MCU_JOIN_TIMEOUT": "nan"}, "MCU_JOIN_TIMEOUT: join_timeout must be between"),
        ([], {"MCU_JOIN_TIMEOUT": "soon"}, "MCU_JOIN_TIMEOUT: join_timeout must be a number"),
        (["--max-websockets", "0"], {}, "--max-websockets: max_websockets must be between 1"),
        (
            [],
            {"MCU_MAX_WEBSOCKETS_PER_ADDRESS": "-1"},
            "MCU_MAX_WEBSOCKETS_PER_ADDRESS: max_websockets_per_address must be between 1",
        ),
    ],
)
def test_websocket_limit_errors(argv: list[str], environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(argv, environ)
    assert str(info.value).startswith(message)


SECRET = "k9Qe1-platform-signing-secret-0123456789"
"A 40-byte API key secret: no error message may contain it."


def test_api_keys_from_every_layer(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        f"""
        [[api_keys]]
        id = "toml-key"
        secret = "{SECRET}"
        """,
    )
    from_toml = load_config(["--config", str(path)], {}).api_keys
    assert [(k.id, k.secret.get_secret_value() if k.secret else None) for k in from_toml] == [
        ("toml-key", SECRET)
    ]
    environ = {"MCU_API_KEYS": f"his={SECRET}, pacs={SECRET}=="}
    from_env = load_config([], environ).api_keys
    assert [k.id for k in from_env] == ["his", "pacs"]
    assert from_env[1].secret is not None and from_env[1].secret.get_secret_value() == SECRET + "=="
    flags = ["--api-key", f"a={SECRET}", "--api-key", f"b={SECRET}"]
    assert [k.id for k in load_config(flags, environ).api_keys] == ["a", "b"]
    assert SECRET not in repr(load_config(flags, environ))


def test_public_api_key_from_toml(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from mcu.app.apikeys import api_keys

    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = tmp_path / "platform.pem"
    pem.write_bytes(
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    path = write_toml(tmp_path, f'[[api_keys]]\nid = "es"\npublic_key_file = "{pem}"\n')
    (key,) = api_keys(load_config(["--config", str(path)], {}).api_keys)
    assert key.algorithm == "ES256" and key.public_key is not None
    (tmp_path / "not.pem").write_text("nothing")
    bad = write_toml(tmp_path, f'[[api_keys]]\nid = "es"\npublic_key_file = "{tmp_path}/not.pem"\n')
    assert "not a PEM public key" in error_for(["--config", str(bad)], {})


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        # A mistyped flag is followed by its value: name the flag, never the value.
        (
            ["--admin-tokn", SECRET],
            {},
            "command line: unknown option --admin-tokn (did you mean --admin-token?); "
            "1 unexpected value (not shown)",
        ),
        (
            ["--api-kye=k=" + SECRET],
            {},
            "command line: unknown option --api-kye (did you mean --api-key?)",
        ),
        (["--metrics-token", SECRET, SECRET], {}, "command line: 1 unexpected value (not shown)"),
        (
            ["--srtp-require-gcm=" + SECRET],
            {},
            "command line: argument --srtp-require-gcm/--no-srtp-require-gcm: "
            "ignored explicit argument '<value not shown>'",
        ),
        (["--api-key", SECRET], {}, "--api-key: API key 1 must be ID=SECRET"),
        (
            ["--api-key", "k=short-secret"],
            {},
            "--api-key: api_keys[0].secret: secret must be at least 32 bytes",
        ),
        ([], {"MCU_API_KEYS": f"k={SECRET},{SECRET}"}, "MCU_API_KEYS: API key 2 must be ID=SECRET"),
        (
            ["--api-key", f"k={SECRET}", "--api-key", f"k={SECRET}x"],
            {},
            "--api-key: API key ids must be unique; k repeats",
        ),
        (
            ["--metrics-token", "short-" + SECRET[:4]],
            {},
            "--metrics-token: metrics_token must be at least 16 characters",
        ),
    ],
)
def test_errors_never_echo_secrets(argv: list[str], environ: dict[str, str], expected: str) -> None:
    message = error_for(argv, environ)
    assert message == expected
    assert SECRET not in message and SECRET[:4] not in message


SECRET_A = "a-secret-of-the-platform-0123456789abcdef"
SECRET_B = "b-secret-of-the-platform-4567890123456789"


def test_api_keys_and_webhook_urls_from_every_layer(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        f"""
        webhook_urls = ["https://platform.example/hooks/mcu"]

        [[api_keys]]
        id = "platform"
        secret = "{SECRET_A}"
        """,
    )
    from_toml = load_config(["--config", str(path)], {})
    assert [(k.id, k.secret and k.secret.get_secret_value()) for k in from_toml.api_keys] == [
        ("platform", SECRET_A)
    ]
    assert from_toml.webhook_urls == ["https://platform.example/hooks/mcu"]
    assert SECRET_A not in repr(from_toml)

    environ = {
        "MCU_API_KEYS": f"platform={SECRET_A}, backup={SECRET_B}",
        "MCU_WEBHOOK_URLS": "http://10.0.0.2/a, https://platform.example/b,",
    }
    from_env = load_config([], environ)
    assert [k.id for k in from_env.api_keys] == ["platform", "backup"]
    secret = from_env.api_keys[1].secret
    assert secret is not None and secret.get_secret_value() == SECRET_B
    assert from_env.webhook_urls == ["http://10.0.0.2/a", "https://platform.example/b"]

    argv = ["--api-key", f"ops={SECRET_B}", "--webhook-url", "http://127.0.0.1:9000/h"]
    argv += ["--webhook-url", "http://127.0.0.1:9001/h"]
    from_flags = load_config(argv, environ)  # repeatable flags replace the lower layers
    assert [k.id for k in from_flags.api_keys] == ["ops"]
    assert from_flags.webhook_urls == ["http://127.0.0.1:9000/h", "http://127.0.0.1:9001/h"]


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (
            [],
            {"MCU_API_KEYS": f"p={SECRET_A},p={SECRET_B}"},
            "MCU_API_KEYS: API key ids must be unique; p repeats",
        ),
        (
            ["--webhook-url", "ftp://platform.example/h", "--api-key", f"p={SECRET_A}"],
            {},
            "--webhook-url: webhook_urls: 'ftp://platform.example/h' is no http:// or https:// "
            "URL with a host",
        ),
        (
            [],
            {"MCU_WEBHOOK_URLS": "https://platform.example/h"},
            "MCU_WEBHOOK_URLS: webhook_urls need an API key (api_keys) whose secret signs the "
            "requests: the first key must have a secret",
        ),
    ],
)
def test_api_key_and_webhook_errors_never_echo_a_secret(
    argv: list[str], environ: dict[str, str], message: str
) -> None:
    error = error_for(argv, environ)
    assert error == message
    for secret in ("hunter2", SECRET_A, SECRET_B):
        assert secret not in error
