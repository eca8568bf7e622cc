"""The platform's access tokens against the real server process: the WebSocket join and WHEP
admit what a token grants and refuse every bad token with its code; a token minted by
``mcu token create`` is accepted; an admin's token revokes another over the admin API."""

from __future__ import annotations

import asyncio
import base64
import secrets
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mcu.crypto.accesstokens import AccessRole, ApiKey, issue_access_token
from tests.support.room_client import RoomClient, joined_client
from tests.support.server import ServerProcess
from tests.support.whip import WhepViewer, post_sdp

PASSWORD = "consult-pass"
SECRET = secrets.token_urlsafe(32)
HIS = ApiKey("his", secret=SECRET.encode())
PACS = ApiKey("pacs", private_key=ec.generate_private_key(ec.SECP256R1()))
"The platform's ES256 key: the server has only its public half."


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    assert PACS.public_key is not None
    pem = tmp_path / "pacs.pem"
    pem.write_bytes(
        PACS.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    config = tmp_path / "mcu.toml"
    config.write_text(
        f'[[api_keys]]\nid = "his"\nsecret = "{SECRET}"\n\n'
        f'[[api_keys]]\nid = "pacs"\npublic_key_file = "{pem}"\n'
    )
    process = ServerProcess(tmp_path / "server", extra_args=["--config", str(config)])
    await process.start()
    try:
        yield process
    finally:
        assert await process.stop() == 0, process.log()[-4000:]
    # Neither the secret nor a token ever reaches the log.
    assert SECRET not in process.log()


def mint(
    role: AccessRole = "chair",
    room: str | None = "cardio-1",
    key: ApiKey = HIS,
    **claims: Any,
) -> str:
    fields: dict[str, Any] = {"name": "Dr Li", "ttl_seconds": 300, "now": time.time()}
    return issue_access_token(key, subject="u-1", role=role, room=room, **(fields | claims))


def alg_none(token: str) -> str:
    _, payload, _ = token.split(".")
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    return f"{header}.{payload}."


def tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    return f"{header}.{payload}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"


async def ws_join(server: ServerProcess, token: str, **fields: Any) -> dict[str, Any]:
    client = RoomClient(server.ws_url, "typed name")
    await client.connect()
    try:
        return await client.request({"type": "join", "room": "cardio-1", "token": token} | fields)
    finally:
        await client.close()


async def cli_token(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mcu", "token", "create", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out.decode().strip()


async def test_tokens_at_the_websocket_join(server: ServerProcess) -> None:
    await server.create_room("cardio-1", PASSWORD, "Cardiology consult")
    await server.create_room("neuro-2", PASSWORD, "Neurology")
    # A token from the command line, as an operator checks a deployment; the name is the token's.
    token = await cli_token(
        f"--api-key=his={SECRET}", "--sub", "u-42", "--name", "Dr Wang", "--role", "chair",
        "--room", "cardio-1", "--ttl", "120",
    )  # fmt: skip
    joined = await ws_join(server, token, name="not this name")
    assert joined["type"] == "joined", joined
    assert (joined["participant"]["name"], joined["participant"]["role"]) == ("Dr Wang", "chair")
    # An ES256 token; without a name the typed one is used.
    joined = await ws_join(server, mint("viewer", key=PACS, name=None), name="typed name")
    assert joined["type"] == "joined", joined
    assert (joined["participant"]["name"], joined["participant"]["role"]) == (
        "typed name",
        "viewer",
    )
    now = time.time()
    refusals = {
        "expired": (mint(now=now - 3600), "bad_token", "expired"),
        "not yet valid": (mint(not_before=now + 600), "bad_token", "not valid yet"),
        "wrong key": (mint(key=ApiKey("his", secret=b"w" * 32)), "bad_token", "signature"),
        "tampered": (tampered(mint()), "bad_token", "signature"),
        "alg none": (alg_none(mint()), "bad_token", "algorithm"),
        "unknown key": (mint(key=ApiKey("lis", secret=b"l" * 32)), "bad_token", "no API key"),
        "wrong room": (mint(room="neuro-2"), "wrong_room", "another room"),
        "wrong role": (mint("staff", room=None), "role_not_allowed", "for the APIs"),
        "garbage": ("x.y.z", "bad_token", "malformed"),
    }
    for case, (bad, code, words) in refusals.items():
        reply = await ws_join(server, bad)
        assert (reply["type"], reply["code"]) == ("error", code), (case, reply)
        assert words in reply["message"], (case, reply)
    # An admin's token revokes another by its jti, over the admin API.
    revoked = mint(jti="leaked-1")
    assert (await ws_join(server, revoked))["type"] == "joined"
    admin = {"Authorization": f"Bearer {mint('admin', room=None, key=PACS)}"}
    body = {"jti": "leaked-1", "expires_at": "2099-01-01T00:00:00Z"}
    url = server.base_url + "/api/revoked-tokens"
    async with server.http.post(url, json=body, headers=admin) as response:
        assert response.status == 201, await response.text()
    reply = await ws_join(server, revoked)
    assert (reply["code"], reply["message"]) == ("bad_token", "the access token has been revoked")
    # A staff token is no admin's; the server is unharmed by any of it.
    staff = {"Authorization": f"Bearer {mint('staff', room=None)}"}
    async with server.http.get(server.base_url + "/api/rooms", headers=staff) as response:
        assert (response.status, (await response.json())["error"]) == (403, "role_not_allowed")
    async with server.http.get(server.base_url + "/healthz") as response:
        assert response.status == 200


async def test_tokens_over_whep_and_whip(server: ServerProcess) -> None:
    await server.create_room("cardio-1", PASSWORD, "Cardiology consult")
    doctor = await joined_client(server, "Dr Li", password=PASSWORD)
    player = WhepViewer(server.base_url, "cardio-1", mint("viewer", name="Registrar Zhou"))
    probe = WhepViewer(server.base_url, "cardio-1", "")
    probe.pc.addTransceiver("video", direction="recvonly")
    await probe.pc.setLocalDescription(await probe.pc.createOffer())
    offer = probe.pc.localDescription.sdp
    whep, whip = server.base_url + "/whep/cardio-1", server.base_url + "/whip/cardio-1"
    try:
        # A viewer's token watches the meeting, and the participants see the token's name.
        status, body = await player.play(name="not this name")
        assert status == 201, body
        await doctor.wait_for(
            lambda m: (
                m["type"] == "viewers"
                and [w["name"] for w in m.get("watchers", [])] == ["Registrar Zhou"]
            )
        )
        now = time.time()
        for bad, status_code, code in (
            (mint("chair"), 403, "role_not_allowed"),  # nobody watches a meeting unseen
            (mint("viewer", room="neuro-2"), 403, "wrong_room"),
            (mint("viewer", now=now - 3600), 401, "bad_token"),
            (mint("viewer", not_before=now + 600), 401, "bad_token"),
            (tampered(mint("viewer")), 401, "bad_token"),
            (alg_none(mint("viewer")), 401, "bad_token"),
            (mint("admin", room=None), 403, "role_not_allowed"),
        ):
            status, body, headers = await post_sdp(whep, offer, bad)
            assert (status, code) == (status_code, code) and f'"{code}"' in body, body
            if status == 401:
                assert headers["WWW-Authenticate"].startswith("Bearer")
        # WHIP publishes: a viewer's token does not.
        status, body, _ = await post_sdp(whip, offer, mint("viewer"))
        assert status == 403 and '"role_not_allowed"' in body, body
        assert await player.stop() == 200
    finally:
        await player.stop()
        await probe.pc.close()
        await doctor.close()
