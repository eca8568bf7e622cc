"""The cluster's settings (--redis-url, --advertise-url, --cluster-secret, --relay-address, TOML
[cluster]) and the Redis URLs they accept."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcu.app.config import ConfigError, load_config
from mcu.infra.redisconn import RedisTarget, parse_redis_url

SECRET = "s" * 40
ADMIN = {"MCU_ADMIN_TOKEN": "a-cluster-wide-admin-token"}


def error_for(argv: list[str], environ: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(argv, environ)
    return str(caught.value)


def test_a_single_node_by_default() -> None:
    config = load_config([], {})
    assert (config.redis_url, config.advertise_url, config.cluster_secret) == (None, None, None)
    assert not config.clustered


def test_flags_env_and_the_cluster_table(tmp_path: Path) -> None:
    flags = load_config(
        [
            *("--redis-url", "redis://10.0.0.9:6379/2"),
            *("--advertise-url", "https://node-a:8443/"),
            *("--relay-address", "10.0.0.11"),
        ],
        {"MCU_CLUSTER_SECRET": SECRET} | ADMIN,
    )
    assert flags.clustered and flags.redis_url == "redis://10.0.0.9:6379/2"
    assert flags.advertise_url == "https://node-a:8443"
    assert flags.cluster_secret is not None and flags.cluster_secret.get_secret_value() == SECRET
    assert flags.relay_host == "10.0.0.11"

    toml = tmp_path / "mcu.toml"
    toml.write_text(
        'port = 9000\n[cluster]\nredis_url = "redis+sentinel://s1,s2:26380/mcu/1"\n'
        f'advertise_url = "http://10.0.0.7:9000"\nsecret = "{SECRET}"\n'
    )
    config = load_config(["--config", str(toml)], ADMIN)
    assert config.redis_url == "redis+sentinel://s1,s2:26380/mcu/1"
    assert config.advertise_url == "http://10.0.0.7:9000"
    assert config.relay_host == "10.0.0.7"  # the advertise URL's address
    # The environment still overrides the file.
    env = load_config(
        ["--config", str(toml)], {"MCU_ADVERTISE_URL": "http://10.0.0.8:9000"} | ADMIN
    )
    assert env.advertise_url == "http://10.0.0.8:9000"


def test_the_cluster_keys_belong_in_their_table(tmp_path: Path) -> None:
    toml = tmp_path / "mcu.toml"
    toml.write_text('redis_url = "redis://r:6379/0"\n')
    assert "unknown key 'redis_url'" in error_for(["--config", str(toml)], {})
    toml.write_text('[cluster]\nredis = "redis://r:6379/0"\n')
    assert "unknown key 'cluster.redis'" in error_for(["--config", str(toml)], {})
    toml.write_text('cluster = "redis://r"\n')
    assert "must be a table" in error_for(["--config", str(toml)], {})


def test_halves_of_a_cluster_are_refused() -> None:
    message = error_for(["--redis-url", "redis://r:6379/0"], {})
    assert "redis_url needs advertise_url and cluster_secret" in message
    assert "set redis_url too" in error_for(["--advertise-url", "http://a:1"], {})


def test_a_cluster_needs_one_admin_token_for_every_node() -> None:
    # Each node would generate a token of its own: the admin API would differ per node.
    argv = ["--redis-url", "redis://r/0", "--advertise-url", "http://a:1"]
    message = error_for(argv, {"MCU_CLUSTER_SECRET": SECRET})
    assert "a cluster needs admin_token (MCU_ADMIN_TOKEN), the same on every node" in message
    argv += ["--relay-address", "10.0.0.11"]
    assert load_config(argv, {"MCU_CLUSTER_SECRET": SECRET} | ADMIN).clustered


def test_the_relay_address_is_the_advertised_ip_or_given() -> None:
    argv = ["--redis-url", "redis://r/0", "--advertise-url", "https://node-a.example:8443"]
    environ = {"MCU_CLUSTER_SECRET": SECRET} | ADMIN
    # Other nodes must reach the relay sockets: a name does not say which address to bind.
    assert "set relay_address" in error_for(argv, environ)
    given = load_config(argv, environ | {"MCU_RELAY_ADDRESS": "10.1.2.3"})
    assert given.relay_host == "10.1.2.3"
    for bad in ("node-a", "0.0.0.0", "::1"):
        assert "relay_address" in error_for([*argv, "--relay-address", bad], environ)
    assert "set redis_url too" in error_for(["--relay-address", "10.1.2.3"], {})
    assert load_config([], {}).relay_host == "127.0.0.1"


def test_bad_values_are_named_without_echoing_secrets() -> None:
    short = "x" * 12
    message = error_for(
        ["--redis-url", "redis://r/0", "--advertise-url", "http://a:1", "--cluster-secret", short],
        {},
    )
    assert "at least 32 characters" in message and short not in message
    message = error_for(
        ["--redis-url", "mysql://r", "--advertise-url", "http://a:1"],
        {"MCU_CLUSTER_SECRET": SECRET},
    )
    assert "--redis-url" in message and "redis+sentinel://" in message
    message = error_for(
        ["--redis-url", "redis://r/0", "--advertise-url", "http://a:1/mcu"],
        {"MCU_CLUSTER_SECRET": SECRET},
    )
    assert "no path" in message
    # A password in the Redis URL is never repeated in an error either.
    message = error_for(["--redis-url", "redis://:hunter2-password@r/0"], {})
    assert "hunter2" not in message


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("redis://r:6379/0", RedisTarget(url="redis://r:6379/0")),
        ("unix:///run/redis.sock", RedisTarget(url="unix:///run/redis.sock")),
        (
            "redis+sentinel://s1,s2:26380,[::1]:26381/mcu/3",
            RedisTarget(
                sentinels=(("s1", 26379), ("s2", 26380), ("::1", 26381)), service="mcu", db=3
            ),
        ),
        (
            "redis+sentinel://:pw@s1/main",
            RedisTarget(sentinels=(("s1", 26379),), service="main", password="pw"),
        ),
    ],
)
def test_redis_urls(url: str, target: RedisTarget) -> None:
    assert parse_redis_url(url) == target


@pytest.mark.parametrize(
    "url",
    [
        "http://r",
        "redis://",
        "redis+sentinel://s1",
        "redis+sentinel://s1/mcu/x",
        "redis+sentinel://s1:99999/mcu",
        "redis+sentinel://s1,,s2/mcu",
        "redis+sentinel://s1/a/1/extra",
    ],
)
def test_bad_redis_urls(url: str) -> None:
    with pytest.raises(ValueError):
        parse_redis_url(url)
