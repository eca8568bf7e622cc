"""Validated WebSocket messages (docs/protocol.md is the prose version of this module)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from mcu.contracts.cluster import MAX_ROOM_ID_CHARS
from mcu.infra import jsonnumbers
from mcu.signaling.rooms.errors import RoomError
from mcu.signaling.rooms.sources import SOURCES, Source

MAX_REQUEST_ID = 2**53 - 1
"""Largest integer request id: JavaScript's ``Number.MAX_SAFE_INTEGER`` (a browser reads larger
ones rounded, so the reply would never match its request)."""
MAX_REQUEST_ID_CHARS = 64
"Longest string request id."


def _request_id(value: object) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool):
        if not -MAX_REQUEST_ID <= value <= MAX_REQUEST_ID:
            raise ValueError(f"must be an integer between -{MAX_REQUEST_ID} and {MAX_REQUEST_ID}")
        return value
    if isinstance(value, str):
        if len(value) > MAX_REQUEST_ID_CHARS:
            raise ValueError(f"must be a string of at most {MAX_REQUEST_ID_CHARS} characters")
        return value
    if isinstance(value, jsonnumbers.OversizedNumber):
        raise ValueError(f"must be an integer between -{MAX_REQUEST_ID} and {MAX_REQUEST_ID}")
    raise ValueError("must be an integer or a string")


RequestId = Annotated[int | str, PlainValidator(_request_id)]
"A client's request id, echoed in the reply: an integer JavaScript holds exactly, or a string."
MAX_SDP_CHARS = 100_000


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: RequestId | None = None
    "Optional request id, copied into the reply."


class ResumeCredential(BaseModel):
    """Who resumes a session after a lost connection: the ``joined`` it had said both."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    participant_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    token: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    "The ``resume_token`` of that ``joined``."


class Join(_Message):
    """Enter a room with a password, an invite token or the platform's access token, or come
    back to it (``resume``) as the participant one was before the connection was lost."""

    type: Literal["join"]
    room: Annotated[str, StringConstraints(min_length=1, max_length=MAX_ROOM_ID_CHARS)]
    name: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)] | None
    ) = None
    "Needed unless the access token names its holder (its ``name`` wins)."
    password: Annotated[str, StringConstraints(max_length=256)] | None = None
    invite: Annotated[str, StringConstraints(max_length=2048)] | None = None
    token: Annotated[str, StringConstraints(max_length=4096)] | None = None
    "The platform's access token (a JWT)."
    resume: ResumeCredential | None = None
    "Resume a session whose connection was lost (no other credential; the name is not needed)."

    @model_validator(mode="after")
    def _named(self) -> Join:
        if self.resume is not None:
            if any(c is not None for c in (self.password, self.invite, self.token)):
                raise ValueError("resume: takes no password, invite or token")
            return self
        # Only a token can name its holder; the server checks that it does once it is verified.
        if self.name is None and self.token is None:
            raise ValueError("name: required (unless a token names you)")
        return self

    media: Literal["connection", "none"] = "connection"
    "none: no subscribe connection (a lecture viewer that receives the stage over WHEP)."
    e2ee: bool = False
    "The client encrypts and decrypts frames with the room key: needed in an end-to-end "
    "encrypted room, refused in another (docs/e2ee.md)."


class PublishedTrackSpec(BaseModel):
    """One media section of a publish offer and what it carries."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    mid: Annotated[str, StringConstraints(min_length=1, max_length=16)]
    source: Source


class Publish(_Message):
    """The publish connection's offer."""

    type: Literal["publish"]
    sdp: Annotated[str, StringConstraints(min_length=1, max_length=MAX_SDP_CHARS)]
    tracks: Annotated[list[PublishedTrackSpec], Field(max_length=len(SOURCES))]
    "At most one track per source."


class SubscribeAnswer(_Message):
    """The answer to the server's latest subscribe offer."""

    type: Literal["subscribe_answer"]
    sdp: Annotated[str, StringConstraints(min_length=1, max_length=MAX_SDP_CHARS)]


