"""The sandbox: untrusted documents are parsed and rendered in child processes with limits.

A crafted upload can make a decoder run for minutes or take gigabytes (a 2 kB PDF of nested form
XObjects, a deflated DICOM that inflates 2,000-fold). Parsed in the server, such a file would
stall the event loop, and with it every room's media, or exhaust the machine's memory. Here each
job (validating an upload, rendering a page) runs in a child process
(:mod:`mcu.slides.sandbox_child`) under ``RLIMIT_AS`` and ``RLIMIT_CPU`` set by the child for that
job, and the parent kills the child when the job's wall-clock time runs out. A killed or crashed
child fails only its own job, with DocumentError("too_costly"), and is replaced by a fresh one for
the next job.

At most ``size`` jobs run at once (per server process); the others wait their turn, uploads and
page turns alike, so a burst of uploads queues instead of forking processes without bound. At
most ``size - 1`` of the running jobs validate uploads, so page turns always have a process.

Nothing here blocks the event loop: jobs go to the child over a pipe, the rendered page comes back
through a shared in-memory file (``memfd``), read with one ``pread``; there is no lock between
the loop and a child, and :meth:`Sandbox.forget` only notes what the child may drop.

The children keep recently used documents parsed (bounded; see :mod:`mcu.slides.sandbox_child`), so
a page turn sends only the page number; a child that no longer has the document answers ``miss``
and is sent the bytes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import struct
import sys
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, get_args

import numpy as np

from mcu.infra.metrics import DOCUMENT_JOBS_STOPPED
from mcu.slides.documents import DocumentError, DocumentInfo, DocumentLimits, ErrorCode, RgbFrame

logger = logging.getLogger(__name__)

POOL_SIZE = 2
"Sandbox processes per server process: jobs beyond this many wait."
READY_TIMEOUT = 60.0
"Seconds a new child may take to start its interpreter and import the decoders (a loaded machine)."

_ERROR_CODES = frozenset(get_args(ErrorCode))
_LENGTH = struct.Struct(">I")
_MAX_HEADER_BYTES = 64 * 1024  # a reply header is a few hundred bytes; more means a broken child
# One-thread numeric libraries: a job's CPU and memory stay those of one thread.
_CHILD_ENVIRONMENT = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass(frozen=True)
class Job:
    """One request to a sandbox child (the header; the document's bytes may follow it)."""

    op: Literal["load", "render"]
    "``load``: validate and keep the document; ``render``: render one page into the frame file."
    key: str
    "The document's name, under which the child keeps it."
    limits: dict[str, Any]
    "The :class:`~mcu.slides.documents.DocumentLimits` as a dict."
    size: int = 0
    "Bytes of document following the header (0: the child should have it already)."
    index: int = 0
    "Page to render (0-based)."
    box: tuple[int, int] = (0, 0)
    "Size to render it at (width, height)."
    drop: list[str] = field(default_factory=list)
    "Documents the child may forget."


@dataclass(frozen=True)
class Reply:
    """A sandbox child's answer to a :class:`Job`."""

    ok: bool
    "Whether the job succeeded."
    code: str = ""
    "Why it did not: a DocumentError code, or ``miss`` (the child does not have the document)."
    message: str = ""
    "The error for a person."
    info: dict[str, Any] | None = None
    "For a load: the :class:`~mcu.slides.documents.DocumentInfo` as a dict."


def encode_message(message: Any) -> bytes:
    """A length-prefixed JSON message, as sent over the pipes both ways."""
    body = json.dumps(asdict(message), separators=(",", ":")).encode()
    return _LENGTH.pack(len(body)) + body


def decode_length(prefix: bytes) -> int:
    """The length of the JSON body announced by a 4-byte prefix."""
    (length,) = _LENGTH.unpack(prefix)
    if length > _MAX_HEADER_BYTES:
        raise ValueError(f"a {length}-byte header is not one of ours")
    return int(length)


class _Child:
    """One sandbox process, its pipes and its frame file."""

    def __init__(self, process: asyncio.subprocess.Process, frames: int) -> None:
        self.process = process
        self.frames = frames
        self.known: set[str] = set()
        "Documents sent to this child (it may have dropped some since: it then says ``miss``)."
        self.drops: list[str] = []
        "Documents closed since its last job, to be dropped with the next one."

    @classmethod
    async def start(cls) -> _Child:
        frames = os.memfd_create("mcu-sandbox-frames")
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "mcu.slides.sandbox_child", str(frames),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                pass_fds=(frames,), env=os.environ | _CHILD_ENVIRONMENT,
                start_new_session=True,  # a terminal's Ctrl-C is the server's to handle
            )  # fmt: skip
        except BaseException:
            os.close(frames)
            raise
        child = cls(process, frames)
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                ready = await child._receive()
            if not ready.ok:
                raise ConnectionError(f"sandbox child failed to start: {ready.message}")
        except BaseException:
            await child.kill()
            raise
        return child

    async def request(self, job: Job, payload: bytes) -> Reply:
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(encode_message(job))
        if job.size:
            stdin.write(payload)
        await stdin.drain()
        return await self._receive()

    async def _receive(self) -> Reply:
        stdout = self.process.stdout
        assert stdout is not None
        length = decode_length(await stdout.readexactly(_LENGTH.size))
        return Reply(**json.loads(await stdout.readexactly(length)))

    def read_frame(self, box: tuple[int, int]) -> RgbFrame:
        width, height = box
        frame = bytearray(width * height * 3)
        if os.preadv(self.frames, [frame], 0) != len(frame):
            raise ConnectionError("the sandbox child wrote a short frame")
        return np.frombuffer(frame, dtype=np.uint8).reshape(height, width, 3)

    async def kill(self) -> int | None:
        """Kill the process (if it still runs) and reap it; returns its exit status."""
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        try:
            async with asyncio.timeout(10):
                return await self.process.wait()
        except TimeoutError:  # unkillable (stuck in the kernel): leave it to the child watcher
            logger.error("sandbox child %d did not exit after SIGKILL", self.process.pid)
            return None
        finally:
            self._release()

    async def exit_status(self) -> int | None:
        """The status of a child whose pipe broke, reaped (killed first if it lingers)."""
        try:
            async with asyncio.timeout(2):
                status = await self.process.wait()
        except TimeoutError:
            return await self.kill()
        self._release()
        return status

    def _release(self) -> None:
        # Once only: the number may belong to another file after it is closed.
        if self.frames >= 0:
            os.close(self.frames)
            self.frames = -1


