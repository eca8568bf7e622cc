"""The document sandbox: real child processes, killed at their limits, never blocking the loop."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator

import numpy as np
import pytest
from PIL import Image

from mcu.slides.documents import Document, DocumentError, DocumentLimits, load_document
from mcu.slides.sandbox import Sandbox
from tests.support.documents import nested_forms_pdf

# Long enough for any ordinary job on a loaded machine; tests that want a kill lower one limit.
GENEROUS = DocumentLimits(max_cpu_seconds=120, max_seconds=120)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    pool = Sandbox()
    try:
        yield pool
    finally:
        await pool.close()


def png(width: int, height: int, colour: tuple[int, int, int] = (200, 20, 20)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return buffer.getvalue()


async def assert_still_works(sandbox: Sandbox) -> None:
    """A fresh document validates and renders: the pool replaced what it killed."""
    document = await load_document(png(160, 90), GENEROUS, sandbox)
    frame = await document.render_page(0, (32, 18))
    assert frame.shape == (18, 32, 3) and tuple(frame[9, 16]) == (200, 20, 20)


async def test_pages_come_back_as_pixels(
    sandbox: Sandbox,
) -> None:
    pages = [Image.new("RGB", (160, 90), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    pages[0].save(buffer, "PDF", save_all=True, append_images=pages[1:])
    document = await load_document(buffer.getvalue(), GENEROUS, sandbox)
    assert (document.kind, document.pages, document.width, document.height) == ("pdf", 2, 160, 90)
    for index, colour in enumerate(((255, 0, 0), (0, 0, 255))):
        frame = await document.render_page(index, (320, 240))
        assert frame.shape == (240, 320, 3) and frame.flags.writeable
        assert not frame[:29].any() and not frame[211:].any()  # 320x180 between 30-pixel bars
        assert np.abs(frame[120, 160].astype(int) - colour).max() < 8
    with pytest.raises(IndexError):
        await document.render_page(2)
    assert sandbox.processes_started <= 2


async def test_a_job_over_its_processor_time_is_killed_with_a_clear_error(
    sandbox: Sandbox,
) -> None:
    # A million nested form draws: validating it would take minutes of CPU.
    limits = DocumentLimits(max_cpu_seconds=1, max_seconds=120)
    with pytest.raises(DocumentError) as caught:
        await load_document(nested_forms_pdf(20), limits, sandbox)
    assert caught.value.code == "too_costly"
    assert caught.value.message == "checking the file needed more than 1 s of processor time"
    assert sandbox.jobs_stopped == 1
    await assert_still_works(sandbox)


async def test_a_job_over_its_time_is_killed_with_a_clear_error(sandbox: Sandbox) -> None:
    limits = DocumentLimits(max_cpu_seconds=120, max_seconds=1)
    with pytest.raises(DocumentError) as caught:
        await load_document(nested_forms_pdf(20), limits, sandbox)
    assert caught.value.code == "too_costly"
    assert caught.value.message == "checking the file took longer than 1 s; it was stopped"
    await assert_still_works(sandbox)


async def test_a_job_over_its_memory_is_stopped_with_a_clear_error(sandbox: Sandbox) -> None:
    # 36 megapixels with transparency: about 500 MiB to decode and flatten, small as a file.
    pixels = np.zeros((6000, 6000, 4), dtype=np.uint8)
    pixels[..., 3] = 128
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(buffer, "PNG")
    limits = DocumentLimits(max_memory_bytes=400 * 1024 * 1024, max_cpu_seconds=120)
    with pytest.raises(DocumentError) as caught:
        await load_document(buffer.getvalue(), limits, sandbox)
    assert caught.value.code == "too_costly"
    assert caught.value.message == "checking the file needed more than 400 MiB"
    await assert_still_works(sandbox)


async def test_a_page_over_its_limits_is_refused_again_without_a_job(sandbox: Sandbox) -> None:
    # A thumbnail of 2**14 full-page fills validates in under a second; the page does not.
    document = await load_document(
        nested_forms_pdf(14), DocumentLimits(max_cpu_seconds=1, max_seconds=120), sandbox
    )
    with pytest.raises(DocumentError) as caught:
        await document.render_page(0)
    assert caught.value.code == "too_costly"
    assert caught.value.message == "rendering page 1 needed more than 1 s of processor time"
    assert sandbox.jobs_stopped == 1
    with pytest.raises(DocumentError) as again:
        await document.render_page(0)
    assert again.value.message == caught.value.message
    assert sandbox.jobs_stopped == 1  # no second job was run for it


async def test_closing_documents_never_waits_for_a_render(sandbox: Sandbox) -> None:
    plain = io.BytesIO()
    Image.new("RGB", (160, 90), "white").save(plain, "PDF")
    others = [await load_document(plain.getvalue(), GENEROUS, sandbox) for _ in range(3)]
    slow = await load_document(nested_forms_pdf(16), GENEROUS, sandbox)
    render = asyncio.create_task(slow.render_page(0))  # about 20 s at 1920x1080
    await asyncio.sleep(0.5)  # the job is in the child now
    # Before, closing a PDF took PDFium's process-wide lock on the loop, held by the render.
    for document in [*others, slow]:
        document.close()
    assert not render.done()  # close() returned while the render still ran
    assert all(isinstance(d, Document) and d.closed for d in [*others, slow])
    render.cancel()  # a job given up on: its process is killed, not reused
    with pytest.raises(asyncio.CancelledError):
        await render
    await assert_still_works(sandbox)


async def test_jobs_beyond_the_pool_queue_instead_of_starting_processes(
    sandbox: Sandbox,
) -> None:
    colours = [(i * 20, 255 - i * 20, 7) for i in range(8)]
    documents = await asyncio.gather(
        *(load_document(png(64, 36, colour), GENEROUS, sandbox) for colour in colours)
    )
    frames = await asyncio.gather(*(d.render_page(0, (64, 36)) for d in documents))
    assert [tuple(frame[18, 32]) for frame in frames] == colours
    assert sandbox.processes_started == 2


async def test_closing_the_sandbox_fails_a_running_job_cleanly() -> None:
    sandbox = Sandbox()
    slow = await load_document(nested_forms_pdf(16), GENEROUS, sandbox)
    render = asyncio.create_task(slow.render_page(0))
    await asyncio.sleep(0.5)  # the job is in the child now
    await sandbox.close()  # as the server does on shutdown
    with pytest.raises(DocumentError) as caught:
        await render
    assert caught.value.code == "too_costly"
    with pytest.raises(DocumentError):
        await load_document(png(16, 16), GENEROUS, sandbox)


def sandbox_children() -> list[int]:
    """Pids of this process's sandbox children still running."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                command = cmdline.read()
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        if parent == os.getpid() and b"mcu.slides.sandbox_child" in command:
            pids.append(int(entry))
    return pids


async def test_closing_the_sandbox_while_a_process_starts_leaves_none_behind() -> None:
    assert sandbox_children() == []
    sandbox = Sandbox()
    load = asyncio.create_task(load_document(png(16, 16), GENEROUS, sandbox))
    await asyncio.sleep(0)  # the process is being started (that takes a second or so)
    await sandbox.close()
    with pytest.raises(DocumentError) as caught:
        await load
    assert caught.value.message == "the server is shutting down"
    assert sandbox.processes_started == 1
    assert sandbox_children() == []
