"""Recording a room: per-track MP4s and a composite, encrypted at rest, surviving SIGKILL."""

from __future__ import annotations

import asyncio
import math
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import av
import pytest

from tests.support.media_checks import decodes_cleanly, ffprobe
from tests.support.room_client import ColourTrack, RoomClient, ToneTrack, joined_client
from tests.support.server import ServerProcess


def frame_count(path: Path) -> int:
    out = subprocess.run(
        [
            "ffprobe", "-v", "error", "-count_frames", "-select_streams", "0",
            "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", str(path),
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    try:
        return int(out.stdout.strip().splitlines()[0].strip(","))
    except (ValueError, IndexError):
        return 0


async def _item(server: ServerProcess, recording_id: str, *, complete: bool) -> dict[str, Any]:
    for _ in range(240):
        item: dict[str, Any] = await server.get_json(f"/api/library/{recording_id}")
        roles = {f["role"] for f in item["files"]}
        if not complete or (item["status"] == "complete" and "composite" in roles):
            return item
        await asyncio.sleep(0.5)
    raise AssertionError(f"recording not complete: {item}")


async def test_recording_a_consultation(server: ServerProcess, tmp_path: Path) -> None:
    await server.create_room("cardio-1", "correct horse")
    chair_link = await server.invite("cardio-1", role="chair")
    chair = await joined_client(server, "Chair", invite=chair_link.split("invite=", 1)[1])
    county = await joined_client(server, "County doctor", password="correct horse")
    try:
        # The chair records; the recorded room then prefers H.264 for new publishers.
        await chair.send({"type": "chair", "action": "record", "active": True})
        started = await county.wait_for(lambda m: m["type"] == "recording" and m["active"])
        recording_id = started["recording_id"]
        await chair.publish(
            {"microphone": ToneTrack(500), "camera": ColourTrack((200, 30, 30))},
            video_codec="video/H264",
        )
        await county.publish(
            {
                "microphone": ToneTrack(800),
                "camera": ColourTrack((30, 200, 30)),
                "content": ColourTrack((240, 240, 240), width=640, height=360, fps=5),
            },
            video_codec="video/VP8",
            only=True,  # the VP8 path: transcoded, since MP4 cannot hold VP8
        )
        cid = county.participant_id or ""
        await chair.wait_until(lambda: chair.frames_from(cid, "video") > 10, timeout=30)
        await asyncio.sleep(4)
        await chair.send({"type": "chair", "action": "record", "active": False})
        await county.wait_for(lambda m: m["type"] == "recording" and not m["active"])

        item = await _item(server, recording_id, complete=True)
        assert item["room_id"] == "cardio-1" and item["duration_s"] > 3
        tracks = [f for f in item["files"] if f["role"] == "track"]
        assert len(tracks) == 5, tracks  # 2 microphones, 2 cameras, 1 content
        probes = {}
        for f in item["files"]:
            status, body = await server.download(f"/library/{recording_id}/files/{f['name']}")
            assert status == 200
            path = tmp_path / f["name"]
            path.write_bytes(body)
            assert decodes_cleanly(path), f["name"]
            probes[f["name"]] = ffprobe(path)
        codecs = sorted(s["codec_name"] for p in probes.values() for s in p["streams"])
        # cameras and content as H.264 (the VP8 ones transcoded), microphones kept as Opus,
        # and the composite: H.264 video with AAC sound
        assert codecs.count("opus") == 2 and "aac" in codecs
        assert codecs.count("h264") == 4
        composite = next(f for f in item["files"] if f["role"] == "composite")
        duration = float(probes[composite["name"]]["format"]["duration"])
        assert abs(duration - item["duration_s"]) < 2.5, (duration, item["duration_s"])

        # A/V sync: each participant's microphone and camera files start together, and the
        # composite's sound and picture too (start-time offset by ffprobe).
        def start(name: str, kind: str) -> float:
            stream = next(s for s in probes[name]["streams"] if s["codec_type"] == kind)
            return float(stream["start_time"])

        for who in ("Chair", "County-doctor"):
            mic = next(f["name"] for f in tracks if who in f["name"] and "microphone" in f["name"])
            cam = next(f["name"] for f in tracks if who in f["name"] and "camera" in f["name"])
            offset = abs(start(mic, "audio") - start(cam, "video"))
            assert offset <= 0.1, (who, offset)
        offset = abs(start(composite["name"], "audio") - start(composite["name"], "video"))
        assert offset <= 0.1, offset

        # Encrypted at rest: the bytes on disk are not MP4; a range returns exact plaintext.
        name = composite["name"]
        on_disk = next(server.data_dir.rglob(name))
        assert on_disk.read_bytes()[4:8] != b"ftyp"
        plain = (tmp_path / name).read_bytes()
        status, part = await server.download(
            f"/library/{recording_id}/files/{name}", {"Range": "bytes=1000-70999"}
        )
        assert status == 206 and part == plain[1000:71000]
    finally:
        await chair.close()
        await county.close()


def _media_span(path: Path) -> tuple[float, float]:
    """First and end time (seconds, the file's time line) of the first stream's packets."""
    with av.open(str(path)) as container:
        stream = container.streams[0]
        first, end = math.inf, -math.inf
        for packet in container.demux(stream):
            if packet.pts is None or packet.time_base is None:
                continue
            start = float(packet.pts * packet.time_base)
            first = min(first, start)
            end = max(end, start + float((packet.duration or 0) * packet.time_base))
    return first, end


@pytest.mark.timeout(300)
@pytest.mark.parametrize("encrypted", [True, False], ids=["encrypted", "plain"])
async def test_killing_every_process_mid_recording_loses_at_most_two_seconds(
    tmp_path: Path, encrypted: bool
) -> None:
    """Every server process SIGKILLed 7 s into a recording of a low-bitrate camera and a
    microphone: after the restart each track plays to within 2 s of the cut, every file
    decodes without an error, and the composite gets made."""
    data = tmp_path / "srv"
    options = [] if encrypted else ["--no-encrypt-recordings"]
    server = ServerProcess(data, options, workers=2)
    await server.start()
    client: RoomClient | None = None
    try:
        await server.create_room("cardio-1", "correct horse")
        link = await server.invite("cardio-1", role="chair")
        client = await joined_client(server, "Chair", invite=link.split("invite=", 1)[1])
        # 160x120 at 10 fps: tens of kbit/s, a 64 KiB chunk every several seconds at most.
        await client.publish(
            {
                "microphone": ToneTrack(),
                "camera": ColourTrack((10, 10, 200), width=160, height=120, fps=10),
            },
            video_codec="video/H264",
        )
        async with server.http.post(
            server.base_url + "/api/rooms/cardio-1/recording", json={"active": True}
        ) as r:
            assert r.status == 200, await r.text()
            state = await r.json()
        recording_id = state["recording_id"]
        started = datetime.fromisoformat(state["started_at"].replace("Z", "+00:00")).timestamp()
        await client.wait_for(lambda m: m["type"] == "recording" and m["active"])
        await asyncio.sleep(7)
        cut = time.time()
        await server.kill_every_process()
    finally:
        if client is not None:
            await client.close()
    recorded = cut - started

    again = ServerProcess(data, options, admin_token=server.admin_token, workers=2)
    await again.start()
    try:
        item = await _item(again, recording_id, complete=False)
        assert item["status"] == "complete", item
        tracks = [f for f in item["files"] if f["role"] == "track"]
        ends: dict[str, float] = {}
        errors: dict[str, str] = {}
        for f in tracks:
            on_disk = data / "recordings" / recording_id / f["name"]
            assert (on_disk.read_bytes()[:7] == b"MCUENC1") == encrypted, f["name"]
            path = await _download(again, recording_id, f["name"], tmp_path)
            # On the recording's time line: the track ends where the cut came, less the loss.
            ends[f["name"]] = _media_span(path)[1]
            errors[f["name"]] = _decode_errors(path)
        print(f"\nrecorded {recorded:.2f} s before the kill; tracks kept to", ends, errors)
        assert {f["media_type"] for f in tracks} == {"audio/mp4", "video/mp4"}, item
        for name, end in ends.items():
            assert recorded - 2.0 <= end <= recorded + 0.5, (name, end, recorded)
        assert errors == {name: "" for name in errors}

        # The session was interrupted, not ended: its composite is made after the restart.
        item = await _item(again, recording_id, complete=True)
        composite = next(f for f in item["files"] if f["role"] == "composite")
        path = await _download(again, recording_id, composite["name"], tmp_path)
        assert _decode_errors(path) == ""
        assert abs(float(ffprobe(path)["format"]["duration"]) - recorded) < 2.5
    finally:
        assert await again.stop() == 0, again.log()[-3000:]


async def _download(server: ServerProcess, item_id: str, name: str, folder: Path) -> Path:
    status, body = await server.download(f"/library/{item_id}/files/{name}")
    assert status == 200, (name, status)
    path = folder / name
    path.write_bytes(body)
    return path


def _decode_errors(path: Path) -> str:
    run = subprocess.run(
        ["ffmpeg", "-v", "error", "-xerror", "-i", str(path), "-f", "null", "-"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return run.stderr[-300:] or ("" if run.returncode == 0 else f"exit {run.returncode}")


async def _gone(server: ServerProcess, recording_id: str) -> bool:
    """Whether the library no longer has the item (polled while the room winds down)."""
    for _ in range(80):
        async with server.http.get(f"{server.base_url}/api/library/{recording_id}") as r:
            if r.status == 404:
                return True
            item = await r.json()
            if item["status"] != "recording":
                return False
        await asyncio.sleep(0.25)
    return False


async def test_room_set_to_record_automatically(server: ServerProcess) -> None:
    body = {"id": "cardio-1", "title": "Consult", "password": "correct horse", "auto_record": True}
    async with server.http.post(server.base_url + "/api/rooms", json=body) as r:
        assert r.status == 201 and (await r.json())["auto_record"] is True

    # Someone who only looks in (no media at all) and leaves: nothing was recorded, so the
    # library keeps no empty item and the disk no empty folder.
    looker = await joined_client(server, "Nurse", password="correct horse", media="none")
    try:
        started = await looker.wait_for(lambda m: m["type"] == "recording" and m["active"])
        assert started["recording_id"]
    finally:
        await looker.close()
    assert await _gone(server, started["recording_id"])
    assert not (server.data_dir / "recordings" / started["recording_id"]).exists()

    # A session with media is kept: leaving ends the recording and the library has it.
    client = await joined_client(server, "Doctor", password="correct horse")
    try:
        started = await client.wait_for(lambda m: m["type"] == "recording" and m["active"])
        await client.publish({"microphone": ToneTrack()}, video_codec="video/H264")
        await asyncio.sleep(2)
    finally:
        await client.close()
    assert not await _gone(server, started["recording_id"])
    item = await _item(server, started["recording_id"], complete=True)
    assert item["kind"] == "recording" and item["room_id"] == "cardio-1"
    assert [f["role"] for f in item["files"]].count("track") == 1, item
