"""The audit trail's writer: who did what, to which room or library item, appended to this
process's hash chain (:mod:`mcu.infra.auditchain`) in the files :mod:`mcu.infra.auditfiles`
lays out.

:meth:`AuditLog.record` never waits: it stamps the entry and queues it. A task hands the queue
to the log's own thread about once a second (sooner when many wait), which seals each entry to
the one before, appends the lines and fsyncs them. A crash therefore loses at most the entries
of the last second; the restart cuts off a line the crash left half-written and continues the
chain from the last whole entry. Entries never hold passwords, tokens or media: callers pass
ids, names, roles, addresses and codes only.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Final, Protocol

from mcu.infra.auditchain import Anchor, canonical, seal
from mcu.infra.auditfiles import ChainDir, last_line, sync_dir

__all__ = ["AuditError", "AuditLog", "AuditTrail", "Detail", "iso_time"]

logger = logging.getLogger(__name__)

Detail = str | int | bool | None
"What an entry's details may hold: no floats, so the canonical JSON is the same everywhere."

FLUSH_SECONDS: Final = 1.0
"How long an entry may wait before it is written and synced: what a crash can lose."
BATCH_ENTRIES: Final = 256
"Entries waiting that start a write at once, without waiting out ``FLUSH_SECONDS``."
MAX_PENDING: Final = 100_000
"""Entries held while the disk refuses them (full, failing); beyond, new ones are counted as
lost, and an ``audit.lost`` entry says how many once writing works again."""
MAX_TEXT: Final = 256
"Longest text kept in a field; longer (a long title, a hostile name) is cut."
_LOCK_NAME: Final = ".lock"


class AuditTrail(Protocol):
    """Where security-relevant actions are recorded (the room domain and the endpoints call
    this; :class:`AuditLog` is the one implementation)."""

    def record(
        self,
        action: str,
        *,
        actor: str,
        room: str | None = None,
        item: str | None = None,
        address: str | None = None,
        details: Mapping[str, Detail] | None = None,
    ) -> None:
        """Append an entry: ``actor`` (who) did ``action`` to ``room`` or library ``item``, from
        ``address``; ``details`` add ids, roles and codes. Never a password or token."""
        ...

    async def flush(self) -> None:
        """Write everything recorded so far."""
        ...


class AuditError(Exception):
    """The audit trail cannot be opened (another process writes this chain, unreadable)."""


def iso_time(moment: float) -> str:
    """A Unix time as entries write it: UTC, microseconds, ``Z``; sorts as text."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _clean(value: Any) -> Detail:
    if value is None or isinstance(value, bool | int):
        return value  # type: ignore[no-any-return]
    text = value if isinstance(value, str) else str(value)
    return text[:MAX_TEXT]


