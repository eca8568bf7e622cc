"""Cutting a track file that a crash left behind back to its last whole fragment.

A :class:`~.writer.TrackWriter` writes fragmented MP4 (``ftyp``, ``moov``, then a ``moof`` and
an ``mdat`` per fragment) and hands each fragment over whole, but a process killed mid-write can
leave the last fragment torn: a ``moof`` without its ``mdat``, or an ``mdat`` cut short. Players
stumble on that (ffmpeg: "partial file", "Invalid NAL unit size"), so recovery cuts the file
back to the end of its last whole fragment.

An encrypted file can only be cut at a chunk boundary (re-sealing a shortened chunk would reuse
its nonce). The writer flushes, and so seals a chunk, after every fragment, so every fragment of
a format-2 file ends on one; files of the first format are left as they are.

:func:`clean_ends` is the pure part (a walk over top-level boxes through a read function);
:func:`salvage` applies it to a file. Both are synchronous: call them from an executor.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mcu.crypto import atrest

__all__ = ["Salvaged", "clean_ends", "salvage"]

logger = logging.getLogger(__name__)

_BOX = struct.Struct(">I4s")


def clean_ends(read: Callable[[int, int], bytes], size: int) -> list[int]:
    """Offsets at which an MP4 file of ``size`` bytes can end with every box whole and at
    least one sample in it, ascending.

    These are the ends of whole fragments (a ``moof`` followed by its ``mdat``, after the
    ``moov``), and ``size`` itself when every box of the file is whole and it holds media (a
    file closed properly, ``mfra`` and all). ``read(offset, length)`` returns up to ``length``
    bytes of the file at ``offset``.
    """
    ends: list[int] = []
    position = 0
    moov = moof = media = False
    while position < size:
        header = read(position, min(16, size - position))
        if len(header) < _BOX.size:
            break
        box_size, kind = _BOX.unpack_from(header)
        header_size = _BOX.size
        if box_size == 1:  # a 64-bit size follows the type
            if len(header) < 16:
                break
            box_size, header_size = int.from_bytes(header[8:16], "big"), 16
        elif box_size == 0:  # the box runs to the end of the file
            box_size = size - position
        if box_size < header_size or position + box_size > size:
            break  # torn: the process was killed while writing it
        position += box_size
        if kind == b"moov":
            moov = True
        elif kind == b"moof":
            moof = True
        elif kind == b"mdat":
            media = True
            if moof and moov:
                ends.append(position)
            moof = False
    else:
        if moov and media and not moof and (not ends or ends[-1] != size):
            ends.append(size)
    return ends


@dataclass(frozen=True)
class Salvaged:
    """What :func:`salvage` kept of one file."""

    kept: int
    """Bytes of MP4 that remain (plaintext bytes for an encrypted file); 0 when not one whole
    fragment was left (nothing to play: the file may be deleted)."""
    cut: int
    """Bytes removed from the end of the file on disk."""


def salvage(path: Path, data_key: bytes | None) -> Salvaged:
    """Cut the track file at ``path`` (encrypted with ``data_key``, or plain when None) back to
    its last whole fragment, in place.

    An encrypted file that was closed properly, or is of the first format, is left as it is.
    Raises ``OSError`` when the file cannot be read, ``atrest.AtRestError`` (``TamperedError``)
    when an encrypted one is not ours or fails authentication.
    """
    if data_key is None:
        return _salvage_plain(path)
    return _salvage_encrypted(path, data_key)


def _salvage_plain(path: Path) -> Salvaged:
    with open(path, "r+b") as file:
        fd = file.fileno()
        size = os.fstat(fd).st_size
        ends = clean_ends(lambda offset, length: os.pread(fd, length, offset), size)
        kept = ends[-1] if ends else 0
        if kept < size:
            file.truncate(kept)
    if kept < size:
        logger.info("recovery: %s cut from %d to %d bytes", path.name, size, kept)
    return Salvaged(kept, size - kept)


def _salvage_encrypted(path: Path, data_key: bytes) -> Salvaged:
    info = atrest.file_info(path)
    if info.complete or info.version < 2:
        return Salvaged(info.plaintext_size, 0)
    with atrest.DecryptingReader(path, data_key) as reader:

        def read(offset: int, length: int) -> bytes:
            reader.seek(offset)
            return reader.read(length)

        ends = clean_ends(read, reader.size)
    boundaries = set(info.chunk_ends)
    kept = next((end for end in reversed(ends) if end in boundaries), 0)
    disk_before = path.stat().st_size
    if kept < info.plaintext_size or info.torn_bytes:
        atrest.truncate(path, kept)
        logger.info(
            "recovery: %s cut from %d to %d plaintext bytes", path.name, info.plaintext_size, kept
        )
    return Salvaged(kept, disk_before - path.stat().st_size)
