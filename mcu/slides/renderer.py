"""The document renderer: recognise, validate and render pages of uploaded documents.

This module runs only inside the sandbox's child processes (:mod:`mcu.slides.sandbox_child`), never
in the server: every upload is untrusted, and a crafted PDF, DICOM or image can cost minutes of CPU
or gigabytes of memory here, which the child's limits contain. :func:`load` checks everything that
can be checked up front (type from the content, size, page count, pixels per page, that page 1
decodes) and :meth:`LoadedDocument.render_page` turns one page into an RGB frame of the output
size, letterboxed on black. Everything here is synchronous and CPU-bound.

Decoding is left to well-kept libraries: Pillow (PNG, JPEG), PDFium through pypdfium2 (PDF) and
pydicom (DICOM, with the file's own VOI LUT or window).
"""

from __future__ import annotations

import copy
import io
import logging
import struct
import threading
import warnings
import zlib
from typing import Any

import numpy as np
import numpy.typing as npt
import pydicom
import pypdfium2 as pdfium
from PIL import Image, ImageOps
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_file_meta_info
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.processing import (
    apply_color_lut,
    apply_modality_lut,
    apply_voi,
    apply_windowing,
)
from pydicom.pixels.utils import pixel_array
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from mcu.slides.documents import DocumentError, DocumentKind, DocumentLimits, RgbFrame, sniff

logger = logging.getLogger(__name__)

# Transparent images are drawn for a white page; over black, their black text would vanish.
_TRANSPARENT_BACKGROUND = (255, 255, 255)
# Pillow's bomb guard reads a process-wide setting; opening under a lock keeps it ours meanwhile.
_PILLOW_LOCK = threading.Lock()
# PDFium is not thread-safe, not even across different documents (pypdfium2's documentation).
_PDFIUM_LOCK = threading.Lock()
_DEFAULT_LIMITS = DocumentLimits()
# Page 1 is decoded up front at this size: enough to prove it decodes, cheap to scale.
_PROBE_BOX = (320, 180)


class LoadedDocument:
    """A validated upload whose pages are rendered on demand.

    Made by :func:`load`. The source stays in memory (bytes, or an open PDF) and each page is
    decoded only when rendered.
    """

    kind: DocumentKind
    "What the upload was recognised as."
    pages: int
    "Number of pages (1 for PNG and JPEG, frames for DICOM)."
    width: int
    "Width of page 1 in source pixels (PDF: points, i.e. pixels at 72 dpi)."
    height: int
    "Height of page 1 in source pixels (PDF: points)."

    def render_page(self, index: int, box: tuple[int, int] = (1920, 1080)) -> RgbFrame:
        """Render page ``index`` (0-based) into an RGB array of exactly ``box`` (width, height).

        The page is scaled to fit, keeping its aspect ratio and never cropped, and centred on
        black. Raises IndexError for a page that does not exist and DocumentError("corrupt")
        for one that does not decode.
        """
        if not 0 <= index < self.pages:
            raise IndexError(f"page {index} out of range (the document has {self.pages})")
        if box[0] < 1 or box[1] < 1:
            raise ValueError(f"output box {box} is empty")
        try:
            return self._render(index, box)
        except (DocumentError, MemoryError):
            raise
        except Exception as exc:  # any decoder failure on uploaded data means the same to a user
            raise DocumentError("corrupt", f"page {index + 1} cannot be decoded: {exc}") from exc

    def close(self) -> None:
        """Release what the document holds open (PDFium's handle); rendering then fails."""

    def _render(self, index: int, box: tuple[int, int]) -> RgbFrame:
        raise NotImplementedError

    def _probe(self) -> None:
        """Decode page 1 now, so a broken upload is refused rather than a broken slide shown."""
        self.render_page(0, _PROBE_BOX)


