"""WebSockets that never join are closed at a deadline; one address cannot open without bound."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.room_client import joined_client
from tests.support.server import ServerProcess

# Short limits so the tests are quick. Given as environment variables, the settings' third
# source, so a server that lacked them would start and show the old behaviour.
LIMITS = {
    "MCU_JOIN_TIMEOUT": "2",
    "MCU_MAX_WEBSOCKETS_PER_ADDRESS": "3",
    "MCU_MAX_WEBSOCKETS": "5",
}
PASSWORD = "correct horse"
ROUNDS = 80
"Rounds of 0.25 s or more while waiting for a close: far past the 2 s deadline, still bounded."


@pytest.fixture
async def limited(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    process = ServerProcess(tmp_path / "server", env=LIMITS)
    await process.start()
    try:
        yield process
    finally:
        code = await process.stop()
        assert code == 0, process.log()[-4000:]


@pytest.fixture
async def limited_cluster(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    process = ServerProcess(tmp_path / "srv", workers=2, env=LIMITS)
    try:
        await process.start()
        yield process
    finally:
        code = await process.stop()
        assert code == 0, process.log()[-4000:]


def _session(local_host: str = "127.0.0.1") -> aiohttp.ClientSession:
    """A client session whose connections come from ``local_host`` (any of 127.0.0.0/8)."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(local_host, 0)))


async def _close_of(
    ws: aiohttp.ClientWebSocketResponse, *, app_pings: bool
) -> tuple[int | None, str]:
    """Keep ``ws`` busy (protocol pings if ``app_pings``; the client's heartbeat sends
    WebSocket pings) until the server closes it: (close code, reason), or (None, "") when it
    stayed open for all ``ROUNDS``."""
    for _ in range(ROUNDS):
        if app_pings and not ws.closed:
            with contextlib.suppress(ConnectionResetError):  # closing: its close frame follows
                await ws.send_str('{"type": "ping"}')
        try:
            message = await ws.receive(timeout=0.5)
        except TimeoutError:
            continue
        if message.type == aiohttp.WSMsgType.CLOSE:  # the server's close frame
            return int(message.data), str(message.extra or "")
        if message.type == aiohttp.WSMsgType.CLOSED:
            return ws.close_code, ""
        await asyncio.sleep(0.25)  # a pong came at once: pace the pings
    return None, ""


async def _unjoined_sockets_are_closed(server: ServerProcess) -> None:
    await server.create_room("cardio-1", PASSWORD)
    member = await joined_client(server, "member", password=PASSWORD)
    try:
        async with _session() as http:
            # A socket that sends protocol pings and WebSocket pings but never joins.
            chatty = await http.ws_connect(server.ws_url, heartbeat=0.5)
            # A socket that only answers the server's WebSocket pings (sends no frame at all).
            silent = await http.ws_connect(server.ws_url, heartbeat=0.5)
            results = await asyncio.gather(
                _close_of(chatty, app_pings=True), _close_of(silent, app_pings=False)
            )
            for code, reason in results:
                assert code == aiohttp.WSCloseCode.POLICY_VIOLATION, (code, reason)
                assert "join" in reason and "2 s" in reason, reason
        # The member joined in time: its socket outlived the deadline and still answers.
        assert (await member.request({"type": "ping"}))["type"] == "pong"
        assert await _total(server, "mcu_websocket_join_timeouts_total") >= 2
    finally:
        await member.close()


async def test_unjoined_sockets_are_closed_at_the_deadline(limited: ServerProcess) -> None:
    await _unjoined_sockets_are_closed(limited)


async def _joined_socket(
    http: aiohttp.ClientSession, server: ServerProcess, name: str
) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(server.ws_url)
    await ws.send_json({"type": "join", "room": "caps-1", "name": name, "password": PASSWORD})
    for _ in range(50):
        reply: dict[str, Any] = json.loads((await ws.receive(timeout=20)).data)
        if reply["type"] in ("joined", "error"):
            break
    assert reply["type"] == "joined", reply
    return ws


async def _refusal(http: aiohttp.ClientSession, server: ServerProcess) -> tuple[int, Any]:
    """Status and JSON body of an upgrade request the server refuses before upgrading."""
    headers = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    }
    async with http.get(server.base_url + "/ws", headers=headers) as response:
        assert response.status != 101, "the upgrade was accepted"
        return response.status, await response.json()


async def _caps_hold(server: ServerProcess) -> None:
    await server.create_room("caps-1", PASSWORD)
    first, second, third = _session("127.0.0.1"), _session("127.0.0.2"), _session("127.0.0.3")
    try:
        mine = [await _joined_socket(first, server, f"a{i}") for i in range(3)]
        status, body = await _refusal(first, server)
        assert status == 429 and body["error"] == "too_many_connections", body
        assert "3" in body["message"], body
        # Another address still gets in, up to the server's total of 5.
        theirs = [await _joined_socket(second, server, f"b{i}") for i in range(2)]
        status, body = await _refusal(third, server)
        assert status == 503 and body["error"] == "busy", body
        # A socket that closes gives its place back.
        await mine.pop().close()
        for _ in range(50):
            try:
                mine.append(await _joined_socket(first, server, "a-again"))
                break
            except aiohttp.WSServerHandshakeError:
                await asyncio.sleep(0.1)  # the server has not seen the close yet
        assert len(mine) == 3 and len(theirs) == 2
        assert await _total(server, "mcu_websocket_refused_total", 'reason="address"') >= 1
        assert await _total(server, "mcu_websocket_refused_total", 'reason="total"') >= 1
    finally:
        for http in (first, second, third):
            await http.close()


async def _total(server: ServerProcess, name: str, label: str = "") -> float:
    """The sum of ``name``'s samples with ``label`` (over the processes, behind a front)."""
    async with server.http.get(server.base_url + "/metrics") as r:
        text = await r.text()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith((name + " ", name + "{")) and label in line
    )


async def test_connections_are_capped_per_address_and_in_total(limited: ServerProcess) -> None:
    await _caps_hold(limited)


async def test_the_front_enforces_the_deadline_and_the_caps(
    limited_cluster: ServerProcess,
) -> None:
    await _unjoined_sockets_are_closed(limited_cluster)
    await _caps_hold(limited_cluster)


async def test_a_flooding_socket_is_throttled_then_closed(server: ServerProcess) -> None:
    await server.create_room("cardio-1", PASSWORD)
    async with aiohttp.ClientSession() as http, http.ws_connect(server.ws_url) as ws:
        await ws.send_json(
            {"type": "join", "room": "cardio-1", "name": "Flood", "password": PASSWORD}
        )
        for i in range(400):  # bounded: far over 20 a second, sent at once
            await ws.send_json({"type": "ping", "id": i})
        pongs, limited = 0, 0
        for _ in range(600):  # bounded: every reply, then the close
            message = await ws.receive(timeout=10)
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            body = json.loads(message.data)
            pongs += body["type"] == "pong"
            limited += body.get("code") == "rate_limited"
        # Before, all 400 were answered. Now the burst is, then at most a warning a second,
        # and the socket is closed for flooding.
        assert pongs < 100, pongs
        assert limited >= 1
        assert ws.close_code == 1008, ws.close_code
    async with server.http.get(server.base_url + "/metrics") as r:
        text = await r.text()
    assert "mcu_websocket_flood_closes_total 1.0" in text, text[-2000:]
