"""What the room domain refuses, said once for every endpoint.

A room raises these; the endpoints turn them into their own wire errors (a WebSocket ``error``
message, an HTTP status) with the same ``code`` and ``message``, which clients branch on and
show. Admission's :class:`~mcu.signaling.rooms.admission.Refused` is the same idea for
credentials.
"""

from __future__ import annotations

__all__ = [
    "FloorBusy",
    "Forbidden",
    "InvalidRequest",
    "PageUnavailable",
    "ResumeRefused",
    "RoomDocumentsFull",
    "RoomError",
    "UnknownRoom",
]


class RoomError(Exception):
    """A request the room refuses: ``code`` is stable (clients branch on it), ``message`` says
    why to a person."""

    code: str = "bad_message"
    "The default code of the class; an instance may carry a more specific one."

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class Forbidden(RoomError):
    """The participant's role does not allow it (a viewer presenting, a speaker raising a
    hand)."""

    code = "forbidden"


class InvalidRequest(RoomError):
    """The request cannot apply to the room as it is: a malformed offer (``bad_sdp``), a track,
    participant, document or page that is not there (``bad_message``, ``unknown_document``,
    ``bad_page``)."""


class FloorBusy(RoomError):
    """Someone else holds the content floor."""

    code = "floor_busy"


class PageUnavailable(RoomError):
    """A document's page cannot be shown; the code is the document sandbox's (``corrupt``,
    ``too_costly``, ...)."""


class RoomDocumentsFull(RoomError):
    """The room holds its maximum of documents, none of them the uploader's to replace."""

    code = "too_many_documents"


class UnknownRoom(RoomError):
    """No room has that id (another worker asked for a room that is not in the store)."""

    code = "unknown_room"


class ResumeRefused(RoomError):
    """A session cannot be resumed: it ended (its grace period passed, it was removed, the room
    ended) or the resume credential is not its. One answer for every case, so it tells nobody
    which participant ids exist."""

    code = "resume_failed"

    def __init__(self) -> None:
        super().__init__("this session can no longer be resumed; join the room again")