def load(
    data: bytes, limits: DocumentLimits = _DEFAULT_LIMITS, *, probe: bool = True
) -> LoadedDocument:
    """Recognise and validate an upload; raise DocumentError if it cannot be shown.

    Checks, in order: size, type (from the content), page count, pixels per page (before any
    pixel is decoded), and (with ``probe``) that page 1 decodes. A document validated once is
    loaded again without the probe.
    """
    if len(data) > limits.max_bytes:
        raise DocumentError(
            "too_large", f"the file is {len(data)} bytes; at most {limits.max_bytes} are accepted"
        )
    kind = sniff(data)
    document: LoadedDocument
    if kind == "png" or kind == "jpeg":
        document = _ImageDocument(kind, data, limits)
    elif kind == "pdf":
        document = _PdfDocument(data, limits)
    elif kind == "dicom":
        document = _DicomDocument(data, limits)
    else:
        raise DocumentError("unsupported_type", "only PNG, JPEG, PDF and DICOM files can be shown")
    if probe:
        try:
            document._probe()
        except BaseException:
            document.close()
            raise
    return document


def _fit(size: tuple[int, int], box: tuple[int, int]) -> tuple[int, int]:
    """The largest size with ``size``'s aspect ratio that fits in ``box``."""
    width, height = size
    box_width, box_height = box
    scale = min(box_width / width, box_height / height)
    return (
        max(1, min(box_width, round(width * scale))),
        max(1, min(box_height, round(height * scale))),
    )


def _letterbox(image: Image.Image, box: tuple[int, int]) -> RgbFrame:
    """Scale an RGB image to fit ``box`` and centre it on black."""
    box_width, box_height = box
    width, height = image.size
    already_fitted = (
        width <= box_width
        and height <= box_height
        and (box_width - width <= 1 or box_height - height <= 1)
    )
    if not already_fitted:
        # reducing_gap first shrinks by an integer factor: large scans resize several times
        # faster, indistinguishable from a plain Lanczos resize.
        image = image.resize(_fit(image.size, box), Image.Resampling.LANCZOS, reducing_gap=3.0)
        width, height = image.size
    canvas = np.zeros((box_height, box_width, 3), dtype=np.uint8)
    left = (box_width - width) // 2
    top = (box_height - height) // 2
    canvas[top : top + height, left : left + width] = np.asarray(image.convert("RGB"))
    return canvas


# --- PNG and JPEG ---------------------------------------------------------------------------

_PILLOW_FORMATS = {"png": "PNG", "jpeg": "JPEG"}
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}  # EXIF orientations that turn the image by 90 degrees


def _open_image(kind: DocumentKind, data: bytes, max_pixels: int) -> Image.Image:
    """Open (not decode) an image, refusing it before decoding if it has too many pixels."""
    with _PILLOW_LOCK, warnings.catch_warnings():
        # Pillow warns above MAX_IMAGE_PIXELS and raises above twice that; we refuse at once.
        Image.MAX_IMAGE_PIXELS = max_pixels
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=[_PILLOW_FORMATS[kind]])
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            raise DocumentError(
                "image_too_large", f"the image has more than {max_pixels} pixels"
            ) from exc
        except Exception as exc:
            raise DocumentError(
                "corrupt", f"the {kind.upper()} file cannot be read: {exc}"
            ) from exc
    width, height = image.size
    if width * height > max_pixels:  # the guard above, kept even if Pillow's changes
        raise DocumentError(
            "image_too_large", f"the image is {width}x{height}, more than {max_pixels} pixels"
        )
    return image


def _oriented_size(image: Image.Image) -> tuple[int, int]:
    """The image's size as shown, after a JPEG's EXIF orientation (phone photos rely on it).

    PNG is taken as stored: Pillow finds a PNG's EXIF only by decoding the whole image.
    """
    width, height = image.size
    if image.format == "JPEG" and image.getexif().get(0x0112) in _SWAPPING_ORIENTATIONS:
        return height, width
    return width, height