class Subscription(_Message):
    """Which sources (and optionally which publishers) to receive."""

    type: Literal["subscription"]
    sources: Annotated[list[Source], Field(max_length=3)] = list(SOURCES)
    participants: (
        Annotated[
            list[Annotated[str, StringConstraints(max_length=64)]],
            Field(max_length=256),
        ]
        | None
    ) = None
    mode: Literal["forwarded", "mixed", "room"] | None = None
    "mixed: one composite picture and N-1 sound; room: follow the room's default."
    layout: Literal["grid", "speaker", "content"] | None = None
    resolution: Literal["1280x720", "960x540", "640x360"] | None = None
    bitrate: Annotated[int, Field(ge=250_000, le=1_500_000)] | None = None
    "The VP8 encoder's range (aiortc's libvpx settings)."
    page: Annotated[int, Field(ge=0, le=100)] | None = None


class Mute(_Message):
    """The client muted or unmuted its own track."""

    type: Literal["mute"]
    source: Source
    muted: bool


class Chair(_Message):
    """A chair's action on the room."""

    type: Literal["chair"]
    action: Literal["mute", "remove", "end", "room_mode", "record", "promote", "demote"]
    participant_id: Annotated[str, StringConstraints(max_length=64)] | None = None
    source: Source | None = None
    mode: Literal["forwarded", "mixed"] | None = None
    active: bool | None = None
    "For record: start (true) or stop (false) recording."


class Floor(_Message):
    """Ask for the content floor, or give it back."""

    type: Literal["floor"]
    action: Literal["request", "release"]


class Slides(_Message):
    """Show, page through, or stop server-rendered slides of an uploaded document."""

    type: Literal["slides"]
    action: Literal["show", "page", "stop"]
    document_id: Annotated[str, StringConstraints(max_length=64)] | None = None
    page: Annotated[int, Field(ge=1, le=100_000)] | None = None


class Hand(_Message):
    """A lecture viewer raises or lowers a hand to ask to speak."""

    type: Literal["hand"]
    raised: bool


class Leave(_Message):
    """Leave the room."""

    type: Literal["leave"]


class Ping(_Message):
    """Keep-alive; answered with pong."""

    type: Literal["ping"]


ClientMessage = Annotated[
    Join
    | Publish
    | SubscribeAnswer
    | Subscription
    | Mute
    | Chair
    | Floor
    | Slides
    | Hand
    | Leave
    | Ping,
    Field(discriminator="type"),
]
_client_message: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)


class ProtocolError(Exception):
    """A request the server refuses; sent to the client as an ``error`` message."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        request_id: RequestId | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id
        self.retry_after = retry_after

    @classmethod
    def from_room(cls, exc: RoomError, request_id: RequestId | None = None) -> ProtocolError:
        """The ``error`` a room's refusal becomes on the wire: its code and message as they are."""
        return cls(exc.code, exc.message, request_id=request_id)

    def to_message(self) -> dict[str, Any]:
        """The ``error`` message for the client."""
        out: dict[str, Any] = {"type": "error", "code": self.code, "message": self.message}
        if self.request_id is not None:
            out["id"] = self.request_id
        if self.retry_after is not None:
            out["retry_after"] = round(self.retry_after, 1)
        return out


def parse_client_message(text: str) -> ClientMessage:
    """Parse and validate one client frame; raises ProtocolError naming the problem."""
    try:
        raw = jsonnumbers.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ProtocolError("bad_json", f"not valid JSON: {exc}") from None
    request_id: RequestId | None = None
    if isinstance(raw, dict) and "id" in raw:
        try:
            request_id = _request_id(raw["id"])
        except ValueError:
            pass  # validation names it; an unusable id is not echoed
    if isinstance(raw, dict) and raw.get("type") == "join" and raw.get("password") is not None:
        if raw.get("invite") is not None:
            raise ProtocolError(
                "bad_message", "join takes a password or an invite, not both", request_id=request_id
            )
    try:
        return _client_message.validate_python(raw)
    except ValidationError as exc:
        raise ProtocolError("bad_message", _describe(exc), request_id=request_id) from None


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error["loc"]) or "message"
        text = str(error["ctx"]["error"]) if error["type"] == "value_error" else error["msg"]
        problems.append(f"{where}: {text}")
    return "; ".join(problems)
