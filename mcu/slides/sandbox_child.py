"""A sandbox process: validates and renders untrusted documents for :mod:`mcu.slides.sandbox`.

Started by the sandbox as ``python -m mcu.slides.sandbox_child FRAMES_FD``, never by hand. It reads
jobs from stdin, answers on stdout (the real one: anything a library prints goes to stderr) and
writes each rendered page into the shared in-memory file FRAMES_FD. Before each job it limits
itself: ``RLIMIT_AS`` to the job's memory allowance, and ``RLIMIT_CPU`` to the processor time it
has used so far plus the job's allowance, past which the kernel ends it with SIGXCPU. It exits at
the end of its input, and after running out of memory (a heap that failed mid-decode is not trusted
with the next job); the sandbox then starts another.
"""

from __future__ import annotations

import json
import math
import os
import resource
import sys
from collections import OrderedDict
from dataclasses import asdict
from typing import IO

import numpy as np

from mcu.slides.documents import DocumentError, DocumentInfo, DocumentLimits, RgbFrame
from mcu.slides.renderer import LoadedDocument, load
from mcu.slides.sandbox import Job, Reply, decode_length, encode_message

NICENESS = 10
"Added to the child's nice value: forwarding media comes before rendering documents."
CACHE_BYTES = 64 * 1024 * 1024
"Uploaded bytes of the documents a child keeps parsed between jobs (the newest is always kept)."
CACHE_DOCUMENTS = 8
"Most documents a child keeps parsed between jobs."


class _Cache:
    """Recently used documents, parsed, least recently used dropped first."""

    def __init__(self) -> None:
        self._documents: OrderedDict[str, tuple[LoadedDocument, int]] = OrderedDict()
        self._bytes = 0

    def get(self, key: str) -> LoadedDocument | None:
        entry = self._documents.get(key)
        if entry is None:
            return None
        self._documents.move_to_end(key)
        return entry[0]

    def put(self, key: str, document: LoadedDocument, size: int) -> None:
        self.drop(key)
        self._documents[key] = (document, size)
        self._bytes += size
        while len(self._documents) > 1 and (
            self._bytes > CACHE_BYTES or len(self._documents) > CACHE_DOCUMENTS
        ):
            self.drop(next(iter(self._documents)))

    def drop(self, key: str) -> None:
        entry = self._documents.pop(key, None)
        if entry is not None:
            self._bytes -= entry[1]
            entry[0].close()


def _limit(limits: DocumentLimits) -> None:
    """This process's limits for the next job."""
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    memory = limits.max_memory_bytes
    resource.setrlimit(
        resource.RLIMIT_AS, (memory if hard == resource.RLIM_INFINITY else min(memory, hard), hard)
    )
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # RLIMIT_CPU counts the whole life of the process: the allowance starts from what it used.
    cpu = math.ceil(usage.ru_utime + usage.ru_stime + limits.max_cpu_seconds)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(
        resource.RLIMIT_CPU, (cpu if hard == resource.RLIM_INFINITY else min(cpu, hard), hard)
    )


def _write_frame(frames: int, frame: RgbFrame) -> None:
    view = np.ascontiguousarray(frame).data.cast("B")
    written = 0
    while written < len(view):
        written += os.pwrite(frames, view[written:], written)


def _out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` (a DocumentError a decoder failure became) was running out of memory."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, MemoryError):
            return True
        cause = cause.__cause__
    return False


def _handle(job: Job, payload: bytes, limits: DocumentLimits, cache: _Cache, frames: int) -> Reply:
    try:
        if job.op == "load":
            document = load(payload, limits)
            cache.put(job.key, document, len(payload))
            info = DocumentInfo(document.kind, document.pages, document.width, document.height)
            return Reply(True, info=asdict(info))
        if payload:
            cache.put(job.key, load(payload, limits, probe=False), len(payload))
        found = cache.get(job.key)
        if found is None:
            return Reply(False, "miss", "the document is not here")
        width, height = job.box
        _write_frame(frames, found.render_page(job.index, (width, height)))
        return Reply(True)
    except DocumentError as exc:
        if _out_of_memory(exc):
            raise MemoryError from exc
        return Reply(False, exc.code, exc.message)
    except (IndexError, ValueError) as exc:
        return Reply(False, "corrupt", str(exc))


def _send(replies: IO[bytes], reply: Reply) -> None:
    replies.write(encode_message(reply))
    replies.flush()


def main() -> int:
    """Serve jobs until the sandbox closes the pipe."""
    frames = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a job killed by SIGXCPU leaves no core
    os.nice(NICENESS)
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    jobs = sys.stdin.buffer
    cache = _Cache()
    _send(replies, Reply(True))
    while True:
        prefix = jobs.read(4)
        if len(prefix) < 4:
            return 0
        job = Job(**json.loads(jobs.read(decode_length(prefix))))
        payload = jobs.read(job.size) if job.size else b""
        if len(payload) != job.size:
            return 0
        for key in job.drop:
            cache.drop(key)
        limits = DocumentLimits(**job.limits)
        _limit(limits)
        try:
            reply = _handle(job, payload, limits, cache, frames)
        except MemoryError:
            mebibytes = limits.max_memory_bytes // (1024 * 1024)
            what = "checking the file" if job.op == "load" else f"rendering page {job.index + 1}"
            _send(replies, Reply(False, "too_costly", f"{what} needed more than {mebibytes} MiB"))
            return 1
        _send(replies, reply)


if __name__ == "__main__":
    sys.exit(main())
