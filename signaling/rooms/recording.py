"""Recording a live room: one writer per track while it records, then the composite.

The recorder is a subscriber like any other: each track's producer gets a ``TrackWriter`` sink
(fragmented MP4, written as it goes, encrypted at rest when configured). The catalogue learns
every file the moment it is created, so a server killed mid-session is completed on restart
(:func:`recover_recordings`). After the session, or after that restart, the composite (people +
content, mixed sound) is rendered in a separate process, so it never competes with forwarding
for this process's core.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import logging
import multiprocessing
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcu.crypto import atrest
from mcu.media import TrackSource
from mcu.mixer.session import MIX_PARTICIPANT
from mcu.recorder.catalogue import (
    RECORDINGS_DIR,
    Catalogue,
    ItemStatus,
    LibraryFile,
    LibraryItem,
    new_item_id,
)
from mcu.recorder.composite import RecordedTrack, make_composite
from mcu.recorder.timeline import RecordingClock
from mcu.recorder.writer import TrackWriter
from mcu.sfu.producer import Producer
from mcu.signaling.rooms.e2ee import refuse_in_e2ee
from mcu.signaling.rooms.events import RecordingFinished, RecordingReady, RecordingStarted

if TYPE_CHECKING:
    from mcu.signaling.rooms.ports import RoomView

logger = logging.getLogger(__name__)

COMPOSITE_NAME = "composite.mp4"
_pending_composites: set[asyncio.Task[None]] = set()


_background: set[asyncio.Future[None]] = set()


def _spawn(coroutine: Any) -> None:
    """Run bookkeeping in the background, keeping a reference until it is done."""
    future = asyncio.ensure_future(coroutine)
    _background.add(future)
    future.add_done_callback(_background.discard)


async def wait_for_composites(timeout: float) -> None:
    """At shutdown: let composites being made finish and reach the catalogue (bounded)."""
    if _pending_composites:
        await asyncio.wait(set(_pending_composites), timeout=timeout)


@dataclass
class RecordingServices:
    """What recording needs from the server."""

    catalogue: Catalogue
    data_dir: Path
    master_key: bytes
    encrypt: bool
    composer: concurrent.futures.Executor


def composite_executor() -> concurrent.futures.Executor:
    """One worker process for composites (spawned: no inherited event loop or threads)."""
    return concurrent.futures.ProcessPoolExecutor(
        max_workers=1, mp_context=multiprocessing.get_context("spawn")
    )


@dataclass
class _Track:
    producer: Producer
    writer: TrackWriter
    file: LibraryFile
    participant_name: str
    data_key: bytes | None


class RoomRecording:
    """A room's recording state."""

    def __init__(self, room: RoomView, services: RecordingServices | None) -> None:
        self.room = room
        self.services = services
        self.item: LibraryItem | None = None
        self.clock: RecordingClock | None = None
        self._tracks: dict[str, _Track] = {}
        self._lock = asyncio.Lock()

    @property
    def active(self) -> bool:
        """Whether the room is being recorded."""
        return self.item is not None

    def describe(self) -> dict[str, Any]:
        """The protocol's ``recording`` state."""
        if self.item is None or self.clock is None:
            return {"type": "recording", "active": False}
        return {
            "type": "recording",
            "active": True,
            "recording_id": self.item.id,
            "started_at": _iso(self.clock.started_at),
        }

    async def set_active(self, active: bool) -> dict[str, Any]:
        """Start or stop; returns the new state (for the admin API)."""
        if active:
            await self.start()
        else:
            await self.stop()
        return {k: v for k, v in self.describe().items() if k != "type"}

    async def start(self) -> None:
        """Start recording every current and future track of the room; raises ``E2eeRefused``
        in an end-to-end encrypted room (there is nothing the server could read to record)."""
        refuse_in_e2ee(self.room, "recording")
        services = self.services
        if services is None:
            raise RuntimeError("recording is not configured")
        async with self._lock:
            if self.item is not None:
                return
            self.clock = RecordingClock.start()
            stamp = datetime.fromtimestamp(self.clock.started_at, UTC).strftime("%Y-%m-%d %H:%M")
            item = LibraryItem(
                id=new_item_id(),
                title=f"{self.room.title} — {stamp}",
                recorded_at=self.clock.started_at,
                kind="recording",
                status="recording",
                room_id=self.room.id,
            )
            self.item = await services.catalogue.create(item)
            (services.data_dir / RECORDINGS_DIR / item.id).mkdir(parents=True, exist_ok=True)
            for producer in self.room.producers():
                self._attach(producer)
            await self._save_files()
        logger.info("room %s: recording %s started", self.room.id, item.id)
        self.room.emit(RecordingStarted(self.room.id, item.id))
        await self.room.broadcast(self.describe())

    def track_published(self, producer: Producer) -> None:
        """A new track while recording: record it from now on."""
        if self.item is not None and self._attach(producer):
            _spawn(self._save_files())

    def _attach(self, producer: Producer) -> bool:
        services, item, clock = self.services, self.item, self.clock
        if services is None or item is None or clock is None:
            return False
        if producer.participant_id == MIX_PARTICIPANT or producer.track_id in self._tracks:
            return False
        participant = self.room.participants.get(producer.participant_id)
        name = participant.name if participant else producer.participant_id
        slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")[:24] or "participant"
        file_name = f"{len(self._tracks) + 1:02d}-{slug}-{producer.source}.mp4"
        relative = Path(RECORDINGS_DIR) / item.id / file_name
        path = services.data_dir / relative
        data_key = atrest.new_data_key() if services.encrypt else None
        try:
            output: Any = (
                atrest.open_encrypted_writer(path, data_key) if data_key else open(path, "wb")
            )
        except OSError as exc:
            logger.error("cannot create %s: %s", path, exc)
            _spawn(self.fail(f"cannot create a recording file: {exc.strerror}"))
            return False
        writer = TrackWriter(
            producer.codec,
            output,
            clock,
            keyframes=producer,
            on_error=self._writer_failed,
            name=file_name,
        )
        record = LibraryFile(
            name=file_name,
            role="track",
            media_type="audio/mp4" if producer.kind == "audio" else "video/mp4",
            path=str(relative),
            encrypted=data_key is not None,
            wrapped_key=(
                base64.b64encode(atrest.wrap_key(services.master_key, data_key)).decode()
                if data_key
                else None
            ),
            plaintext_size=0,
            source=str(producer.source),
            participant=name,
        )
        self._tracks[producer.track_id] = _Track(producer, writer, record, name, data_key)
        # The recording keeps what live viewers lose while the server sheds load.
        producer.add_sink(writer, whole=True)
        return True

    async def _save_files(self) -> None:
        if self.services is not None and self.item is not None:
            files = [t.file for t in self._tracks.values()]
            await self.services.catalogue.update_recording(self.item.id, files=files)

    def _writer_failed(self, writer: TrackWriter) -> None:
        _spawn(self.fail(f"recording stopped: {writer.error}"))

    async def fail(self, reason: str) -> None:
        """A write failed (disk full, ...): stop recording, tell everyone; the room goes on."""
        item = self.item
        await self.stop(error=reason)
        if item is not None:
            logger.error("room %s: recording %s failed: %s", self.room.id, item.id, reason)

    async def stop(self, *, error: str | None = None) -> None:
        """Stop recording: finish every file, complete the catalogue, then make the composite."""
        services = self.services
        async with self._lock:
            item, clock = self.item, self.clock
            if item is None or clock is None or services is None:
                return
            self.item = self.clock = None
            tracks, self._tracks = self._tracks, {}
            for track in tracks.values():
                track.producer.remove_sink(track.writer)
            await asyncio.gather(*(t.writer.aclose() for t in tracks.values()))
            duration = time.monotonic() - clock.monotonic_start
            empty = [t for t in tracks.values() if not t.writer.frames_written]
            tracks = {k: t for k, t in tracks.items() if t.writer.frames_written}
            files = [
                replace(t.file, plaintext_size=t.writer.bytes_written) for t in tracks.values()
            ]
            # Tracks that never got a keyframe hold nothing worth keeping.
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(
                None, _remove_files, [services.data_dir / t.file.path for t in empty]
            )
            if not files and error is None:
                # Nobody sent media (people who only looked in): no item, no folder. A failed
                # recording stays listed, so staff see that it failed.
                await services.catalogue.discard_unfinished(item.id)
            else:
                size = sum(_disk_size(services.data_dir / f.path) for f in files)
                status: ItemStatus = "complete" if error is None or files else "failed"
                await services.catalogue.update_recording(
                    item.id, status=status, duration_s=duration, size_bytes=size, files=files
                )
        kept = bool(files) or error is not None
        self.room.emit(RecordingFinished(self.room.id, item.id, round(duration, 3), kept, error))
        message: dict[str, Any] = {"type": "recording", "active": False, "recording_id": item.id}
        if error is not None:
            message["error"] = error
        await self.room.broadcast(message)
        logger.info("room %s: recording %s stopped (%.1f s)", self.room.id, item.id, duration)
        recorded = [
            RecordedTrack(
                path=services.data_dir / t.file.path,
                kind="audio" if t.producer.kind == "audio" else "video",
                source=str(t.producer.source),  # type: ignore[arg-type]
                participant_name=t.participant_name,
                start_offset_s=max(0.0, t.writer.started_at or 0.0),
            )
            for t in tracks.values()
            if t.writer.frames_written
        ]
        keys = {str(services.data_dir / t.file.path): t.data_key for t in tracks.values()}
        if recorded:
            room, item_id = self.room, item.id

            def ready(composite: bool) -> None:
                room.emit(RecordingReady(room.id, item_id, composite))

            _start_composite(services, item.id, recorded, keys, ready)

    async def close(self) -> None:
        """The room ends: finish the recording (the composite still gets made)."""
        await self.stop()