def _to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PNG/JPEG mode to RGB, scaling 16-bit grey and flattening transparency."""
    if image.mode.startswith("I"):
        # 16-bit grey (medical PNGs): Pillow's own conversion would clip at 255, not scale.
        grey = np.asarray(image).astype(np.float32) / 257.0
        return Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8)).convert("RGB")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*_TRANSPARENT_BACKGROUND, 255))
        background.alpha_composite(rgba)
        return background.convert("RGB")
    return image.convert("RGB")


class _ImageDocument(LoadedDocument):
    """A PNG or JPEG: one page."""

    def __init__(self, kind: DocumentKind, data: bytes, limits: DocumentLimits) -> None:
        self.kind = kind
        self.pages = 1
        self._data = data
        self._max_pixels = limits.max_page_pixels
        with _open_image(kind, data, self._max_pixels) as image:
            try:
                self.width, self.height = _oriented_size(image)
            except Exception as exc:  # a broken EXIF block
                raise DocumentError(
                    "corrupt", f"the {kind.upper()} file cannot be read: {exc}"
                ) from exc

    def _render(self, index: int, box: tuple[int, int]) -> RgbFrame:
        with _open_image(self.kind, self._data, self._max_pixels) as image:
            fitted_width, fitted_height = _fit((self.width, self.height), box)
            turned = _oriented_size(image) != image.size
            # JPEG decodes straight at 1/2, 1/4 or 1/8 scale when that still covers the box.
            image.draft(
                "RGB", (fitted_height, fitted_width) if turned else (fitted_width, fitted_height)
            )
            if image.format == "JPEG":
                image = ImageOps.exif_transpose(image)
            return _letterbox(_to_rgb(image), box)


# --- PDF ------------------------------------------------------------------------------------


class _PdfDocument(LoadedDocument):
    """A PDF: each page a slide, rendered by PDFium at the scale that fits the box."""

    kind: DocumentKind = "pdf"

    def __init__(self, data: bytes, limits: DocumentLimits) -> None:
        with _PDFIUM_LOCK:
            try:
                self._pdf = pdfium.PdfDocument(data)
            except pdfium.PdfiumError as exc:
                if "password" in str(exc).lower():
                    raise DocumentError(
                        "unsupported_type", "password-protected PDF files cannot be shown"
                    ) from exc
                raise DocumentError("corrupt", f"the PDF file cannot be read: {exc}") from exc
            try:
                self.pages = len(self._pdf)
                if self.pages < 1:
                    raise DocumentError("corrupt", "the PDF file has no pages")
                if self.pages > limits.max_pages:
                    raise DocumentError(
                        "too_many_pages",
                        f"the PDF has {self.pages} pages; at most {limits.max_pages} are accepted",
                    )
                page = self._pdf[0]
                try:
                    width, height = page.get_size()
                finally:
                    page.close()
            except DocumentError:
                self._pdf.close()
                raise
            except Exception as exc:
                self._pdf.close()
                raise DocumentError("corrupt", f"the PDF file cannot be read: {exc}") from exc
        self.width, self.height = max(1, round(width)), max(1, round(height))

    def close(self) -> None:
        with _PDFIUM_LOCK:
            self._pdf.close()

    def _render(self, index: int, box: tuple[int, int]) -> RgbFrame:
        with _PDFIUM_LOCK:
            page = self._pdf[index]
            try:
                width, height = page.get_size()
                if width <= 0 or height <= 0:
                    raise DocumentError("corrupt", f"page {index + 1} has no area")
                bitmap = page.render(
                    scale=min(box[0] / width, box[1] / height),
                    fill_color=(255, 255, 255, 255),
                    rev_byteorder=True,  # RGB rather than PDFium's native BGR
                )
                image = bitmap.to_pil()
            finally:
                page.close()
        return _letterbox(image, box)


# --- DICOM ----------------------------------------------------------------------------------

# What the modality and VOI transforms read; per-frame values of enhanced multi-frame objects
# are laid over them (see _frame_view).
_TRANSFORM_KEYWORDS = (
    "PhotometricInterpretation",
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
    "RescaleSlope",
    "RescaleIntercept",
    "RescaleType",
    "ModalityLUTSequence",
    "VOILUTSequence",
    "WindowCenter",
    "WindowWidth",
    "VOILUTFunction",
)
_FUNCTIONAL_GROUPS = (
    ("PixelValueTransformationSequence", ("RescaleSlope", "RescaleIntercept", "RescaleType")),
    ("FrameVOILUTSequence", ("WindowCenter", "WindowWidth", "VOILUTFunction")),
)


def _frame_view(header: pydicom.Dataset, index: int) -> pydicom.Dataset:
    """The attributes that transform frame ``index``'s values, functional groups applied."""
    # Copies: pydicom's windowing writes attributes back, and pages may render in parallel.
    view = pydicom.Dataset()
    if hasattr(header, "file_meta"):
        view.file_meta = header.file_meta  # the VOI LUT's byte order comes from it
    for keyword in _TRANSFORM_KEYWORDS:
        if keyword in header:
            view[keyword] = copy.copy(header[keyword])
    groups: list[Any] = []
    shared = header.get("SharedFunctionalGroupsSequence")
    if shared:
        groups.append(shared[0])
    per_frame = header.get("PerFrameFunctionalGroupsSequence")
    if per_frame and index < len(per_frame):
        groups.append(per_frame[index])
    for group in groups:
        for sequence, keywords in _FUNCTIONAL_GROUPS:
            items = group.get(sequence)
            if not items:
                continue
            for keyword in keywords:
                if keyword in items[0]:
                    view[keyword] = copy.copy(items[0][keyword])
    return view


