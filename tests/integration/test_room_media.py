"""Media really flows through the server between real aiortc peers on loopback."""

from __future__ import annotations

import asyncio
import contextlib

from tests.support.room_client import ColourTrack, RoomClient, ToneTrack
from tests.support.server import ServerProcess

COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]


async def _join_all(server: ServerProcess, count: int, codecs: list[str]) -> list[RoomClient]:
    await server.create_room("cardio-1", "correct horse")
    clients = []
    for i in range(count):
        client = RoomClient(server.ws_url, f"doctor-{i}")
        await client.connect()
        reply = await client.join("cardio-1", password="correct horse")
        assert reply["type"] == "joined", reply
        answer = await client.publish(
            {"microphone": ToneTrack(300 + 200 * i), "camera": ColourTrack(COLOURS[i % 3])},
            video_codec=codecs[i % len(codecs)],
        )
        assert answer["type"] == "publish_answer", answer
        clients.append(client)
    return clients


async def test_three_participants_each_decode_the_other_two(server: ServerProcess) -> None:
    clients = await _join_all(server, 3, ["video/VP8", "video/H264"])
    try:
        for client in clients:
            others = [c.participant_id for c in clients if c is not client]
            await client.wait_until(
                lambda c=client, o=others: all(
                    c.frames_from(p, "video") >= 10 and c.frames_from(p, "audio") >= 20 for p in o
                ),
                timeout=30,
            )
        # Each receiver's picture is the sender's colour: the right stream reached the right tile.
        for client in clients:
            for track in client.received.values():
                if track.kind != "video":
                    continue
                sender = next(c for c in clients if c.participant_id == track.participant_id)
                index = clients.index(sender)
                pixel = track.last_frame.to_ndarray(format="rgb24")[10, -1]  # away from the bar
                expected = COLOURS[index % 3]
                close = all(abs(int(a) - b) < 40 for a, b in zip(pixel, expected, strict=True))
                assert close, (pixel, expected)
        assert await server.decoded_frames() == 0
        assert await server.metric("mcu_rtp_packets_sent_total") > 0
    finally:
        for client in clients:
            await client.close()


async def test_leaving_participant_ends_its_tracks_for_the_others(server: ServerProcess) -> None:
    clients = await _join_all(server, 3, ["video/VP8"])
    try:
        leaver = clients[2]
        await clients[0].wait_until(
            lambda: clients[0].frames_from(leaver.participant_id, "video") > 0
        )
        await leaver.send({"type": "leave"})
        for client in clients[:2]:
            left = await client.wait_for(
                lambda m: (
                    m["type"] == "participant_left" and m["participant_id"] == leaver.participant_id
                )
            )
            assert left["reason"] == "left"
            unpublished = [
                m for m in client.messages
                if m["type"] == "track_unpublished" and m["participant_id"] == leaver.participant_id
            ]  # fmt: skip
            assert len(unpublished) == 2
        # The remaining two keep receiving each other.
        a, b = clients[0], clients[1]
        before = a.frames_from(b.participant_id, "video")
        await a.wait_until(lambda: a.frames_from(b.participant_id, "video") > before + 10)
        health = await (await server.http.get(server.base_url + "/healthz")).json()
        assert health["participants"] == 2
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()
        await asyncio.sleep(0)


async def test_publishers_at_the_same_moment_give_a_watcher_one_offer_at_a_time(
    server: ServerProcess,
) -> None:
    # Each publish renegotiates the watcher's subscribe connection. Two at once used to both
    # pass the "no offer outstanding" check before either made its offer, so the watcher got
    # a second offer before answering the first, and its answer was refused as bad_sdp.
    await server.create_room("cardio-1", "correct horse")
    watcher = RoomClient(server.ws_url, "watcher")
    publishers = [RoomClient(server.ws_url, f"doctor-{i}") for i in range(3)]
    clients = [watcher, *publishers]
    try:
        for client in clients:
            await client.connect()
            reply = await client.join("cardio-1", password="correct horse")
            assert reply["type"] == "joined", reply
        answers = await asyncio.gather(
            *(
                p.publish({"microphone": ToneTrack(300 + 200 * i), "camera": ColourTrack(c)})
                for i, (p, c) in enumerate(zip(publishers, COLOURS, strict=True))
            )
        )
        assert all(a["type"] == "publish_answer" for a in answers), answers
        ids = [p.participant_id or "" for p in publishers]
        await watcher.wait_until(
            lambda: all(watcher.frames_from(p, "video") >= 5 for p in ids), timeout=30
        )
        errors = [m for m in watcher.messages if m["type"] == "error"]
        assert errors == []
        offers = [m for m in watcher.messages if m["type"] == "subscribe_offer"]
        assert 1 <= len(offers) <= 3, len(offers)
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()