async def recover_recordings(services: RecordingServices) -> list[LibraryItem]:
    """At start-up, before anything records: finish the recordings a killed server left
    (``Catalogue.recover``: files cut back to their last whole fragment) and start making the
    composite of each one that kept media, as its session would have at its end. Returns the
    items kept."""
    recovered = await services.catalogue.recover(services.master_key)
    for item in recovered:
        if item.status != "complete" or any(f.role == "composite" for f in item.files):
            continue
        tracks: list[RecordedTrack] = []
        keys: dict[str, bytes | None] = {}
        try:
            for file in item.files:
                if file.role != "track":
                    continue
                track = _recorded_track(services.data_dir, file)
                tracks.append(track)
                keys[str(track.path)] = (
                    atrest.unwrap_key(services.master_key, file.wrapped_key_bytes())
                    if file.encrypted
                    else None
                )
        except (ValueError, atrest.AtRestError) as exc:  # the server starts regardless
            logger.error("composite of %s not made: %s", item.id, exc)
            continue
        if tracks:
            _start_composite(services, item.id, tracks, keys)
    return recovered


_TRACK_NAME = re.compile(r"\d+-(?P<who>.+)-(?P<source>camera|microphone|content)\.mp4")


def _recorded_track(data_dir: Path, file: LibraryFile) -> RecordedTrack:
    """A catalogued track file as the composite takes it; its place on the recording's time
    line is the file's own (the writer stamps samples on it)."""
    named = _TRACK_NAME.fullmatch(file.name)
    source = file.source or (named["source"] if named else None) or "camera"
    participant = file.participant or (named["who"] if named else file.name)
    return RecordedTrack(
        path=data_dir / file.path,
        kind="audio" if file.media_type.startswith("audio/") else "video",
        source=source,  # type: ignore[arg-type]
        participant_name=participant,
        start_offset_s=None,
    )