class AuditLog:
    """This process's chain: ``record`` from the event loop, writes on a thread of its own."""

    def __init__(
        self,
        audit_dir: Path,
        worker: int,
        retention_days: int,
        *,
        clock: Callable[[], float] = time.time,
        flush_seconds: float = FLUSH_SECONDS,
    ) -> None:
        self.chain = ChainDir.of(audit_dir, worker)
        self.worker = worker
        self.retention_days = retention_days
        self._clock = clock
        self._flush_seconds = flush_seconds
        self._pending: list[dict[str, Any]] = []
        self._lost = 0
        self._last_time = 0.0
        self._wake = asyncio.Event()
        self._executor: ThreadPoolExecutor | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._writing: asyncio.Future[None] | None = None
        self._pruned_on: date | None = None
        # Owned by the log's thread once open:
        self._seq = 0
        self._hash = Anchor().hash
        self._lock: IO[bytes] | None = None

    # -- the event loop's side ------------------------------------------------------------

    async def open(self) -> None:
        """Take this worker's chain (refused if another process holds it), continue it from its
        last whole entry, prune days past retention, and start writing."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-log")
        try:
            await self._run(self._open)
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
        self._flusher = asyncio.create_task(self._flush_loop())
        await self.prune()

    def record(
        self,
        action: str,
        *,
        actor: str,
        room: str | None = None,
        item: str | None = None,
        address: str | None = None,
        details: Mapping[str, Detail] | None = None,
    ) -> None:
        """Queue an entry (see :class:`AuditTrail`); written within ``FLUSH_SECONDS``."""
        if self._executor is None:
            logger.error("audit: %s recorded while the trail is closed; not kept", action)
            return
        if len(self._pending) >= MAX_PENDING:
            self._lost += 1
            return
        # Within a chain time never runs backwards, so the query can merge chains by time.
        moment = max(self._clock(), self._last_time)
        self._last_time = moment
        self._pending.append(
            {
                "time": iso_time(moment),
                "worker": self.worker,
                "action": action,
                "actor": _clean(actor),
                "room": _clean(room),
                "item": _clean(item),
                "address": _clean(address),
                "details": {key: _clean(value) for key, value in (details or {}).items()},
            }
        )
        if len(self._pending) >= BATCH_ENTRIES:
            self._wake.set()

    async def flush(self) -> None:
        """Write and sync everything recorded so far."""
        while self._pending or self._lost or self._writing is not None:
            if self._writing is not None:
                await asyncio.shield(self._writing)
                continue
            await self._write_pending()

    async def prune(self) -> None:
        """Remove day files older than the retention, once per day: first an ``audit.pruned``
        entry records the last removed entry's number and hash, then ``anchor.json`` says
        the chain now starts there, then the files go."""
        today = datetime.fromtimestamp(self._clock(), UTC).date()
        if self._pruned_on == today:
            return
        self._pruned_on = today
        cutoff = today - timedelta(days=self.retention_days)
        found = await self._run(self._prunable, cutoff)
        if found is None:
            return
        anchor, paths = found
        self.record(
            "audit.pruned",
            actor="system",
            details={
                "before": cutoff.isoformat(),
                "files": len(paths),
                "anchor_seq": anchor.seq,
                "anchor_hash": anchor.hash,
            },
        )
        await self.flush()
        await self._run(self._remove, anchor, paths)
        logger.info("audit: pruned %d day files before %s", len(paths), cutoff.isoformat())

    async def close(self) -> None:
        """Write what is queued, then stop."""
        if self._executor is None:
            return
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        try:
            await self.flush()
        except OSError:
            logger.exception("audit: %d entries could not be written", len(self._pending))
        await self._run(self._release)
        self._executor.shutdown(wait=True)
        self._executor = None

    async def _run(self, job: Callable[..., Any], *args: Any) -> Any:
        assert self._executor is not None
        return await asyncio.get_running_loop().run_in_executor(self._executor, job, *args)

    async def _flush_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._flush_seconds)
            self._wake.clear()
            try:
                await self.flush()  # one write at a time, so the chain keeps its order
                await self.prune()
            except OSError:
                logger.exception("audit: writing failed; %d entries wait", len(self._pending))

    async def _write_pending(self) -> None:
        if not self._pending and not self._lost:
            return
        batch, self._pending = self._pending, []
        if self._lost:
            moment = max(self._clock(), self._last_time)
            lost: dict[str, Any] = {"action": "audit.lost", "actor": "system", "room": None}
            lost |= {"item": None, "address": None, "worker": self.worker}
            batch.append(lost | {"time": iso_time(moment), "details": {"entries": self._lost}})
            self._lost = 0
        self._writing = asyncio.ensure_future(self._run(self._write, batch))
        try:
            await asyncio.shield(self._writing)
        except OSError:
            # Kept, in order, for the next try (bounded by MAX_PENDING).
            keep = [entry for entry in batch if entry["action"] != "audit.lost"]
            self._lost += sum(
                entry["details"]["entries"] for entry in batch if entry["action"] == "audit.lost"
            )
            self._pending[:0] = keep[:MAX_PENDING]
            self._lost += max(0, len(keep) - MAX_PENDING)
            raise
        finally:
            self._writing = None

    # -- the log's thread ----------------------------------------------------------------

    def _open(self) -> None:
        path = self.chain.path
        path.mkdir(parents=True, exist_ok=True)
        lock = open(path / _LOCK_NAME, "ab")
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise AuditError(f"another process writes the audit trail in {path}") from None
        self._lock = lock
        anchor = self.chain.anchor()
        self._seq, self._hash = anchor.seq, anchor.hash
        for _, file in reversed(self.chain.days()):
            line, complete = last_line(file)
            if complete != file.stat().st_size:
                logger.warning("audit: %s ended in a partial line (a crash); cut off", file)
                os.truncate(file, complete)
            if line is None:
                continue
            entry = json.loads(line)
            self._seq, self._hash = int(entry["seq"]), str(entry["hash"])
            self._last_time = (
                datetime.strptime(entry["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
                .replace(tzinfo=UTC)
                .timestamp()
            )
            break

    def _write(self, batch: list[dict[str, Any]]) -> None:
        seq, previous = self._seq, self._hash
        by_day: dict[str, list[bytes]] = {}
        for fields in batch:
            seq += 1
            entry = seal(previous, fields | {"seq": seq})
            previous = entry["hash"]
            by_day.setdefault(fields["time"][:10], []).append(canonical(entry) + b"\n")
        for day, lines in by_day.items():
            path = self.chain.day_file(date.fromisoformat(day))
            new = not path.exists()
            with open(path, "ab") as file:
                size = file.tell()
                try:
                    file.write(b"".join(lines))
                    file.flush()
                    os.fsync(file.fileno())
                except OSError:
                    # Leave no partial batch: the retry numbers these entries again.
                    with contextlib.suppress(OSError):
                        file.truncate(size)
                    raise
            if new:
                sync_dir(self.chain.path)
        self._seq, self._hash = seq, previous

    def _prunable(self, cutoff: date) -> tuple[Anchor, list[Path]] | None:
        old = [(day, path) for day, path in self.chain.days() if day < cutoff]
        for _, path in reversed(old):
            line, _ = last_line(path)
            if line is not None:
                entry = json.loads(line)
                return Anchor(int(entry["seq"]), str(entry["hash"])), [p for _, p in old]
        if old:  # only empty files: nothing to anchor, just remove them
            for _, path in old:
                path.unlink(missing_ok=True)
        return None

    def _remove(self, anchor: Anchor, paths: list[Path]) -> None:
        self.chain.write_anchor(anchor)
        for path in paths:
            path.unlink(missing_ok=True)
        sync_dir(self.chain.path)

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing drops the lock
            self._lock = None
