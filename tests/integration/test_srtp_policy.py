"""SRTP: AES-GCM is preferred, and can be required."""

from __future__ import annotations

from pathlib import Path

import aiortc.rtcdtlstransport as dtls_module
import pytest

from tests.support.room_client import ColourTrack, RoomClient
from tests.support.server import ServerProcess


async def _publish_and_wait(server: ServerProcess) -> RoomClient:
    await server.create_room("cardio-1", "correct horse")
    client = RoomClient(server.ws_url, "a")
    await client.connect()
    await client.join("cardio-1", password="correct horse")
    await client.publish({"camera": ColourTrack((0, 0, 0))})
    return client


async def test_gcm_is_negotiated_by_default(server: ServerProcess) -> None:
    client = await _publish_and_wait(server)
    try:
        assert client.publish_pc is not None
        transport = client.publish_pc.getTransceivers()[0].sender.transport
        await client.wait_until(lambda: transport.state == "connected")
        assert transport._ssl.get_selected_srtp_profile() == b"SRTP_AEAD_AES_256_GCM"
    finally:
        await client.close()


async def test_required_gcm_refuses_a_client_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # This client offers only AES-CM (the test process's aiortc; the server is a subprocess).
    monkeypatch.setattr(dtls_module, "SRTP_PROFILES", [dtls_module.SRTP_AES128_CM_SHA1_80])
    server = ServerProcess(tmp_path / "srv", ["--srtp-require-gcm"])
    await server.start()
    try:
        client = await _publish_and_wait(server)
        try:
            assert client.publish_pc is not None
            transport = client.publish_pc.getTransceivers()[0].sender.transport
            await client.wait_until(lambda: transport.state in ("failed", "closed"), timeout=30)
            assert transport.state != "connected"
        finally:
            await client.close()
    finally:
        assert await server.stop() == 0
