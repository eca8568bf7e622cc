"""Validation of client frames: clear errors, never exceptions escaping."""

from __future__ import annotations

import pytest

from mcu.signaling.endpoints.messages import Join, ProtocolError, Publish, parse_client_message


@pytest.mark.parametrize(
    ("text", "code", "needle"),
    [
        ("{not json", "bad_json", "JSON"),
        ("[1, 2]", "bad_message", ""),
        ('{"type": "fly"}', "bad_message", "type"),
        ('{"type": "join", "room": "r"}', "bad_message", "name"),
        (
            '{"type": "join", "room": "r", "name": "n", "password": "p", "invite": "i"}',
            "bad_message",
            "not both",
        ),
        (
            '{"type": "publish", "sdp": "v=0", "tracks": [{"mid": "0", "source": "webcam"}]}',
            "bad_message",
            "source",
        ),
        ('{"type": "ping", "extra": 1}', "bad_message", "extra"),
        (
            '{"type": "join", "room": "r", "resume": {"participant_id": "p1", "token": "t"},'
            ' "password": "p"}',
            "bad_message",
            "resume: takes no password",
        ),
        (
            '{"type": "join", "room": "r", "resume": {"participant_id": "p1"}}',
            "bad_message",
            "token",
        ),
        (
            '{"type": "join", "room": "r", "resume": {"participant_id": "p1", "token": "'
            + "t" * 257
            + '"}}',
            "bad_message",
            "resume.token",
        ),
        (
            '{"type": "join", "room": "r",'
            ' "resume": {"participant_id": "p1", "token": "t", "x": 1}}',
            "bad_message",
            "resume.x",
        ),
        ("[" * 100000, "bad_json", ""),
    ],
)
def test_bad_frames_are_named(text: str, code: str, needle: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_client_message(text)
    assert info.value.code == code
    assert needle in info.value.message
    assert info.value.to_message()["type"] == "error"


def test_request_id_survives_into_the_error() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_client_message('{"type": "mute", "id": "abc"}')
    assert info.value.to_message()["id"] == "abc"


def test_valid_frames() -> None:
    join = parse_client_message(
        '{"type": "join", "room": "cardio-1", "name": " Dr Li ", "password": "x"}'
    )
    assert isinstance(join, Join) and join.name == "Dr Li"
    resume = parse_client_message(
        '{"type": "join", "room": "cardio-1", "resume": {"participant_id": "p1", "token": "s"}}'
    )
    assert isinstance(resume, Join) and resume.resume is not None and resume.name is None
    assert (resume.resume.participant_id, resume.resume.token) == ("p1", "s")
    publish = parse_client_message(
        '{"type": "publish", "sdp": "v=0", "tracks": [{"mid": "0", "source": "content"}], "id": 3}'
    )
    assert (
        isinstance(publish, Publish) and publish.tracks[0].source == "content" and publish.id == 3
    )


HUGE = "9" * 5000  # past Python's 4,300-digit limit for int() on a string


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"type": "ping", "id": ' + HUGE + "}", "id"),
        ('{"type": "ping", "id": -' + HUGE + "}", "id"),
        ('{"type": "ping", "id": 9007199254740992}', "id"),  # beyond what JavaScript can echo
        ('{"type": "ping", "id": ' + "9" * 4000 + "}", "id"),
        ('{"type": "ping", "id": true}', "id"),
        ('{"type": "subscription", "bitrate": ' + HUGE + "}", "bitrate"),
        ('{"type": "slides", "action": "page", "page": ' + HUGE + "}", "page"),
        ('{"type": "subscription", "participants": ["' + "p" * 65 + '"]}', "participants"),
    ],
)
def test_out_of_range_values_name_their_field(text: str, field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_client_message(text)
    assert info.value.code == "bad_message"
    assert field in info.value.message
    # An id that is not a valid request id is never echoed back.
    assert "id" not in info.value.to_message()


def test_largest_request_ids_are_accepted() -> None:
    for value in (2**53 - 1, -(2**53 - 1), 0):
        ping = parse_client_message(f'{{"type": "ping", "id": {value}}}')
        assert ping.id == value
