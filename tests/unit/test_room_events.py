"""What rooms tell the platform: the events a session emits, in order, and a lesson's audience
peaks rate-limited (time as data)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from mcu.media import CodecInfo, TrackSource
from mcu.sfu.producer import Producer
from mcu.signaling.rooms.audience import Audience, ViewerPeaks
from mcu.signaling.rooms.content import ContentChannel
from mcu.signaling.rooms.events import (
    FloorChanged,
    ParticipantJoined,
    ParticipantLeft,
    RoomEvent,
    RoomFinished,
    RoomStarted,
    ViewerPeak,
)
from mcu.signaling.rooms.participant import Participant, SharedMessage
from mcu.signaling.rooms.session import Room
from tests.unit.test_room_features import PlainRoom, _join


class Recorder:
    """An event sink that writes events down."""

    def __init__(self) -> None:
        self.events: list[RoomEvent] = []

    def emit(self, event: RoomEvent) -> None:
        self.events.append(event)


async def _nobody(message: dict[str, Any]) -> None:
    """A participant without a signalling channel."""


def test_a_burst_of_joins_is_a_handful_of_peaks_and_the_last_one_is_reported() -> None:
    peaks = ViewerPeaks(interval=10.0)
    reported: list[tuple[float, int]] = []
    # 300 viewers join over 30 s, ten a second; then two leave.
    for n in range(1, 301):
        now = n / 10
        peak = peaks.observe(n, now)
        if peak is not None:
            reported.append((now, peak))
    assert reported[0] == (0.1, 1)  # the first at once
    assert len(reported) <= 4
    assert peaks.observe(298, 30.05) is None  # not a new peak
    due = peaks.next_report()
    assert due is not None and due > 30.0
    assert peaks.due(due - 0.01) is None  # its interval is not up yet
    assert peaks.due(due) == 300  # the burst's top, once its interval is up
    assert peaks.next_report() is None and peaks.due(due + 100) is None
    assert peaks.observe(301, due + 100) == 301  # a later record goes out at once


def test_a_smaller_audience_is_never_a_peak() -> None:
    peaks = ViewerPeaks(interval=10.0)
    assert peaks.observe(5, 0.0) == 5
    for now, count in ((20.0, 4), (40.0, 5), (60.0, 0)):
        assert peaks.observe(count, now) is None
    assert peaks.next_report() is None


async def test_a_lesson_reports_its_audience_peaks_and_a_meeting_does_not() -> None:
    for kind in ("lecture", "meeting"):
        room = PlainRoom(kind=kind)
        _join(room, "ana", "chair", [])
        audience = Audience(room)
        audience.peaks = ViewerPeaks(interval=0.05)
        try:
            for n in range(30):
                audience.add_watcher(f"w{n}", "WHEP viewer")
            if kind == "meeting":
                assert [e for e in room.events if isinstance(e, ViewerPeak)] == []
                continue
            assert room.events[0] == ViewerPeak("r1", 1)
            for _ in range(100):  # the trailing peak, once the interval is up (bounded)
                if room.events[-1] == ViewerPeak("r1", 30):
                    break
                await asyncio.sleep(0.02)
            peaks = [e.viewers for e in room.events if isinstance(e, ViewerPeak)]
            assert peaks == [1, 30]
        finally:
            audience.stop()
        await asyncio.sleep(0)


class PlainPort(PlainRoom):
    """A plain room that can also end a participant's track (what the floor may do)."""

    def make_producer(self, participant_id: str, source: TrackSource, codec: CodecInfo) -> Producer:
        return Producer("t1", participant_id, source, codec, lambda: None)

    async def publish_server_track(
        self, participant: Participant, key: str, producer: Producer
    ) -> None:
        raise AssertionError("no slides here")

    async def unpublish(self, participant: Participant, mid: str) -> None:
        participant.tracks.pop(mid, None)


async def test_every_change_of_presenter_is_an_event() -> None:
    room = PlainPort()
    ana = _join(room, "ana", "participant", [])
    ben = _join(room, "ben", "chair", [])
    content = ContentChannel(room)
    await content.request_floor(ana)
    await content.request_floor(ana)  # already hers: no change
    await content.request_floor(ben)  # the chair pre-empts
    await content.request_floor(ana)  # queued behind the chair
    await content.release_floor(ben)  # the next in line gets it
    await content.participant_left(ana)
    assert room.events == [
        FloorChanged("r1", "ana", None, "granted"),
        FloorChanged("r1", "ben", "ana", "preempted"),
        FloorChanged("r1", "ana", "ben", "granted"),
        FloorChanged("r1", None, "ana", "left"),
    ]