def _to_8bit(values: npt.NDArray[Any], low: float, high: float) -> npt.NDArray[np.uint8]:
    """Map ``low..high`` linearly onto 0..255."""
    span = float(high) - float(low)
    if span <= 0:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (values.astype(np.float32) - np.float32(low)) * np.float32(255.0 / span)
    eight_bit: npt.NDArray[np.uint8] = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return eight_bit


def _window(values: npt.NDArray[Any], view: pydicom.Dataset) -> npt.NDArray[np.uint8]:
    """Grey values to 8 bits with the file's VOI LUT or window, else a min-max window."""
    values = apply_modality_lut(values, view)
    try:
        lut = view.get("VOILUTSequence")
        if lut:
            entries, first_mapped = int(lut[0].LUTDescriptor[0] or 65536), lut[0].LUTDescriptor[1]
            # The LUT's own output range: its declared bit depth is often wider than it uses.
            outputs = apply_voi(np.arange(first_mapped, first_mapped + entries), view)
            shown = apply_voi(np.rint(values).astype(np.int64), view)
            return _to_8bit(shown, outputs.min(), outputs.max())
        if "WindowCenter" in view and "WindowWidth" in view:
            shown = apply_windowing(values, view)
            # Below the window maps to the output minimum, above it to the maximum.
            low, high = apply_windowing(np.array([-np.inf, np.inf]), view)
            return _to_8bit(shown, low, high)
    except (ValueError, TypeError, IndexError, NotImplementedError, AttributeError) as exc:
        logger.debug("unusable VOI attributes (%s); using a min-max window", exc)
    return _to_8bit(values, values.min(), values.max())


