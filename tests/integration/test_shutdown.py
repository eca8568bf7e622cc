"""SIGTERM closes every session cleanly and the process exits 0."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.support.room_client import ColourTrack, RoomClient, ToneTrack
from tests.support.server import ServerProcess


async def test_sigterm_ends_rooms_and_exits_cleanly(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "srv")
    await server.start()
    clients: list[RoomClient] = []
    try:
        await server.create_room("cardio-1", "correct horse")
        for name in ("a", "b"):
            client = RoomClient(server.ws_url, name)
            await client.connect()
            await client.join("cardio-1", password="correct horse")
            await client.publish({"microphone": ToneTrack(), "camera": ColourTrack((1, 2, 3))})
            clients.append(client)
        b_id = clients[1].participant_id or ""
        await clients[0].wait_until(lambda: clients[0].frames_from(b_id, "video") > 2)
        assert server.process is not None
        server.process.terminate()
        for client in clients:
            ended = await client.wait_for(lambda m: m["type"] == "room_ended")
            assert "shutting down" in ended["reason"]
        assert await asyncio.wait_for(server.process.wait(), 15) == 0
        assert "Traceback" not in server.log()
    finally:
        for client in clients:
            await client.close()
        await server.stop()
