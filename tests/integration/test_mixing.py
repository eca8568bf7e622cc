"""MCU mixing: one composite picture and N-1 sound, checked by pixels and by spectrum."""

from __future__ import annotations

import numpy as np

from mcu.mixer.layout import LayoutInput, compute_layout
from tests.support.room_client import ColourTrack, RoomClient, ToneTrack, joined_client
from tests.support.server import ServerProcess

PEOPLE = {
    "Ana": ((220, 40, 40), 440.0),
    "Ben": ((40, 200, 40), 1000.0),
    "Cai": ((40, 40, 220), 2200.0),
}


def _mixed_video(client: RoomClient) -> np.ndarray | None:
    for track in client.received.values():
        if track.participant_id == "mix" and track.kind == "video" and track.last_frame is not None:
            image: np.ndarray = track.last_frame.to_ndarray(format="rgb24")
            return image
    return None


def _tile_colours_match(image: np.ndarray, names: list[str]) -> bool:
    inputs = [LayoutInput(name, name) for name in names]  # same order: sorted by label
    tiles = compute_layout("grid", inputs, (image.shape[1], image.shape[0]))
    for tile in tiles:
        cy, cx = tile.y + tile.height // 3, tile.x + tile.width // 2  # above the name label
        expected = PEOPLE[tile.label][0]
        if np.abs(image[cy, cx].astype(int) - expected).max() > 45:
            return False
    return len(tiles) == len(names)


def _tone_strength(samples: list[np.ndarray], frequency: float) -> float:
    signal = np.concatenate(samples[-100:])
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    freqs = np.fft.rfftfreq(len(signal), 1 / 48000)
    band = (freqs > frequency - 20) & (freqs < frequency + 20)
    return float(spectrum[band].max() / (np.median(spectrum) + 1e-9))


async def test_mixed_receiver_sees_tiles_and_hears_everyone_but_itself(
    server: ServerProcess,
) -> None:
    await server.create_room("cardio-1", "correct horse")
    clients = {name: await joined_client(server, name, password="correct horse") for name in PEOPLE}
    cameras = {name: ColourTrack(colour) for name, (colour, _) in PEOPLE.items()}
    try:
        for name, (_, tone) in PEOPLE.items():
            await clients[name].publish({"microphone": ToneTrack(tone), "camera": cameras[name]})
        ana = clients["Ana"]
        await ana.send(
            {"type": "subscription", "mode": "mixed", "layout": "grid", "resolution": "640x360"}
        )
        offer = await ana.wait_for(
            lambda m: (
                m["type"] == "subscribe_offer"
                and all(t["participant_id"] == "mix" for t in m["tracks"])
            )
        )
        assert sorted(t["kind"] for t in offer["tracks"]) == ["audio", "video"]

        def picture_ok() -> bool:
            image = _mixed_video(ana)
            return (
                image is not None
                and image.shape == (360, 640, 3)
                and _tile_colours_match(image, sorted(PEOPLE))
            )

        await ana.wait_until(picture_ok, timeout=30)

        def audio_ready() -> bool:
            mixed = [
                t for t in ana.received.values() if t.participant_id == "mix" and t.kind == "audio"
            ]
            return bool(mixed) and len(mixed[0].audio) >= 100

        await ana.wait_until(audio_ready, timeout=30)
        audio = next(
            t for t in ana.received.values() if t.participant_id == "mix" and t.kind == "audio"
        )
        ben, cai = _tone_strength(audio.audio, 1000.0), _tone_strength(audio.audio, 2200.0)
        own, nobody = _tone_strength(audio.audio, 440.0), _tone_strength(audio.audio, 3100.0)
        print(f"mix-minus spectrum: Ben {ben:.0f}, Cai {cai:.0f}, own {own:.1f}, none {nobody:.1f}")
        assert ben > 100 and cai > 100  # the others are loud and clear
        assert own < ben / 50 and own < cai / 50  # her own tone is not sent back (codec noise)
        assert np.abs(np.concatenate(audio.audio)).max() < 32767  # limited, never clipped

        # Cai leaves mid-mix and Ben's camera switches resolution: the picture goes on.
        cameras["Ben"].width, cameras["Ben"].height = 640, 480
        await clients["Cai"].send({"type": "leave"})
        await ana.wait_until(
            lambda: (
                (image := _mixed_video(ana)) is not None
                and _tile_colours_match(image, ["Ana", "Ben"])
            ),
            timeout=20,
        )
        assert await server.decoded_frames() > 0  # mixing decodes; forwarding alone does not
    finally:
        for client in clients.values():
            await client.close()


async def test_room_switches_between_forwarded_and_mixed(server: ServerProcess) -> None:
    await server.create_room("cardio-1", "correct horse")
    link = await server.invite("cardio-1", role="chair")
    chair = RoomClient(server.ws_url, "Chair")
    await chair.connect()
    assert (await chair.join("cardio-1", invite=link.split("invite=", 1)[1]))["type"] == "joined"
    ben = await joined_client(server, "Ben", password="correct horse")
    try:
        await ben.publish(
            {"microphone": ToneTrack(1000.0), "camera": ColourTrack(PEOPLE["Ben"][0])}
        )
        bid = ben.participant_id or ""
        await chair.wait_until(lambda: chair.frames_from(bid, "video") > 2)
        await chair.send({"type": "chair", "action": "room_mode", "mode": "mixed"})
        await chair.wait_for(lambda m: m["type"] == "room_mode" and m["mode"] == "mixed")
        await chair.wait_until(lambda: _mixed_video(chair) is not None, timeout=30)
        # Back to forwarding: the mix tracks end, Ben's own tracks return.
        await chair.send({"type": "chair", "action": "room_mode", "mode": "forwarded"})
        await chair.wait_for(
            lambda m: (
                m["type"] == "subscribe_offer"
                and all(t["participant_id"] == bid for t in m["tracks"])
                and len(m["tracks"]) == 2
            )
        )
        before = chair.frames_from(bid, "video")
        await chair.wait_until(lambda: chair.frames_from(bid, "video") > before + 5, timeout=20)
    finally:
        await chair.close()
        await ben.close()