async def test_a_session_starts_and_finishes_with_its_people() -> None:
    sink = Recorder()
    room = Room("cardio-1", "Cardiology", [], None, "meeting", events=sink)
    chair = await room.add("Dr Li", "chair", _nobody, subscribe=False)
    county = await room.add("County", "participant", _nobody, subscribe=False)
    watcher = await room.add("Student", "viewer", _nobody, subscribe=False)
    await room.remove(county, "left")
    await room.remove(watcher, "disconnected")
    await room.remove(chair, "left")
    again = await room.add("Dr Li", "chair", _nobody, subscribe=False)
    await room.end("deleted")
    assert sink.events == [
        RoomStarted("cardio-1", "meeting", "Cardiology"),
        ParticipantJoined("cardio-1", chair.id, "Dr Li", "chair"),
        ParticipantJoined("cardio-1", county.id, "County", "participant"),
        # a meeting's viewer is named (nobody watches a consultation unseen)
        ParticipantJoined("cardio-1", watcher.id, "Student", "viewer"),
        ParticipantLeft("cardio-1", county.id, "participant", "left"),
        ParticipantLeft("cardio-1", watcher.id, "viewer", "disconnected"),
        ParticipantLeft("cardio-1", chair.id, "chair", "left"),
        RoomFinished("cardio-1", "empty"),
        RoomStarted("cardio-1", "meeting", "Cardiology"),
        ParticipantJoined("cardio-1", again.id, "Dr Li", "chair"),
        ParticipantLeft("cardio-1", again.id, "chair", "removed"),
        RoomFinished("cardio-1", "deleted"),
    ]
    assert all("token" not in str(e.data()) for e in sink.events)


async def test_a_lesson_counts_its_audience_and_names_its_speakers() -> None:
    sink = Recorder()
    room = Room("stroke-4", "Stroke care", [], None, "lecture", events=sink)
    lecturer = await room.add("Prof Wang", "chair", _nobody, subscribe=False)
    viewers = [await room.add(f"V{n}", "viewer", _nobody, subscribe=False) for n in range(3)]
    await room.promote(viewers[0])
    await room.demote(viewers[0])
    await room.end("ended by the chair")
    kinds = [(type(e).__name__, e.data().get("participant_id")) for e in sink.events]
    assert kinds == [
        ("RoomStarted", None),
        ("ParticipantJoined", lecturer.id),
        ("ViewerPeak", None),
        ("ParticipantJoined", viewers[0].id),  # promoted: on the stage, so named
        ("ParticipantLeft", viewers[0].id),  # demoted
        ("ParticipantLeft", lecturer.id),
        ("RoomFinished", None),
    ]
    assert sink.events[2] == ViewerPeak("stroke-4", 1)
    assert sink.events[4] == ParticipantLeft("stroke-4", viewers[0].id, "participant", "demoted")
    assert sink.events[-1] == RoomFinished("stroke-4", "ended by the chair")


async def test_a_broadcast_is_one_message_encoded_once_for_everyone() -> None:
    room = Room("cardio-2", "Cardiology", [], None, "meeting", events=Recorder())
    inboxes: list[list[dict[str, Any]]] = [[], [], []]

    def inbox(box: list[dict[str, Any]]) -> Any:
        async def send(message: dict[str, Any]) -> None:
            box.append(message)

        return send

    for i, box in enumerate(inboxes):
        await room.add(f"Doctor {i}", "participant", inbox(box), subscribe=False)
    joined = [box[-1] for box in inboxes[:2]]  # the first two heard of the third
    assert joined[0]["type"] == "participant_joined"
    assert joined[0] is joined[1] and isinstance(joined[0], SharedMessage)
    text = joined[0].text()
    assert json.loads(text) == joined[0] and joined[1].text() is text  # encoded once
    assert text == json.dumps(dict(joined[0]))  # what send_json would have written