class Sandbox:
    """A small pool of sandbox processes that validate and render untrusted documents."""

    def __init__(self, size: int = POOL_SIZE) -> None:
        if size < 1:
            raise ValueError("a sandbox needs at least one process")
        self._children: list[_Child | None] = [None] * size
        self._busy: set[int] = set()
        self._jobs = asyncio.Semaphore(size)
        self._loads = asyncio.Semaphore(max(1, size - 1))
        self._closed = False
        self._reaping: set[asyncio.Task[int | None]] = set()
        self.jobs_stopped = 0
        "Jobs stopped for exceeding a limit (their process killed or crashed)."
        self.processes_started = 0
        "Sandbox processes started so far (one per slot, and one after each stopped job)."

    async def load(self, key: str, data: bytes, limits: DocumentLimits) -> DocumentInfo:
        """Validate ``data`` and keep it parsed under ``key``; raises DocumentError."""
        async with self._loads:
            job = Job("load", key, asdict(limits), size=len(data))
            reply, _ = await self._run(job, data, limits)
        assert reply.info is not None
        return DocumentInfo(**reply.info)

    async def render(
        self, key: str, data: bytes, index: int, box: tuple[int, int], limits: DocumentLimits
    ) -> RgbFrame:
        """Render page ``index`` of the document ``key`` (whose bytes are ``data``) into ``box``."""
        job = Job("render", key, asdict(limits), index=index, box=box)
        _, frame = await self._run(job, data, limits)
        assert frame is not None
        return frame

    def forget(self, key: str) -> None:
        """The document ``key`` is closed: its copies are dropped with each child's next job."""
        for child in self._children:
            if child is not None and key in child.known:
                child.known.discard(key)
                child.drops.append(key)

    async def close(self) -> None:
        """Kill every child (a job still running fails)."""
        self._closed = True
        children, self._children = self._children, [None] * len(self._children)
        for child in children:
            if child is not None:
                await child.kill()

    def _pick(self, key: str) -> int:
        """A free slot, preferring one whose child has the document, then one with a child."""
        free = [i for i in range(len(self._children)) if i not in self._busy]
        for index in free:
            child = self._children[index]
            if child is not None and key in child.known:
                return index
        for index in free:
            if self._children[index] is not None:
                return index
        return free[0]

    async def _run(
        self, job: Job, data: bytes, limits: DocumentLimits
    ) -> tuple[Reply, RgbFrame | None]:
        async with self._jobs:
            if self._closed:
                raise DocumentError("too_costly", "the server is shutting down")
            slot = self._pick(job.key)
            self._busy.add(slot)
            try:
                return await self._run_in(slot, job, data, limits)
            finally:
                self._busy.discard(slot)

    async def _run_in(
        self, slot: int, job: Job, data: bytes, limits: DocumentLimits
    ) -> tuple[Reply, RgbFrame | None]:
        child = self._children[slot]
        if child is None:
            # Started outside the job's clock: an interpreter start is not the document's cost.
            try:
                child = await _Child.start()
            except (OSError, ConnectionError, TimeoutError, asyncio.IncompleteReadError) as exc:
                logger.error("cannot start a sandbox process: %s", exc)
                raise DocumentError("too_costly", "the server cannot render documents now") from exc
            self.processes_started += 1
            if self._closed:  # closed while it started: nobody would ever stop it
                await child.kill()
                raise DocumentError("too_costly", "the server is shutting down")
            self._children[slot] = child
        drops, child.drops = child.drops, []
        send = job.op == "load" or job.key not in child.known
        job = replace(job, drop=drops, size=len(data) if send else 0)
        try:
            async with asyncio.timeout(limits.max_seconds):
                reply = await child.request(job, data)
                if reply.code == "miss":  # the child dropped it to make room: send it again
                    job = replace(job, drop=[], size=len(data))
                    reply = await child.request(job, data)
        except asyncio.CancelledError:
            # The child may hold half a job: it cannot be trusted with the next one.
            self._abandon(slot, child)
            raise
        except TimeoutError:
            await self._stop(slot, child)
            what = "checking the file" if job.op == "load" else f"rendering page {job.index + 1}"
            raise DocumentError(
                "too_costly", f"{what} took longer than {limits.max_seconds:g} s; it was stopped"
            ) from None
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, TypeError) as exc:
            status = await self._stop(slot, child, killed=False)
            raise DocumentError("too_costly", _death_message(job, status, limits)) from exc
        if reply.ok:
            child.known.add(job.key)
        else:
            child.known.discard(job.key)
            if reply.code == "too_costly":  # out of memory: the child exits after answering
                await self._stop(slot, child)
            code = reply.code if reply.code in _ERROR_CODES else "corrupt"
            raise DocumentError(code, reply.message)  # type: ignore[arg-type]
        if job.op == "render":
            return reply, child.read_frame(job.box)
        return reply, None

    def _abandon(self, slot: int, child: _Child) -> None:
        if self._children[slot] is child:
            self._children[slot] = None
        reaping = asyncio.get_running_loop().create_task(child.kill())
        self._reaping.add(reaping)
        reaping.add_done_callback(self._reaping.discard)

    async def _stop(self, slot: int, child: _Child, *, killed: bool = True) -> int | None:
        self.jobs_stopped += 1
        DOCUMENT_JOBS_STOPPED.inc()
        if self._children[slot] is child:
            self._children[slot] = None
        return await child.kill() if killed else await child.exit_status()


def _death_message(job: Job, status: int | None, limits: DocumentLimits) -> str:
    what = "checking the file" if job.op == "load" else f"rendering page {job.index + 1}"
    if status == -signal.SIGXCPU:
        return f"{what} needed more than {limits.max_cpu_seconds:g} s of processor time"
    mebibytes = limits.max_memory_bytes // (1024 * 1024)
    return f"{what} stopped the renderer (it may need more than the {mebibytes} MiB allowed)"
