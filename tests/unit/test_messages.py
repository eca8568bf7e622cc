"""Validation of client frames: clear errors, never exceptions escaping."""

from __future__ import annotations

import pytest

from mcu.signaling.messages import Join, ProtocolError, Publish, parse_client_message


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
    publish = parse_client_message(
        '{"type": "publish", "sdp": "v=0", "tracks": [{"mid": "0", "source": "content"}], "id": 3}'
    )
    assert (
        isinstance(publish, Publish) and publish.tracks[0].source == "content" and publish.id == 3
    )
