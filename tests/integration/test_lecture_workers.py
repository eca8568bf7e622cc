"""A lecture spread over two workers: WHEP viewers on both receive the lecturer."""

from __future__ import annotations

import asyncio

from tests.support.room_client import ColourTrack, ToneTrack, joined_client
from tests.support.server import ServerProcess
from tests.support.whip import WhepViewer, WhipPublisher, mean_colour, near

PASSWORD = "lecturers-only"
VIEWERS = "for-every-site"
BLUE = (20, 60, 220)
ORANGE = (230, 140, 20)


async def test_viewers_on_both_workers_receive_the_lecturer(cluster: ServerProcess) -> None:
    await cluster.create_room(
        "lesson-1", PASSWORD, "Stroke care, lesson 4", kind="lecture", viewer_password=VIEWERS
    )
    lecturer = WhipPublisher(cluster.base_url, "lesson-1", PASSWORD)
    status, body = await lecturer.publish([ToneTrack(), ColourTrack(BLUE)], name="Dr Wang")
    assert status == 201, body
    chair_link = await cluster.invite("lesson-1", role="chair")
    chair = await joined_client(
        cluster, "Moderator", room="lesson-1", invite=chair_link.split("invite=", 1)[1]
    )
    viewers = [WhepViewer(cluster.base_url, "lesson-1", VIEWERS) for _ in range(4)]
    try:
        for viewer in viewers:
            status, body = await viewer.play(audio=1, video=2)
            assert status == 201, body
        # The front spread them: session ids name the worker that serves them.
        workers = {(v.location or "").rsplit("/", 1)[1].split("-", 1)[0] for v in viewers}
        assert workers == {"0", "1"}, [v.location for v in viewers]
        for viewer in viewers:
            await viewer.wait_until(
                lambda v=viewer: v.frames("video") > 10 and v.frames("audio") > 20
            )  # type: ignore[misc]
            section = viewer.section("video", 0)
            assert section is not None and near(mean_colour(section.last_frame), BLUE)
        # The lecturer's moderator counts viewers on every worker.
        await chair.wait_for(lambda m: m["type"] == "viewers" and m["count"] == 4)

        # A speaker joining the stage reaches the relayed viewers too, in the second section.
        await chair.publish({"camera": ColourTrack(ORANGE)})
        for viewer in viewers:
            await viewer.wait_until(
                lambda v=viewer: (
                    (s := v.section("video", 1)) is not None  # type: ignore[misc]
                    and s.last_frame is not None
                    and near(mean_colour(s.last_frame), ORANGE)
                )
            )

        # One viewer's connection dies without a goodbye: the others carry on, and its session
        # ends by itself.
        gone = viewers.pop(0)
        await gone.pc.close()
        before = [v.frames("video") for v in viewers]
        await asyncio.sleep(1.5)
        for viewer, frames in zip(viewers, before, strict=True):
            await viewer.wait_until(lambda v=viewer, f=frames: v.frames("video") > f + 10)  # type: ignore[misc]
        await chair.wait_for(lambda m: m["type"] == "viewers" and m["count"] == 3, timeout=45)
    finally:
        await lecturer.stop()
        for viewer in viewers:
            await viewer.stop()
        await chair.close()
