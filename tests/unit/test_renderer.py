"""The document renderer: recognition, limits, and pages rendered from real files.

Every file is made here with the library that writes it (Pillow for PNG, JPEG and PDF; pydicom
for DICOM), with patterns whose rendered values are known.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import numpy.typing as npt
import pydicom
import pytest
from PIL import Image
from pydicom.uid import DeflatedExplicitVRLittleEndian

from mcu.slides.documents import DocumentError, DocumentLimits, sniff
from mcu.slides.renderer import LoadedDocument, load
from tests.support.documents import deflated_dicom_bomb, dicom

RED, GREEN, BLUE, WHITE, BLACK = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)


def quadrants(width: int = 400, height: int = 200) -> Image.Image:
    """Red top-left, green top-right, blue bottom-left, white bottom-right."""
    image = Image.new("RGB", (width, height))
    half_w, half_h = width // 2, height // 2
    image.paste(RED, (0, 0, half_w, half_h))
    image.paste(GREEN, (half_w, 0, width, half_h))
    image.paste(BLUE, (0, half_h, half_w, height))
    image.paste(WHITE, (half_w, half_h, width, height))
    return image


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def close_to(pixel: npt.NDArray[np.uint8], expected: tuple[int, int, int], tolerance: int) -> bool:
    return bool(np.all(np.abs(pixel.astype(int) - np.array(expected)) <= tolerance))


def assert_quadrants_letterboxed(frame: npt.NDArray[np.uint8], tolerance: int) -> None:
    """A 2:1 quadrant image in a 160x120 box: 160x80, centred between 20-pixel black bars."""
    assert frame.shape == (120, 160, 3)
    assert frame.dtype == np.uint8
    assert not frame[:19].any() and not frame[101:].any()  # the bars are exactly black
    for (x, y), colour in {
        (40, 40): RED,
        (120, 40): GREEN,
        (40, 80): BLUE,
        (120, 80): WHITE,
    }.items():
        assert close_to(frame[y, x], colour, tolerance), (x, y, frame[y, x], colour)


# Four vertical stripes of stored values 0, 1500, 2500 and 4000 (64 columns each).
STRIPES = np.repeat(np.array([0, 1500, 2500, 4000], dtype=np.uint16), 64)[None, :].repeat(64, 0)


def stripe_values(frame: npt.NDArray[np.uint8]) -> list[int]:
    """The grey level at the middle of each stripe, from a 256x64 page rendered into 256x64."""
    return [int(frame[32, x, 0]) for x in (32, 96, 160, 224)]


# --- recognition and limits -----------------------------------------------------------------


def test_sniff_recognises_by_content() -> None:
    assert sniff(encode(quadrants(), "PNG")) == "png"
    assert sniff(encode(quadrants(), "JPEG")) == "jpeg"
    assert sniff(encode(quadrants(), "PDF")) == "pdf"
    assert sniff(dicom(STRIPES)) == "dicom"
    assert sniff(encode(quadrants(), "GIF")) is None
    assert sniff(b"hello, this is a text file") is None
    assert sniff(b"") is None


@pytest.mark.parametrize(
    "data",
    [encode(quadrants(), "GIF"), b"%PD", b"just some text\n" * 20, b""],
    ids=["gif", "short", "text", "empty"],
)
def test_unsupported_types_are_refused(data: bytes) -> None:
    with pytest.raises(DocumentError) as caught:
        load(data)
    assert caught.value.code == "unsupported_type"
    assert str(caught.value) == caught.value.message


def test_oversize_upload_is_refused_before_anything_else() -> None:
    data = encode(quadrants(), "PNG")
    with pytest.raises(DocumentError) as caught:
        load(data, DocumentLimits(max_bytes=len(data) - 1))
    assert caught.value.code == "too_large"
    assert load(data, DocumentLimits(max_bytes=len(data))).pages == 1


@pytest.mark.parametrize("kind", ["PNG", "PDF"])
def test_truncated_files_are_corrupt(kind: str) -> None:
    data = encode(quadrants(), kind)
    with pytest.raises(DocumentError) as caught:
        load(data[: len(data) // 2])
    assert caught.value.code == "corrupt"


def test_truncated_jpeg_is_corrupt() -> None:
    noise = np.random.default_rng(1).integers(0, 256, (200, 400, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), "JPEG")
    with pytest.raises(DocumentError) as caught:
        load(data[: len(data) // 2])
    assert caught.value.code == "corrupt"


def test_too_many_pages() -> None:
    pages = [quadrants(80, 40) for _ in range(3)]
    pdf = encode(pages[0], "PDF", save_all=True, append_images=pages[1:])
    frames = dicom(np.zeros((3, 8, 8), dtype=np.uint8), bits_stored=8)
    for data in (pdf, frames):
        with pytest.raises(DocumentError) as caught:
            load(data, DocumentLimits(max_pages=2))
        assert caught.value.code == "too_many_pages"
        assert load(data, DocumentLimits(max_pages=3)).pages == 3


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of ``width`` x ``height`` zeros; a few tens of kB for 400 megapixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    compressor = zlib.compressobj(9)
    row = bytes(1 + (width + 7) // 8)  # filter byte "none", then the packed bits
    rows_per_block = 1000
    idat = b"".join(
        compressor.compress(row * rows_per_block) for _ in range(height // rows_per_block)
    )
    idat += compressor.compress(row * (height % rows_per_block)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def test_decompression_bomb_is_refused_from_its_header() -> None:
    bomb = png_bomb(20_000, 20_000)
    assert len(bomb) < 100_000
    for limits in (DocumentLimits(), DocumentLimits(max_page_pixels=1_000_000)):
        with pytest.raises(DocumentError) as caught:
            load(bomb, limits)
        assert caught.value.code == "image_too_large"
    # The header alone decides: the same header over an unreadable body is refused the same way.
    header_only = bomb[:33] + b"\x00\x00\x00\x04IDAT junk\x00\x00\x00\x00"
    with pytest.raises(DocumentError) as caught:
        load(header_only)
    assert caught.value.code == "image_too_large"


def test_pixel_limit_is_inclusive() -> None:
    data = encode(quadrants(400, 200), "PNG")
    assert load(data, DocumentLimits(max_page_pixels=80_000)).width == 400
    with pytest.raises(DocumentError) as caught:
        load(data, DocumentLimits(max_page_pixels=79_999))
    assert caught.value.code == "image_too_large"
    with pytest.raises(DocumentError) as caught:
        load(dicom(STRIPES), DocumentLimits(max_page_pixels=256 * 64 - 1))
    assert caught.value.code == "image_too_large"


# --- PNG and JPEG ---------------------------------------------------------------------------


def test_png_is_letterboxed_exactly() -> None:
    document = load(encode(quadrants(), "PNG"))
    assert (document.kind, document.pages, document.width, document.height) == ("png", 1, 400, 200)
    assert_quadrants_letterboxed(document.render_page(0, (160, 120)), tolerance=2)


def test_jpeg_is_letterboxed_close_to_source() -> None:
    document = load(encode(quadrants(), "JPEG", quality=90))
    assert (document.kind, document.width, document.height) == ("jpeg", 400, 200)
    assert_quadrants_letterboxed(document.render_page(0, (160, 120)), tolerance=12)


def test_tall_page_gets_side_bars_and_upscales() -> None:
    document = load(encode(quadrants(20, 40), "PNG"))
    frame = document.render_page(0, (160, 120))  # 1:2 into 4:3: 60x120, 50-pixel bars each side
    assert not frame[:, :49].any() and not frame[:, 111:].any()
    assert close_to(frame[30, 65], RED, 2) and close_to(frame[90, 105], WHITE, 2)


def test_default_box_is_1080p() -> None:
    frame = load(encode(quadrants(), "PNG")).render_page(0)
    assert frame.shape == (1080, 1920, 3)


def test_jpeg_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 90 degrees anticlockwise: shown turned clockwise
    document = load(encode(quadrants(), "JPEG", quality=90, exif=exif))
    assert (document.width, document.height) == (200, 400)
    frame = document.render_page(0, (100, 200))
    # Turned clockwise, the left column (red over blue) becomes the top row (blue, red).
    assert close_to(frame[50, 25], BLUE, 16) and close_to(frame[50, 75], RED, 16)
    assert close_to(frame[150, 25], WHITE, 16) and close_to(frame[150, 75], GREEN, 16)


def test_sixteen_bit_grey_png_is_scaled_not_clipped() -> None:
    grey = np.array([[0, 32896, 65535, 65535]], dtype=np.uint16).repeat(4, 0)
    frame = load(encode(Image.fromarray(grey), "PNG")).render_page(0, (4, 4))
    assert frame[:, :, 0].tolist()[0] == [0, 128, 255, 255]


def test_transparency_is_flattened_on_white() -> None:
    image = Image.new("RGBA", (40, 20), (0, 0, 0, 0))
    image.paste((0, 0, 0, 255), (0, 0, 20, 20))  # opaque black text on a transparent page
    frame = load(encode(image, "PNG")).render_page(0, (40, 20))
    assert close_to(frame[10, 5], BLACK, 0) and close_to(frame[10, 35], WHITE, 0)


# --- PDF ------------------------------------------------------------------------------------


def test_pdf_pages_render_lazily_and_fit() -> None:
    pages = [Image.new("RGB", (400, 200), colour) for colour in (RED, GREEN, BLUE)]
    pages[1] = quadrants()
    data = encode(pages[0], "PDF", save_all=True, append_images=pages[1:], resolution=72)
    document = load(data)
    assert (document.kind, document.pages, document.width, document.height) == ("pdf", 3, 400, 200)
    assert close_to(document.render_page(0, (160, 120))[60, 80], RED, 6)
    assert_quadrants_letterboxed(document.render_page(1, (160, 120)), tolerance=8)
    assert close_to(document.render_page(2, (160, 120))[60, 80], BLUE, 6)
    for index in (-1, 3):
        with pytest.raises(IndexError):
            document.render_page(index)
    document.close()


# --- DICOM ----------------------------------------------------------------------------------


def test_dicom_window_center_width_is_applied() -> None:
    data = dicom(STRIPES, WindowCenter=2000, WindowWidth=2000)
    document = load(data)
    assert (document.kind, document.pages, document.width, document.height) == ("dicom", 1, 256, 64)
    # Linear window 1000..3000 over the stored values 0, 1500, 2500, 4000.
    assert stripe_values(document.render_page(0, (256, 64))) == pytest.approx(
        [0, 64, 191, 255], abs=1
    )


def test_dicom_without_window_uses_min_max() -> None:
    frame = load(dicom(STRIPES)).render_page(0, (256, 64))
    assert stripe_values(frame) == pytest.approx([0, 96, 159, 255], abs=1)


def test_dicom_rescale_is_applied_before_the_window() -> None:
    # CT: stored 0..4000 is -1024..2976 HU; a soft-tissue window (40, 400) shows -160..240 HU.
    hounsfield = np.array([-1000, -160, 40, 240, 1000])
    stored = np.repeat(hounsfield + 1024, 8)[None, :].repeat(8, 0).astype(np.uint16)
    data = dicom(stored, RescaleIntercept=-1024, RescaleSlope=1, WindowCenter=40, WindowWidth=400)
    frame = load(data).render_page(0, (40, 8))
    assert [int(frame[4, x, 0]) for x in (4, 12, 20, 28, 36)] == pytest.approx(
        [0, 0, 128, 255, 255], abs=1
    )


def test_dicom_voi_lut_sequence_wins_over_min_max() -> None:
    lut = pydicom.Dataset()
    lut.add_new(0x00283002, "US", [4096, 0, 12])  # LUT Descriptor: 4096 entries from 0, 12 bits
    lut.add_new(0x00283006, "US", [min(4095, value * 2) for value in range(4096)])  # LUT Data
    data = dicom(STRIPES, VOILUTSequence=pydicom.Sequence([lut]))
    frame = load(data).render_page(0, (256, 64))
    assert stripe_values(frame) == pytest.approx([0, 187, 255, 255], abs=1)


def test_monochrome1_is_inverted() -> None:
    data = dicom(STRIPES, photometric="MONOCHROME1", WindowCenter=2000, WindowWidth=2000)
    frame = load(data).render_page(0, (256, 64))
    assert stripe_values(frame) == pytest.approx([255, 191, 64, 0], abs=1)


def test_dicom_frames_are_pages() -> None:
    frames = np.zeros((3, 32, 32), dtype=np.uint8)
    for index in range(3):
        frames[index, :, index * 10 : index * 10 + 10] = 200  # a bright band, moving right
    document = load(dicom(frames, bits_stored=8))
    assert (document.pages, document.width, document.height) == (3, 32, 32)
    for index in range(3):
        row = document.render_page(index, (32, 32))[16, :, 0]
        assert row[index * 10 + 5] == 255 and row[(index * 10 + 15) % 30] == 0
    with pytest.raises(IndexError):
        document.render_page(3)


def test_enhanced_multiframe_uses_each_frames_window() -> None:
    def window(center: int, width: int) -> pydicom.Dataset:
        voi = pydicom.Dataset()
        voi.WindowCenter, voi.WindowWidth = center, width
        group = pydicom.Dataset()
        group.FrameVOILUTSequence = pydicom.Sequence([voi])
        return group

    frames = np.stack([STRIPES, STRIPES])
    windows = pydicom.Sequence([window(2000, 2000), window(3000, 2000)])
    document = load(dicom(frames, PerFrameFunctionalGroupsSequence=windows))
    assert stripe_values(document.render_page(0, (256, 64))) == pytest.approx(
        [0, 64, 191, 255], abs=1
    )
    # Window 2000..4000: 0 and 1500 below it, 2500 a quarter up, 4000 above.
    assert stripe_values(document.render_page(1, (256, 64))) == pytest.approx(
        [0, 0, 64, 255], abs=1
    )


def test_dicom_rgb() -> None:
    rgb = np.asarray(quadrants(64, 32))
    frame = load(dicom(rgb, photometric="RGB", bits_stored=8)).render_page(0, (64, 32))
    assert close_to(frame[8, 16], RED, 0) and close_to(frame[24, 48], WHITE, 0)
    assert close_to(frame[8, 48], GREEN, 0) and close_to(frame[24, 16], BLUE, 0)


def test_deflated_dicom_is_shown() -> None:
    ds = pydicom.dcmread(io.BytesIO(dicom(STRIPES, WindowCenter=2000, WindowWidth=2000)))
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    data = buffer.getvalue()
    assert len(data) < STRIPES.nbytes  # really deflated
    document = load(data)
    assert (document.kind, document.width, document.height) == ("dicom", 256, 64)
    assert stripe_values(document.render_page(0, (256, 64))) == [0, 64, 191, 255]


@pytest.mark.parametrize("items", [False, True], ids=["zeros", "items"])
def test_deflate_bomb_is_refused_before_it_inflates(items: bool) -> None:
    # 3 MiB inflated from a few kB, against a 1 MiB upload limit: refused as an upload that size.
    bomb = deflated_dicom_bomb(3 * 1024 * 1024, items=items)
    assert len(bomb) < 20_000
    with pytest.raises(DocumentError) as caught:
        load(bomb, DocumentLimits(max_bytes=1024 * 1024))
    assert caught.value.code == "too_large"
    assert "inflates to more than 1048576 bytes" in caught.value.message
    # Within the limit the same structure is an ordinary DICOM image.
    assert load(deflated_dicom_bomb(200_000, items=items)).pages == 1


def test_dicom_without_pixels_is_unsupported() -> None:
    ds = pydicom.dcmread(io.BytesIO(dicom(STRIPES)))
    del ds.PixelData, ds.Rows, ds.Columns
    buffer = io.BytesIO()
    ds.save_as(buffer)
    with pytest.raises(DocumentError) as caught:
        load(buffer.getvalue())
    assert caught.value.code == "unsupported_type"


def test_dicom_with_short_pixel_data_is_corrupt() -> None:
    data = dicom(STRIPES)
    with pytest.raises(DocumentError) as caught:
        load(data[: len(data) - 4000])
    assert caught.value.code == "corrupt"


def test_a_page_that_fails_later_is_corrupt_not_a_crash() -> None:
    # Frames 0 and 1 are intact, frame 2 is cut short: found only when it is rendered.
    data = dicom(np.full((3, 64, 64), 100, dtype=np.uint8), bits_stored=8)
    document = load(data[:-2000])
    assert isinstance(document, LoadedDocument)
    document.render_page(0, (64, 64))
    with pytest.raises(DocumentError) as caught:
        document.render_page(2, (64, 64))
    assert caught.value.code == "corrupt"


def test_dicom_rows_that_are_not_one_number_are_corrupt() -> None:
    # Found by the documents fuzz target: a Rows element with two values reached the pixel
    # limit check as a list and raised TypeError, which the upload answered with a 500.
    data = dicom(np.zeros((8, 8), dtype=np.uint16), Rows=[8, 8])
    with pytest.raises(DocumentError) as info:
        load(data)
    assert info.value.code == "corrupt"


def test_dicom_whose_transfer_syntax_is_another_uid_is_corrupt() -> None:
    # Found by the documents fuzz target: a TransferSyntaxUID that names no transfer syntax made
    # pydicom's is_compressed raise ValueError, which the upload answered with a 500.
    data = dicom(np.zeros((8, 8), dtype=np.uint16))
    syntax = b"1.2.840.10008.1.2.1\x00"
    assert data.count(syntax) == 1
    data = data.replace(syntax, b"1.2.840.10008.1.2.3\x00")  # same length, not a syntax
    with pytest.raises(DocumentError) as info:
        load(data)
    assert info.value.code == "corrupt"


def test_dicom_with_an_unknown_value_representation_is_corrupt() -> None:
    # Found by the documents fuzz target: pydicom decodes an element when it is first read, so
    # Columns with the VR "Uz" raised NotImplementedError at header.get(), a 500 for the upload.
    data = dicom(np.zeros((8, 8), dtype=np.uint16))
    columns = b"\x28\x00\x11\x00US"
    assert data.count(columns) == 1
    with pytest.raises(DocumentError) as info:
        load(data.replace(columns, b"\x28\x00\x11\x00Uz"))
    assert info.value.code == "corrupt"
