"""Uploaded documents: PNG, JPEG, PDF and DICOM, small, through ``mcu.slides.renderer.load``, what
the sandbox process runs for ``mcu.slides.documents.load_document`` (in-process here: the sandbox
only adds resource limits around it), with strict limits (64 KiB, 4 pages, 512x512 pixels) so one
input stays cheap; then one page rendered into a small box. Refusal:
:class:`~mcu.slides.documents.DocumentError`. Property: a rendered page has exactly the box's shape.
"""

from __future__ import annotations

from mcu.slides.documents import DocumentError, DocumentLimits
from mcu.slides.renderer import load

from ..harness import Crash, Input

_LIMITS = DocumentLimits(max_bytes=64 * 1024, max_pages=4, max_page_pixels=512 * 512)
_BOX = (64, 36)


def documents(data: bytes) -> None:
    """One upload, then one of its pages."""
    source = Input(data)
    page = source.byte()
    try:
        document = load(source.rest(), _LIMITS)
    except DocumentError:
        return
    try:
        if not 1 <= document.pages <= _LIMITS.max_pages:
            raise Crash(f"a document of {document.pages} pages was accepted")
        try:
            frame = document.render_page(page % document.pages, _BOX)
        except DocumentError:
            return
        if frame.shape != (_BOX[1], _BOX[0], 3):
            raise Crash(f"a page rendered as {frame.shape}")
    finally:
        document.close()
