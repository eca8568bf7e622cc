"""Uploaded documents for server-rendered slides, as the server sees them.

A presenter uploads PNG, JPEG, PDF or DICOM. Every such file is untrusted, and decoders can be
made to spend minutes of CPU or gigabytes of memory on a few kilobytes, so the server never parses
one itself: :func:`load_document` has the sandbox (:mod:`mcu.slides.sandbox`, child processes with
CPU, memory and wall-clock limits) validate the upload and returns a :class:`Document` handle, and
:meth:`Document.render_page` has the sandbox render one page and returns its pixels. Both are
awaited; neither blocks the event loop, and :meth:`Document.close` never waits for anything.

The parsing and rendering itself lives in :mod:`mcu.slides.renderer`, which only the sandbox
imports.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeAlias

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from mcu.slides.sandbox import Sandbox

DocumentKind: TypeAlias = Literal["png", "jpeg", "pdf", "dicom"]
"""What an upload was recognised as, from its first bytes."""

ErrorCode: TypeAlias = Literal[
    "unsupported_type", "too_large", "too_many_pages", "image_too_large", "corrupt", "too_costly"
]
"""Why an upload or a page was refused; the HTTP layer maps each to a status (415, 413, 422, 422,
400, 422)."""

RgbFrame: TypeAlias = npt.NDArray[np.uint8]
"""An RGB image as a ``(height, width, 3)`` uint8 array."""

_MIB = 1024 * 1024


@dataclass(frozen=True)
class DocumentLimits:
    """What an upload may cost the server."""

    max_bytes: int = 50 * _MIB
    "Largest accepted upload, in bytes; also the most a deflated DICOM data set may inflate to."
    max_pages: int = 300
    "Most pages (PDF) or frames (DICOM) in one document."
    max_page_pixels: int = 40_000_000
    "Most source pixels in one page of an image or DICOM frame, checked before decoding it."
    max_cpu_seconds: float = 10.0
    "Processor time one sandbox job (validating an upload, rendering a page) may use."
    max_seconds: float = 30.0
    "Wall-clock time one sandbox job may take once it runs (waiting for a free process excluded)."
    max_memory_bytes: int = 1024 * _MIB
    "Address space of the sandbox process while it runs a job (the largest legitimate page, a "
    "40-megapixel RGBA PNG, peaks at ~790 MiB)."


class DocumentError(Exception):
    """An upload or page that cannot be shown: ``code`` says why, ``message`` says it to people."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message


def sniff(data: bytes) -> DocumentKind | None:
    """Recognise a document from its magic bytes; None if it is none of the supported types."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data[128:132] == b"DICM":
        return "dicom"
    return None


@dataclass(frozen=True)
class DocumentInfo:
    """What validating an upload found out about it."""

    kind: DocumentKind
    "What the upload was recognised as."
    pages: int
    "Number of pages (1 for PNG and JPEG, frames for DICOM)."
    width: int
    "Width of page 1 in source pixels (PDF: points, i.e. pixels at 72 dpi)."
    height: int
    "Height of page 1 in source pixels (PDF: points)."


class Document:
    """A validated upload whose pages the sandbox renders on demand.

    Made by :func:`load_document`. The server keeps only the uploaded bytes; a sandbox process
    keeps the parsed document while it has room and is sent the bytes again when it has not.
    """

    def __init__(
        self, sandbox: Sandbox, key: str, data: bytes, info: DocumentInfo, limits: DocumentLimits
    ) -> None:
        self.key = key
        "Names the document to the sandbox processes."
        self.kind = info.kind
        self.pages = info.pages
        self.width = info.width
        self.height = info.height
        self._sandbox = sandbox
        self._data: bytes | None = data
        self._limits = limits
        # A page that exceeded the limits once would again: refused at once rather than re-run.
        self._refused: dict[int, str] = {}

    async def render_page(self, index: int, box: tuple[int, int] = (1920, 1080)) -> RgbFrame:
        """Render page ``index`` (0-based) into an RGB array of exactly ``box`` (width, height).

        The page is scaled to fit, keeping its aspect ratio and never cropped, and centred on
        black. Raises IndexError for a page that does not exist, DocumentError("corrupt") for
        one that does not decode and DocumentError("too_costly") for one that needs more time
        or memory than the limits allow (the sandbox process rendering it is killed).
        """
        if not 0 <= index < self.pages:
            raise IndexError(f"page {index} out of range (the document has {self.pages})")
        if box[0] < 1 or box[1] < 1:
            raise ValueError(f"output box {box} is empty")
        if index in self._refused:
            raise DocumentError("too_costly", self._refused[index])
        if self._data is None:
            raise DocumentError("corrupt", "the document was closed")
        try:
            return await self._sandbox.render(self.key, self._data, index, box, self._limits)
        except DocumentError as exc:
            if exc.code == "too_costly":
                self._refused[index] = exc.message
            raise

    def close(self) -> None:
        """Forget the document; never blocks (the sandbox drops its copy with its next job)."""
        if self._data is not None:
            self._data = None
            self._sandbox.forget(self.key)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._data is None


async def load_document(data: bytes, limits: DocumentLimits, sandbox: Sandbox) -> Document:
    """Recognise and validate an upload in the sandbox; raise DocumentError if it cannot be shown.

    Checks, in order: size, type (from the content), page count, pixels per page (before any
    pixel is decoded), and that page 1 decodes, all within ``limits``.
    """
    if len(data) > limits.max_bytes:  # refused before it costs a copy to the sandbox
        raise DocumentError(
            "too_large", f"the file is {len(data)} bytes; at most {limits.max_bytes} are accepted"
        )
    if sniff(data) is None:
        raise DocumentError("unsupported_type", "only PNG, JPEG, PDF and DICOM files can be shown")
    key = secrets.token_hex(8)
    info = await sandbox.load(key, data, limits)
    return Document(sandbox, key, data, info, limits)
