"""Through a real coturn: clients forced to relay, time-limited credentials, WHIP/WHEP ``Link``.

Each test starts its own ``turnserver`` (tests/support/coturn.py) with a generated secret and the
media server with ``--turn-url`` and ``MCU_TURN_SECRET``; the clients use only what the server
hands out, as a browser does.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import math
import re
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection
from aiortc.rtcconfiguration import RTCBundlePolicy, RTCIceTransportPolicy

from tests.support.coturn import Coturn, coturn_available
from tests.support.impair import ImpairedLink, impair_available
from tests.support.room_client import ColourTrack, RoomClient, ToneTrack, local_candidate_types
from tests.support.server import ServerProcess
from tests.support.whip import WhepViewer, WhipPublisher

pytestmark = pytest.mark.skipif(coturn_available() is not None, reason=str(coturn_available()))

PASSWORD = "correct horse battery"
VIEWERS = "for-every-site"
LINK = re.compile(
    r'<(?P<url>[^>]+)>; rel="ice-server"'
    r'(?:; username="(?P<username>[^"]*)"; credential="(?P<credential>[^"]*)"'
    r'; credential-type="password")?'
)


@pytest.fixture
async def turn(tmp_path: Path) -> AsyncIterator[Coturn]:
    async with Coturn(tmp_path / "turn") as relay:
        yield relay


@pytest.fixture
async def relayed_server(tmp_path: Path, turn: Coturn) -> AsyncIterator[ServerProcess]:
    process = ServerProcess(
        tmp_path / "server",
        extra_args=[f"--turn-url={turn.url('udp')}", "--turn-ttl=3600"],
        env={"MCU_TURN_SECRET": turn.secret},
    )
    await process.start()
    try:
        yield process
    finally:
        assert await process.stop() == 0, process.log()[-4000:]
    # The secret never reaches the server's log, even at start-up.
    assert turn.secret not in process.log()


def expected_credential(secret: str, username: str) -> str:
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def check_handed_out(
    server: dict[str, object], turn: Coturn, user: str, asked: float, answered: float
) -> None:
    """A TURN entry as coturn's use-auth-secret expects it, made between ``asked`` and
    ``answered`` and valid for the configured hour from then."""
    assert server["urls"] == [turn.url("udp")]
    username = str(server["username"])
    expiry, _, named = username.partition(":")
    assert named == user
    assert asked + 3600 <= int(expiry) <= math.ceil(answered) + 3600
    assert server["credential"] == expected_credential(turn.secret, username)


def relay_pc(servers: list[dict[str, str]]) -> RTCPeerConnection:
    return RTCPeerConnection(
        RTCConfiguration(
            iceServers=[
                RTCIceServer(urls=s["url"], username=s["username"], credential=s["credential"])
                for s in servers
            ],
            bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
            iceTransportPolicy=RTCIceTransportPolicy.RELAY,
        )
    )


async def test_relay_only_client_exchanges_media_through_coturn(
    relayed_server: ServerProcess, turn: Coturn
) -> None:
    server = relayed_server
    await server.create_room("cardio-1", PASSWORD)
    direct = RoomClient(server.ws_url, "County doctor")
    relayed = RoomClient(server.ws_url, "Hospital behind a firewall", relay_only=True)
    try:
        for client in (direct, relayed):
            await client.connect()
            asked = time.time()
            reply = await client.join("cardio-1", password=PASSWORD)
            answered = time.time()
            assert reply["type"] == "joined", reply
            assert client.participant_id is not None
            [handed] = reply["ice_servers"]
            check_handed_out(handed, turn, client.participant_id, asked, answered)
        assert direct.ice_servers[0]["credential"] != relayed.ice_servers[0]["credential"]
        await direct.publish({"microphone": ToneTrack(), "camera": ColourTrack((200, 30, 30))})
        await relayed.publish({"microphone": ToneTrack(500), "camera": ColourTrack((30, 30, 200))})
        assert direct.participant_id is not None and relayed.participant_id is not None
        await relayed.wait_until(
            lambda: (
                relayed.frames_from(str(direct.participant_id), "video") >= 10
                and relayed.frames_from(str(direct.participant_id), "audio") >= 20
            ),
            timeout=30,
        )
        await direct.wait_until(
            lambda: direct.frames_from(str(relayed.participant_id), "video") >= 10, timeout=30
        )
        # Both of its connections had nothing but relay candidates to offer...
        for pc in (relayed.publish_pc, relayed.subscribe_pc):
            assert pc is not None
            assert local_candidate_types(pc) == {"relay"}
        # ...and coturn allocated them for this participant's handed-out user name.
        user = relayed.ice_servers[0]["username"]
        log = turn.log()
        assert re.search(rf"user <{re.escape(user)}>.*ALLOCATE processed, success", log), log
        assert await server.decoded_frames() == 0
    finally:
        await direct.close()
        await relayed.close()


async def test_whip_and_whep_answers_carry_the_relay_in_link_headers(
    relayed_server: ServerProcess, turn: Coturn
) -> None:
    server = relayed_server
    await server.create_room(
        "lesson-1", PASSWORD, "Stroke care", kind="lecture", viewer_password=VIEWERS
    )
    lecturer = WhipPublisher(server.base_url, "lesson-1", PASSWORD)
    viewer: WhepViewer | None = None
    try:
        status, body = await lecturer.publish([ToneTrack(), ColourTrack((20, 60, 220))])
        assert status == 201, body
        links = []
        for path, token in (("/whip/lesson-1", PASSWORD), ("/whep/lesson-1", VIEWERS)):
            probe = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            probe.addTransceiver("video", direction="sendonly" if "whip" in path else "recvonly")
            await probe.setLocalDescription(await probe.createOffer())
            async with (
                aiohttp.ClientSession() as http,
                http.post(
                    server.base_url + path,
                    data=probe.localDescription.sdp.encode(),
                    headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
                ) as r,
            ):
                assert r.status == 201, await r.text()
                [link] = r.headers.getall("Link")
                assert "Link" in r.headers["Access-Control-Expose-Headers"]
                location = r.headers["Location"]
                async with http.delete(
                    server.base_url + location, headers={"Authorization": f"Bearer {token}"}
                ) as gone:
                    assert gone.status == 200
            await probe.close()
            match = LINK.fullmatch(link)
            assert match is not None, link
            fields = match.groupdict()
            assert fields["url"] == turn.url("udp")
            assert fields["credential"] == expected_credential(turn.secret, fields["username"])
            links.append(fields)
        # The publisher's user name names it; a WHEP player gets a label, never its session id.
        assert re.fullmatch(r"\d+:p[0-9a-f]+", links[0]["username"])
        assert re.fullmatch(r"\d+:w[0-9a-f]+", links[1]["username"])
        assert links[1]["username"].split(":")[1] not in location

        # A player that keeps the relay it was handed plays the lecture through coturn alone.
        viewer = WhepViewer(server.base_url, "lesson-1", VIEWERS, pc=relay_pc([links[1]]))
        status, body = await viewer.play(audio=1, video=1)
        assert status == 201, body
        await viewer.wait_until(lambda: viewer.frames("video") >= 10, timeout=30)
        assert local_candidate_types(viewer.pc) == {"relay"}
    finally:
        if viewer is not None:
            await viewer.stop()
        await lecturer.stop()


def no_udp(device: str) -> str:
    """An nft script dropping every UDP packet that arrives on ``device`` (a firewall that lets
    only TCP through, as many hospitals' do)."""
    table = f"mcu_noudp_{device}"
    return (
        f"table netdev {table} {{}}\ndelete table netdev {table}\n"
        f"table netdev {table} {{\n"
        f'  chain ingress {{ type filter hook ingress device "{device}" priority 0;\n'
        "    policy accept;\n    meta l4proto udp counter drop\n  }\n}\n"
    )


async def run(command: list[str], stdin: str | None = None, timeout: float = 90) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(
            process.communicate(stdin.encode() if stdin is not None else None), timeout
        )
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    return process.returncode or 0, out.decode(errors="replace")


@pytest.mark.skipif(impair_available() is not None, reason=str(impair_available()))
async def test_client_without_udp_connects_over_turn_tcp(tmp_path: Path) -> None:
    """A site whose firewall drops all UDP: the direct path and TURN over UDP are gone, and ICE
    finds the relay over TCP on its own (the client is not forced to relay)."""
    async with ImpairedLink(index=73) as link:
        far_side = link.host_address  # how the far namespace reaches the server and coturn
        async with Coturn(tmp_path / "turn", listening=(far_side,)) as turn:
            server = ServerProcess(
                tmp_path / "server",
                host="0.0.0.0",
                media_addresses=["127.0.0.1", far_side],
                # aiortc takes the first TURN URL of a server; a browser would try both.
                extra_args=[
                    f"--turn-url={turn.url('tcp')}",
                    f"--turn-url={turn.url('udp')}",
                ],
                env={"MCU_TURN_SECRET": turn.secret},
            )
            await server.start()
            doctor = RoomClient(server.ws_url, "County doctor")
            tables = [f"mcu_noudp_{link.host_device}"]
            try:
                await server.create_room("cardio-1", PASSWORD)
                await doctor.connect()
                assert (await doctor.join("cardio-1", password=PASSWORD))["type"] == "joined"
                await doctor.publish({"camera": ColourTrack((200, 30, 30))})
                for command, device in (
                    (link.command("nft", "-f", "-"), link.peer_device),
                    (["nft", "-f", "-"], link.host_device),
                ):
                    code, out = await run(command, no_udp(device))
                    assert code == 0, out
                code, out = await run(
                    link.command(
                        sys.executable, "-m", "tests.support.far_client",
                        f"ws://{far_side}:{server.port}/ws", "cardio-1", PASSWORD,
                        str(doctor.participant_id), link.peer_address,
                    )
                )  # fmt: skip
                result = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
                assert code == 0, f"{out}\n{turn.log()[-3000:]}"
                assert result["frames"] >= 10
                # It offered its own address too, and the server tried it: those UDP checks
                # were dropped, so every decoded frame came over the relay's TCP connection...
                assert result["candidates"] == ["host", "relay"]
                code, out = await run(["nft", "list", "table", "netdev", tables[0]])
                dropped = re.search(r"counter packets (\d+)", out)
                assert code == 0 and dropped is not None and int(dropped[1]) > 0, out
                # ...which coturn accepted from the far side with the handed-out user name.
                [username] = result["turn_usernames"]
                log = turn.log()
                assert f"tcp or tls connected to: {link.peer_address}:" in log, log[-3000:]
                for request in ("ALLOCATE", "CHANNEL_BIND"):
                    done = f"user <{username}>: incoming packet {request} processed, success"
                    assert done in log, log[-3000:]
            finally:
                for table in tables:
                    await run(["nft", "delete", "table", "netdev", table])
                await doctor.close()
                assert await server.stop() == 0, server.log()[-4000:]
