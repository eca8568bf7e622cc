"""Test documents: made with the libraries that write them, or byte by byte when hostile."""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid


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
