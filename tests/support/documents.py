"""Test documents: made with the libraries that write them, or byte by byte when hostile."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)


def dicom(
    pixels: npt.NDArray[np.integer],
    photometric: str = "MONOCHROME2",
    bits_stored: int = 16,
    **attributes: object,
) -> bytes:
    """A Secondary Capture file in explicit VR little endian, with a 128-byte preamble."""
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.set_pixel_data(pixels, photometric, bits_stored)
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def nested_forms_pdf(depth: int, *, fill: bool = True) -> bytes:
    """A one-page PDF of ``depth`` form XObjects, each drawing the next twice: 2**depth draws.

    With ``fill`` the innermost form paints the whole page, so the cost also grows with the
    pixels rendered: at depth 16 a thumbnail takes about 1.5 s of CPU and a 1920x1080 page about
    20 s (depth 14: a quarter of that); at depth 20 (a million draws) PDFium needs gigabytes even
    for the thumbnail. About 2 kB either way.
    """
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /XObject << /X 5 0 R >> >> >>",
        b"<< /Length 5 >>\nstream\n/X Do\nendstream",
    ]
    for level in range(depth):
        if level < depth - 1:
            body = b"/Y Do /Y Do"
            resources = b"/Resources << /XObject << /Y %d 0 R >> >>" % (6 + level)
        else:
            body = b"0 0 612 792 re f" if fill else b"0 0 1 1 re f"
            resources = b""
        objects.append(
            b"<< /Type /XObject /Subtype /Form /BBox [0 0 612 792] %s /Length %d >>\n"
            b"stream\n%s\nendstream" % (resources, len(body), body)
        )
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def deflated_dicom_bomb(inflated_bytes: int, *, items: bool = False) -> bytes:
    """A deflated explicit VR little endian DICOM whose data set inflates to ``inflated_bytes``.

    The bulk is one element of zeros (it compresses about 1000-fold) or, with ``items``, a
    sequence of tiny items (each a Referenced SOP Class UID: the costliest thing for pydicom to
    parse, about 500-fold); after it comes a small valid 8x8 image.
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    head = DicomBytesIO()
    head.write(bytes(128) + b"DICM")
    write_file_meta_info(head, meta, enforce_standard=True)
    if items:
        # (0008,1140) Referenced Image Sequence, undefined length, of items of undefined length.
        start = struct.pack("<HH2sHI", 0x0008, 0x1140, b"SQ", 0, 0xFFFFFFFF)
        unit = (
            struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
            + struct.pack("<HH2sH", 0x0008, 0x1150, b"UI", 4)
            + b"1.2\0"
            + struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
        )
        end = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
        count = max(0, inflated_bytes - len(start) - len(end)) // len(unit)
    else:
        # A private block: its creator (0009,0010), then (0009,1000) OB of zeros.
        unit = bytes(1024)
        count = max(0, inflated_bytes // len(unit) - 1)
        creator = struct.pack("<HH2sH", 0x0009, 0x0010, b"LO", 4) + b"BOMB"
        start = creator + struct.pack("<HH2sHI", 0x0009, 0x1000, b"OB", 0, count * len(unit))
        end = b""
    image = pydicom.Dataset()
    image.set_pixel_data(np.zeros((8, 8), dtype=np.uint8), "MONOCHROME2", 8)
    tail = DicomBytesIO()
    tail.is_little_endian, tail.is_implicit_VR = True, False
    write_dataset(tail, image)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [deflater.compress(start)]
    per_chunk = max(1, 1024 * 1024 // len(unit))
    chunk = unit * per_chunk
    for _ in range(count // per_chunk):
        parts.append(deflater.compress(chunk))
    parts.append(deflater.compress(unit * (count % per_chunk) + end + tail.getvalue()))
    parts.append(deflater.flush())
    return head.getvalue() + b"".join(parts)