def _start_composite(
    services: RecordingServices,
    item_id: str,
    tracks: list[RecordedTrack],
    keys: dict[str, bytes | None],
    on_done: Callable[[bool], None] | None = None,
) -> None:
    task = asyncio.create_task(_composite(services, item_id, tracks, keys, on_done))
    _pending_composites.add(task)
    task.add_done_callback(_pending_composites.discard)


async def _composite(
    services: RecordingServices,
    item_id: str,
    tracks: list[RecordedTrack],
    keys: dict[str, bytes | None],
    on_done: Callable[[bool], None] | None = None,
) -> None:
    """Render the composite of ``item_id`` in the composer's process and add it to the item;
    then ``on_done(made)``, unless the item was deleted meanwhile."""
    relative = Path(RECORDINGS_DIR) / item_id / COMPOSITE_NAME
    data_key = atrest.new_data_key() if services.encrypt else None
    loop = asyncio.get_running_loop()
    try:
        plaintext_size = await loop.run_in_executor(
            services.composer,
            build_composite,
            tracks,
            keys,
            services.data_dir / relative,
            data_key,
        )
    except Exception:
        logger.exception("composite of %s failed", item_id)
        if on_done is not None:
            on_done(False)  # the track files are still there to play
        return
    item = await services.catalogue.get(item_id)
    if item is None:
        return  # deleted meanwhile
    composite = LibraryFile(
        name=COMPOSITE_NAME,
        role="composite",
        media_type="video/mp4",
        path=str(relative),
        encrypted=data_key is not None,
        wrapped_key=(
            base64.b64encode(atrest.wrap_key(services.master_key, data_key)).decode()
            if data_key
            else None
        ),
        plaintext_size=plaintext_size,
    )
    size = item.size_bytes + _disk_size(services.data_dir / relative)
    await services.catalogue.update_recording(
        item_id, files=[*item.files, composite], size_bytes=size
    )
    logger.info("composite of %s ready", item_id)
    if on_done is not None:
        on_done(True)


def build_composite(
    tracks: list[RecordedTrack],
    keys: dict[str, bytes | None],
    out_path: Path,
    data_key: bytes | None,
) -> int:
    """Decrypt the track files into a scratch folder, compose, and seal the result.

    Runs in a worker process. Returns the composite's plaintext size.
    """
    scratch = Path(tempfile.mkdtemp(prefix="composite-", dir=out_path.parent))
    try:
        plain_tracks = []
        for index, track in enumerate(tracks):
            key = keys.get(str(track.path))
            if key is None:
                plain_tracks.append(track)
                continue
            plain = scratch / f"{index}.mp4"
            sealed = atrest.EncryptedFile(track.path, key)
            with open(plain, "wb") as out:
                step = 4 * 1024 * 1024
                for start in range(0, sealed.size, step):
                    out.write(sealed.read_range(start, min(sealed.size, start + step) - 1))
            plain_tracks.append(replace(track, path=plain))
        rendered = scratch / "composite.mp4"
        make_composite(plain_tracks, rendered)
        if data_key is None:
            shutil.move(rendered, out_path)
            return out_path.stat().st_size
        writer = atrest.open_encrypted_writer(out_path, data_key)
        total = 0
        with open(rendered, "rb") as source:
            while chunk := source.read(1024 * 1024):
                writer.write(chunk)
                total += len(chunk)
        writer.close()
        return total
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _remove_files(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _disk_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


__all__ = [
    "RecordingServices",
    "RoomRecording",
    "TrackSource",
    "build_composite",
    "recover_recordings",
]
