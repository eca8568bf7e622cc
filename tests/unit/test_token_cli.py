"""``mcu token create``: the token it prints verifies with the same key and says what was asked;
its errors never show the secret; plain ``mcu`` still parses as the server's command line."""

from __future__ import annotations

import pytest

from mcu.app.argparsing import CommandLineError
from mcu.app.main import main
from mcu.app.tokencli import create_token
from mcu.crypto.accesstokens import AccessTokens, ApiKey

SECRET = "ops-check-signing-secret-0123456789abcdef"
NOW = 1_700_000_000.0
TOKENS = AccessTokens([ApiKey("his", secret=SECRET.encode())])


def test_the_printed_token_grants_what_was_asked() -> None:
    argv = ["--api-key", f"his={SECRET}", "--sub", "u-1", "--name", "Dr Li", "--role", "chair",
            "--room", "cardio-1", "--ttl", "120"]  # fmt: skip
    grant = TOKENS.verify(create_token(argv, {}, NOW), NOW)
    assert (grant.subject, grant.name, grant.role, grant.room) == (
        "u-1",
        "Dr Li",
        "chair",
        "cardio-1",
    )
    assert grant.expires_at == NOW + 120 and grant.jti
    staff = create_token(
        ["--sub", "u-2", "--role", "staff", "--department", "Cardiology"],
        {"MCU_API_KEYS": f"his={SECRET},other={SECRET}"},
        NOW,
    )
    assert TOKENS.verify(staff, NOW).department == "Cardiology"


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (["--sub", "u", "--role", "chair", "--room", "r"], {}, "give --api-key ID=SECRET"),
        (["--api-key", SECRET, "--sub", "u", "--role", "staff"], {}, "must be ID=SECRET"),
        (["--api-key", f"his={SECRET}", "--sub", "u", "--role", "chair"], {}, "needs a room"),
        (
            ["--api-key", f"his={SECRET}", "--sub", "u", "--role", "staff", "--ttl", "0"],
            {},
            "--ttl must be between",
        ),
        (["--api-kye", f"his={SECRET}", "--sub", "u", "--role", "staff"], {}, "--api-kye"),
    ],
)
def test_errors_say_what_is_wrong_without_the_secret(
    argv: list[str], environ: dict[str, str], message: str
) -> None:
    with pytest.raises((ValueError, CommandLineError)) as caught:
        create_token(argv, environ, NOW)
    assert message in str(caught.value) and SECRET not in str(caught.value)


def test_the_server_command_line_is_unchanged(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "--api-key ID=SECRET" in capsys.readouterr().out
    assert main(["token"]) == 2
    assert main(["--portt", "1"]) == 2  # a typo is still a configuration error, not a token
