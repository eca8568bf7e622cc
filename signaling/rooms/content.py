"""A room's content channel: the floor, and slides the server renders from uploaded documents.

A participant either publishes a ``content`` track itself (screen, capture card) or has the server
render pages of a document into one. Both hold the room's single floor.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mcu.media import CodecInfo, TrackSource
from mcu.sfu.producer import Producer
from mcu.signaling.rooms.errors import (
    FloorBusy,
    Forbidden,
    InvalidRequest,
    PageUnavailable,
    RoomDocumentsFull,
)
from mcu.signaling.rooms.events import FloorChanged
from mcu.signaling.rooms.floor import FloorChange, FloorControl
from mcu.slides.documents import Document, DocumentError
from mcu.slides.slidetrack import SlideTrack

if TYPE_CHECKING:
    from mcu.signaling.rooms.participant import Participant
    from mcu.signaling.rooms.ports import RoomPort

logger = logging.getLogger(__name__)

SLIDES_MID = "slides"
"Key of a server-rendered track in the presenter's track table (it has no media section)."
SLIDE_CODEC = CodecInfo("video/VP8", 90000)
SLIDE_SIZE = (1920, 1080)
MAX_DOCUMENTS_PER_ROOM = 20
MAX_DOCUMENTS_PER_PARTICIPANT = 8
"Beyond this a participant's own oldest document goes; nobody's uploads evict another's."


def may_present(participant: Participant) -> None:
    """Refuse a lecture's viewers: they watch, and raise a hand to be given the word."""
    if not participant.visible:
        raise Forbidden("viewers cannot present; raise a hand to speak")


@dataclass
class SlideShow:
    """The slides being shown."""

    presenter_id: str
    document_id: str
    page: int
    pages: int
    track: SlideTrack
    producer: Producer

    def describe(self) -> dict[str, Any]:
        """The protocol's ``slides`` event."""
        return {
            "type": "slides",
            "presenter": self.presenter_id,
            "document_id": self.document_id,
            "page": self.page,
            "pages": self.pages,
            "track_id": self.producer.track_id,
        }