# Explicit VRs whose length field is 4 bytes (after 2 reserved ones) rather than 2 (PS3.5 7.1.2).
_LONG_VRS = frozenset(
    (b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV")
)


def _file_meta(data: bytes) -> tuple[int, str | None]:
    """Where a DICOM file's meta information (group 0002) ends, and its transfer syntax UID.

    The group is always explicit VR little endian, right after the preamble and ``DICM``.
    """
    offset, syntax = 132, None
    while offset + 12 <= len(data):
        group, element = struct.unpack_from("<HH", data, offset)
        if group != 0x0002:
            break
        if data[offset + 4 : offset + 6] in _LONG_VRS:
            (length,) = struct.unpack_from("<I", data, offset + 8)
            start = offset + 12
        else:
            (length,) = struct.unpack_from("<H", data, offset + 6)
            start = offset + 8
        if element == 0x0010:
            syntax = data[start : start + length].rstrip(b"\0 ").decode("ascii", "replace")
        offset = start + length
    return min(offset, len(data)), syntax


def _inflate(deflated: bytes, limit: int) -> bytes:
    """Inflate a raw deflate stream, refusing it as soon as it passes ``limit`` bytes."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        inflated = inflater.decompress(deflated, limit + 1)
        if len(inflated) <= limit and not inflater.unconsumed_tail:
            inflated += inflater.flush(limit + 1 - len(inflated))
    except zlib.error as exc:
        raise DocumentError("corrupt", f"the DICOM file cannot be read: {exc}") from exc
    if len(inflated) > limit or inflater.unconsumed_tail:
        raise DocumentError(
            "too_large",
            f"the DICOM data set inflates to more than {limit} bytes, the upload limit",
        )
    return inflated


def _undeflated(data: bytes, limit: int) -> bytes:
    """The file as explicit VR little endian if its data set is deflated, else ``data``.

    pydicom would inflate a deflated data set whole, however large: a few hundred kB can expand
    to gigabytes. Inflated here with a bound (an uncompressed upload could not be larger either)
    and rewritten, so that pydicom reads it and every page decodes from it without inflating.
    """
    meta_end, syntax = _file_meta(data)
    if syntax != DeflatedExplicitVRLittleEndian:
        return data
    inflated = _inflate(data[meta_end:], limit)
    try:
        file_meta = pydicom.dcmread(io.BytesIO(data[:meta_end])).file_meta
    except Exception as exc:
        raise DocumentError("corrupt", f"the DICOM file cannot be read: {exc}") from exc
    file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    rewritten = DicomBytesIO()
    rewritten.write(data[:128] + b"DICM")
    write_file_meta_info(rewritten, file_meta, enforce_standard=True)
    rewritten.write(inflated)
    return rewritten.getvalue()


class _DicomDocument(LoadedDocument):
    """A DICOM image: each frame a slide, shown with the file's window/level."""

    kind: DocumentKind = "dicom"

    def __init__(self, data: bytes, limits: DocumentLimits) -> None:
        data = _undeflated(data, limits.max_bytes)
        try:
            header = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
            # pydicom decodes an element when it is first read: a damaged one raises here.
            rows, columns = header.get("Rows"), header.get("Columns")
        except Exception as exc:
            raise DocumentError("corrupt", f"the DICOM file cannot be read: {exc}") from exc
        if not rows or not columns:
            raise DocumentError("unsupported_type", "the DICOM file carries no image")
        # A damaged file can give them several values or another VR (a list, a string).
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in (rows, columns)):
            raise DocumentError("corrupt", "the DICOM file's Rows and Columns are not numbers")
        if rows * columns > limits.max_page_pixels:
            raise DocumentError(
                "image_too_large",
                f"the image is {columns}x{rows}, more than {limits.max_page_pixels} pixels",
            )
        try:
            frames = int(header.get("NumberOfFrames") or 1)
            syntax = header.file_meta.TransferSyntaxUID
            compressed = syntax.is_compressed  # raises for a UID that is no transfer syntax
        except Exception as exc:
            raise DocumentError("corrupt", f"the DICOM file cannot be read: {exc}") from exc
        if frames < 1:
            raise DocumentError("corrupt", "the DICOM file has no frames")
        if frames > limits.max_pages:
            raise DocumentError(
                "too_many_pages",
                f"the DICOM file has {frames} frames; at most {limits.max_pages} are accepted",
            )
        if compressed:
            try:
                available = get_decoder(syntax).is_available
            except NotImplementedError:
                available = False
            if not available:
                raise DocumentError(
                    "unsupported_type",
                    f"DICOM compressed as {syntax.name} cannot be decoded by this server",
                )
        self.pages = frames
        self.width, self.height = int(columns), int(rows)
        self._data = data
        self._header = header

    def _render(self, index: int, box: tuple[int, int]) -> RgbFrame:
        # Reading from the bytes decodes only this frame, not the whole multi-frame file.
        values = pixel_array(io.BytesIO(self._data), index=index)
        photometric = str(self._header.get("PhotometricInterpretation", "MONOCHROME2"))
        if photometric == "PALETTE COLOR":
            values = apply_color_lut(values, self._header)
        if values.ndim == 3:  # RGB (pixel_array already turned YBR into RGB)
            if values.dtype == np.uint8:
                high = 255
            elif photometric == "PALETTE COLOR":
                high = 65535  # a 16-bit palette's entries span the full range
            else:
                high = 2 ** int(self._header.get("BitsStored", 16)) - 1
            return _letterbox(Image.fromarray(_to_8bit(values, 0, high), "RGB"), box)
        grey = _window(values, _frame_view(self._header, index))
        if photometric == "MONOCHROME1":  # stored inverted: low values are bright
            grey = 255 - grey
        return _letterbox(Image.fromarray(grey, "L"), box)
