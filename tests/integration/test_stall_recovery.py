"""A server that stalls (any cause: an overloaded host, a stopped VM, a long blocking call) ends
the sessions it lost and serves everyone who comes back, rather than keeping dead ones listed."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from tests.support.room_client import ColourTrack, joined_client
from tests.support.server import ServerProcess

# ICE consent (RFC 7675) expires after 30 s without answers: aioice checks every 4-6 s and gives
# up after six misses, at most ~39 s. A longer stall is sure to cost the clients' connections.
STALL_SECONDS = 40


@pytest.mark.timeout(240)
async def test_sessions_lost_in_a_stall_are_ended_and_the_room_serves_again(
    server: ServerProcess,
) -> None:
    await server.create_room("ward-2", "battery staple")
    sender = await joined_client(server, "Sender", room="ward-2", password="battery staple")
    watcher = await joined_client(server, "Watcher", room="ward-2", password="battery staple")
    clients = [sender, watcher]
    try:
        await sender.publish({"camera": ColourTrack((10, 200, 10))})
        sid = sender.participant_id or ""
        await watcher.wait_until(lambda: watcher.frames_from(sid, "video") > 3)

        assert server.process is not None
        os.kill(server.process.pid, signal.SIGSTOP)  # the whole server stalls, loop and all
        try:
            await asyncio.sleep(STALL_SECONDS)
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
        # The clients' ends gave up on the silent server meanwhile: the watcher's surely, the
        # sender's most likely (its checks are timed at random).
        assert watcher.subscribe_pc is not None and sender.publish_pc is not None
        assert watcher.subscribe_pc.connectionState in ("closed", "failed")
        lost = [watcher]
        if sender.publish_pc.connectionState in ("closed", "failed"):
            lost.append(sender)

        # The server finds each connection gone once its own consent checks fail (~30 s) and
        # ends the session, closing the socket, so the client knows to join again. Before,
        # the connection ended "closed", not "failed", and the session stayed listed, silent.
        for client in lost:
            assert client._reader is not None  # reads until the socket closes
            await asyncio.wait_for(asyncio.shield(client._reader), 90)

        # Someone joining now is offered only live participants, and gets their media; the lost
        # ones are at most listed as reconnecting, for their clients' grace period.
        fresh = await joined_client(server, "Fresh", room="ward-2", password="battery staple")
        clients.append(fresh)
        joined = next(m for m in fresh.messages if m["type"] == "joined")
        listed = {p["id"] for p in joined["participants"] if not p["reconnecting"]}
        assert not listed & {client.participant_id for client in lost}
        if sender not in lost:
            await fresh.wait_until(lambda: fresh.frames_from(sid, "video") > 3)
        rejoined = await joined_client(server, "Watcher", room="ward-2", password="battery staple")
        clients.append(rejoined)
        await fresh.publish({"camera": ColourTrack((200, 10, 10))})
        fid = fresh.participant_id or ""
        await rejoined.wait_until(lambda: rejoined.frames_from(fid, "video") > 3)
    finally:
        for client in clients:
            await client.close()