class ContentChannel:
    """Floor and slides of one room."""

    def __init__(self, room: RoomPort) -> None:
        self.room = room
        self.floor = FloorControl()
        self.slides: SlideShow | None = None
        self.documents: OrderedDict[str, tuple[str, Document]] = OrderedDict()
        self._render_lock = asyncio.Lock()

    def describe(self) -> dict[str, Any]:
        """Floor and slides state for the ``joined`` message."""
        slides = self.slides.describe() if self.slides else {"type": "slides", "presenter": None}
        return {"floor": {"holder": self.floor.holder, "mode": self.floor.mode}, "slides": slides}

    # -- floor -------------------------------------------------------------------------------

    async def request_floor(self, participant: Participant) -> None:
        """A participant asks for the floor (a chair pre-empts)."""
        may_present(participant)
        outcome = self.floor.request(participant.id, preempt=participant.role == "chair")
        if isinstance(outcome, int):
            await participant.send({"type": "floor_queued", "position": outcome})
        elif outcome is not None:
            await self._apply(outcome)
        else:  # already the holder: confirm, so a client waiting for a grant does not hang
            await participant.send(
                {
                    "type": "floor",
                    "holder": participant.id,
                    "mode": self.floor.mode,
                    "reason": "granted",
                }
            )

    async def release_floor(self, participant: Participant, reason: str = "released") -> None:
        """A participant gives the floor back (its content ends) or leaves the line."""
        holder = self.floor.holder == participant.id
        if holder:
            await self._end_content(participant)
        change = self.floor.release(participant.id, "left" if reason == "left" else "released")
        if change is not None:
            await self._apply(change, content_ended=True)
        if not holder or change is not None:
            await self._announce_positions()

    async def claim_for_stream(self, participant: Participant) -> None:
        """Before a ``content`` track is published: the floor must be free or already ours."""
        may_present(participant)
        if self.floor.holder not in (None, participant.id):
            raise FloorBusy("someone else is presenting; request the floor")
        if self.floor.holder is None:
            await self.request_floor(participant)
        if self.slides is not None and self.slides.presenter_id == participant.id:
            await self._stop_slides()

    async def stream_published(self, participant: Participant) -> None:
        """The holder's content track is live."""
        change = self.floor.set_mode(participant.id, "stream")
        if change is not None:
            await self.room.broadcast(change.to_message())

    async def stream_unpublished(self, participant: Participant) -> None:
        """The holder stopped its content track: the floor goes back."""
        if self.floor.holder == participant.id and self.floor.mode == "stream":
            change = self.floor.release(participant.id)
            if change is not None:
                await self._apply(change, content_ended=True)
                await self._announce_positions()

    async def participant_left(self, participant: Participant) -> None:
        """Release what the participant held and forget its documents."""
        await self.release_floor(participant, "left")
        for document_id in [
            d for d, (owner, _) in self.documents.items() if owner == participant.id
        ]:
            self.documents.pop(document_id)[1].close()

    async def _apply(self, change: FloorChange, *, content_ended: bool = False) -> None:
        # Every change of presenter comes through here (a new mode alone is no change of hands).
        self.room.emit(FloorChanged(self.room.id, change.holder, change.previous, change.reason))
        if change.previous is not None and not content_ended:
            previous = self.room.participants.get(change.previous)
            if previous is not None:
                await self._end_content(previous)
        await self.room.broadcast(change.to_message())

    async def _announce_positions(self) -> None:
        for participant_id, position in self.floor.positions():
            waiting = self.room.participants.get(participant_id)
            if waiting is not None:
                await waiting.send({"type": "floor_queued", "position": position})

    async def _end_content(self, participant: Participant) -> None:
        """End whatever ``participant`` shows: its slides, or its own content track."""
        if self.slides is not None and self.slides.presenter_id == participant.id:
            await self._stop_slides()
        for mid, track in list(participant.tracks.items()):
            if track.producer.source is TrackSource.CONTENT:
                await self.room.unpublish(participant, mid)

    # -- documents and slides ----------------------------------------------------------------

    def add_document(self, participant: Participant, document: Document) -> str:
        """Keep an uploaded document for ``participant``; returns its id.

        At a limit (its own, or the room's) the uploader's oldest document not on screen makes
        way; with none of its own to replace, :class:`RoomDocumentsFull` is raised.
        """
        may_present(participant)
        shown = self.slides.document_id if self.slides else None
        mine = [d for d, (owner, _) in self.documents.items() if owner == participant.id]
        while len(mine) >= MAX_DOCUMENTS_PER_PARTICIPANT or (
            len(self.documents) >= MAX_DOCUMENTS_PER_ROOM
        ):
            oldest = next((d for d in mine if d != shown), None)
            if oldest is None:
                raise RoomDocumentsFull(
                    f"the room holds {MAX_DOCUMENTS_PER_ROOM} documents; none is yours to replace"
                )
            mine.remove(oldest)
            self.documents.pop(oldest)[1].close()
        document_id = "d" + secrets.token_hex(4)
        self.documents[document_id] = (participant.id, document)
        return document_id

    async def show(self, participant: Participant, document_id: str | None, page: int) -> None:
        """Show a page of an uploaded document, taking the floor as a request would."""
        may_present(participant)
        entry = self.documents.get(document_id or "")
        if entry is None or entry[0] != participant.id:
            raise InvalidRequest(f"no document {document_id!r} of yours", code="unknown_document")
        document = entry[1]
        if not 1 <= page <= document.pages:
            raise InvalidRequest(f"page {page} is not in 1..{document.pages}", code="bad_page")
        if self.floor.holder != participant.id:
            if self.floor.holder is not None and participant.role != "chair":
                raise FloorBusy("someone else is presenting; request the floor")
            await self.request_floor(participant)
        for mid, published in list(participant.tracks.items()):
            if published.producer.source is TrackSource.CONTENT and mid != SLIDES_MID:
                await self.room.unpublish(participant, mid)  # slides replace a shared screen
        image = await self._render(document, page)
        if self.slides is None or self.slides.presenter_id != participant.id:
            if self.slides is not None:
                await self._stop_slides()
            producer = self.room.make_producer(participant.id, TrackSource.CONTENT, SLIDE_CODEC)
            slide_track = SlideTrack(producer, SLIDE_CODEC, SLIDE_SIZE)
            # Through the channel, not the track's own method: the producer outlives the show
            # in consumers and recordings, and must not keep the track (and its page) alive.
            producer.send_keyframe_request = self._slides_keyframe
            self.slides = SlideShow(
                participant.id, document_id or "", page, document.pages, slide_track, producer
            )
            slide_track.start()
            await slide_track.show(image)
            await self.room.publish_server_track(participant, SLIDES_MID, producer)
        else:
            self.slides.document_id, self.slides.page = document_id or "", page
            self.slides.pages = document.pages
            await self.slides.track.show(image)
        change = self.floor.set_mode(participant.id, "slides")
        if change is not None:
            await self.room.broadcast(change.to_message())
        await self.room.broadcast(self.slides.describe())

    async def turn_page(self, participant: Participant, page: int) -> None:
        """Show another page of the document being shown."""
        if self.slides is None or self.slides.presenter_id != participant.id:
            raise InvalidRequest("you are not showing slides", code="bad_page")
        await self.show(participant, self.slides.document_id, page)

    async def stop(self, participant: Participant) -> None:
        """Stop the participant's slides and release the floor."""
        if self.slides is None or self.slides.presenter_id != participant.id:
            return
        await self.release_floor(participant)

    async def _stop_slides(self) -> None:
        slides, self.slides = self.slides, None
        if slides is None:
            return
        await slides.track.stop()
        presenter = self.room.participants.get(slides.presenter_id)
        if presenter is not None and SLIDES_MID in presenter.tracks:
            await self.room.unpublish(presenter, SLIDES_MID)
        await self.room.broadcast({"type": "slides", "presenter": None})

    def _slides_keyframe(self) -> None:
        """A receiver of the slides asked for a keyframe (rate-limited by the producer)."""
        if self.slides is not None:
            self.slides.track.request_keyframe()

    async def _render(self, document: Document, page: int) -> Any:
        async with self._render_lock:  # one render at a time per room: a fair share of the sandbox
            try:
                return await document.render_page(page - 1, SLIDE_SIZE)
            except DocumentError as exc:  # the page cannot be shown (corrupt, or over the limits)
                # A decoder's own words name its internals; say what matters to the presenter.
                message = f"page {page} is damaged" if exc.code == "corrupt" else exc.message
                raise PageUnavailable(message, code=exc.code) from exc

    async def close(self) -> None:
        """The room ends."""
        if self.slides is not None:
            await self.slides.track.stop()
            self.slides = None
        for _, document in self.documents.values():
            document.close()
        self.documents.clear()
