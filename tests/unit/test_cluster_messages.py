"""The typed bodies of the workers' internal routes: every one survives the wire, and a
malformed one is refused, never half-read."""

from __future__ import annotations

import json
from typing import Any, get_args

import pytest
from pydantic import BaseModel, ValidationError

from mcu.contracts.cluster import (
    AdmitReply,
    AdmitRequest,
    CodecDescription,
    Done,
    Refusal,
    RelayReply,
    RelayRequest,
    Role,
    RoomExistsReply,
    Source,
    StageDescription,
    StreamDescription,
    ViewersReport,
    Watcher,
)
from mcu.crypto.tokens import Role as TokenRole
from mcu.media import TrackSource
from mcu.signaling.endpoints.relays import admission_of, admit_reply
from mcu.signaling.rooms.admission import Admitted, Refused
from mcu.signaling.rooms.store import RoomRecord

VP8 = CodecDescription(mime_type="video/VP8", clock_rate=90000)
OPUS = CodecDescription(
    mime_type="audio/opus", clock_rate=48000, channels=2, parameters=(("useinbandfec", "1"),)
)
CAMERA = StreamDescription(
    ssrc=0xFFFFFFFF, track_id="t1", participant_id="p1", source="camera", codec=VP8
)
MICROPHONE = StreamDescription(
    ssrc=7, track_id="t2", participant_id="p1", source="microphone", codec=OPUS
)
STAGE = StageDescription(video=(CAMERA,), audio=(MICROPHONE,))

MESSAGES: list[BaseModel] = [
    Done(),
    RoomExistsReply(exists=True),
    RelayRequest(worker=3, host="127.0.0.1", port=40123),
    RelayReply(relay=("127.0.0.1", 40999), stage=STAGE),
    RelayReply(relay=("127.0.0.1", 1), stage=StageDescription(video=(), audio=())),
    STAGE,
    ViewersReport(worker=1, count=2, watchers=(Watcher(id="w1a2b3c4", name="Ward 7 王医生"),)),
    ViewersReport(worker=0, count=0),
    AdmitRequest(token="audience-pass", address="2001:db8::1"),
    AdmitReply(own=True),
    AdmitReply(role="viewer"),
    AdmitReply(refused=Refusal(code="rate_limited", message="too many", retry_after=12.5)),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_message_survives_the_wire(message: BaseModel) -> None:
    wire = message.model_dump_json().encode()
    assert type(message).model_validate_json(wire) == message
    # An edge reads replies already decoded by the HTTP client.
    assert type(message).model_validate(json.loads(wire)) == message


GOOD_STREAM: dict[str, Any] = json.loads(CAMERA.model_dump_json())


@pytest.mark.parametrize(
    ("model", "body"),
    [
        (RoomExistsReply, {}),
        (RoomExistsReply, {"exists": "yes"}),
        (RoomExistsReply, {"exists": 1}),
        (RelayRequest, {"worker": 1, "host": "127.0.0.1"}),
        (RelayRequest, {"worker": -1, "host": "127.0.0.1", "port": 5000}),
        (RelayRequest, {"worker": "1", "host": "127.0.0.1", "port": 5000}),
        (RelayRequest, {"worker": 1, "host": "127.0.0.1", "port": 70000}),
        (RelayRequest, {"worker": 1, "host": "127.0.0.1", "port": 5000, "secret": 1}),
        (RelayRequest, [1, "127.0.0.1", 5000]),
        (RelayReply, {"relay": ["127.0.0.1"], "stage": {"video": [], "audio": []}}),
        (RelayReply, {"relay": ["127.0.0.1", 5000]}),
        (StageDescription, {"video": []}),
        (StageDescription, {"video": [GOOD_STREAM | {"ssrc": 2**32}], "audio": []}),
        (StageDescription, {"video": [GOOD_STREAM | {"source": "screen"}], "audio": []}),
        (StageDescription, {"video": [GOOD_STREAM | {"track_id": 5}], "audio": []}),
        (StageDescription, {"video": [{"ssrc": 1}], "audio": []}),
        (StageDescription, {"video": {"ssrc": 1}, "audio": []}),
        (CodecDescription, {"mime_type": "VP8", "clock_rate": 90000}),
        (CodecDescription, {"mime_type": "video/VP8", "clock_rate": 0}),
        (CodecDescription, {"mime_type": "video/VP8", "clock_rate": 90000, "parameters": [["a"]]}),
        (ViewersReport, {"worker": 0, "count": -1}),
        (ViewersReport, {"worker": 0, "count": 1, "watchers": [{"id": "w1"}]}),
        (ViewersReport, {"worker": 0, "count": 1, "watchers": [{"id": 1, "name": "n"}]}),
        (AdmitRequest, {"token": "t"}),
        (AdmitRequest, {"token": None, "address": "1.2.3.4"}),
        (AdmitReply, {"own": "true"}),
        (AdmitReply, {"role": "admin"}),
        (AdmitReply, {"refused": {"code": "wrong_password"}}),
        (AdmitReply, None),
    ],
)
def test_a_malformed_body_is_refused(model: type[BaseModel], body: object) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(body)
    with pytest.raises(ValidationError):
        model.model_validate_json(json.dumps(body))


def test_not_json_is_refused() -> None:
    with pytest.raises(ValidationError):
        RelayRequest.model_validate_json(b'{"worker": 1,')


def test_a_watcher_name_is_cut_where_it_is_received() -> None:
    report = ViewersReport.model_validate(
        {"worker": 1, "count": 1, "watchers": [{"id": "w1", "name": "x" * 500}]}
    )
    assert report.watchers[0].name == "x" * 64


def test_the_contract_spells_roles_and_sources_as_the_code_does() -> None:
    # The contract imports nothing of mcu, so it spells them out; these keep them in step.
    assert set(get_args(Role)) == set(get_args(TokenRole))
    assert set(get_args(Source)) == {source.value for source in TrackSource}


ROOM = RoomRecord("cardio-1", "Cardiology", "<hash>", 0.0, None, None, 4, kind="meeting")


@pytest.mark.parametrize(
    "verdict",
    [
        Admitted(ROOM, "participant", own_session=True),
        Admitted(ROOM, "chair"),
        Admitted(ROOM, "participant"),
        Admitted(ROOM, "viewer"),
        Refused("wrong_password", "wrong room password"),
        Refused("rate_limited", "too many failed attempts", retry_after=3.0),
        Refused("room_full", "the room holds 4 participants"),
    ],
)
def test_a_decision_reaches_the_edge_as_the_home_made_it(verdict: Admitted | Refused) -> None:
    wire = json.loads(admit_reply(verdict).model_dump_json())
    if isinstance(verdict, Admitted):
        assert admission_of(wire, ROOM) == verdict
        return
    with pytest.raises(Refused) as refused:
        admission_of(wire, ROOM)
    assert (refused.value.code, refused.value.message, refused.value.retry_after) == (
        verdict.code,
        verdict.message,
        verdict.retry_after,
    )


@pytest.mark.parametrize(
    "reply", [None, "ok", [], {}, {"role": "admin"}, {"own": 1}, {"refused": {"code": 1}}]
)
def test_a_malformed_decision_admits_nobody(reply: object) -> None:
    with pytest.raises(Refused) as refused:
        admission_of(reply, ROOM)
    assert refused.value.code == "bad_invite"
