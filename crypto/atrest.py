"""Recordings encrypted at rest: AES-256-GCM in chunks, seekable without the whole file.

Layout of an encrypted file (version 2, written since crash-safe short chunks)::

    header (32 bytes)
        magic    b"MCUENC1"   7 bytes (offset 4 is b"NC1\\x01"/b"NC1\\x02", never MP4's b"ftyp")
        version  u8           2
        chunk    u32 BE       most plaintext bytes per chunk (64 KiB)
        nonce    4 bytes      random per-file nonce prefix
        file id  16 bytes     random, names this file in every chunk's associated data
    records, one per chunk
        word     u32 BE       bit 31: final chunk (the file was closed); bits 0-30: plaintext
                              bytes in this chunk, 1..chunk (0..chunk for the final one)
        sealed   length + 16  AES-GCM ciphertext and tag

Chunk ``i`` is sealed with nonce ``prefix || u64be(i)`` and associated data
``header || u64be(i) || u32be(word)``: a chunk cannot be reordered, moved into another file,
resized, marked final or unmarked without failing authentication. A chunk is sealed when it is
full **or when the writer is flushed**, so a recorder that flushes every fragment loses nothing
already flushed when it is killed, however low its bitrate. Readers find the records by walking
their length words once per open (one small read per chunk). A file whose last record is
missing or torn (the process was killed mid-write) reads fine up to its last complete chunk;
:func:`truncate` cuts such a file back to a chunk boundary.

Version 1 files (every chunk full but the last, which is always short and ends the file) are
still read.

Each file has its own random 256-bit data key, stored only wrapped (RFC 3394 AES key wrap) with
the server's master key, in the library catalogue, never next to the file.

File I/O here is synchronous: call it from an executor.
"""

from __future__ import annotations

import bisect
import io
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

__all__ = [
    "CHUNK_SIZE",
    "HEADER_SIZE",
    "MAGIC",
    "AtRestError",
    "DecryptingReader",
    "EncryptedFile",
    "EncryptedFileInfo",
    "EncryptingWriter",
    "TamperedError",
    "file_info",
    "is_complete",
    "new_data_key",
    "open_encrypted_writer",
    "plaintext_size",
    "read_range",
    "truncate",
    "unwrap_key",
    "wrap_key",
]

MAGIC: Final = b"MCUENC1"
"""First bytes of every encrypted file."""
VERSION: Final = 2
"""The version written; version 1 (fixed-size chunks) is still read."""
CHUNK_SIZE: Final = 64 * 1024
"""Most plaintext bytes per chunk. Flushing seals a shorter one, so this bounds memory, not loss."""
HEADER_SIZE: Final = 32
KEY_SIZE: Final = 32
_TAG = 16
_WORD = struct.Struct(">I")
_FINAL = 0x8000_0000
_HEADER = struct.Struct(">7sBI4s16s")
_MIN_CHUNK, _MAX_CHUNK = 16, 16 * 1024 * 1024


class AtRestError(Exception):
    """An encrypted file or wrapped key cannot be used (not ours, unsupported, bad range)."""


class TamperedError(AtRestError):
    """A chunk or wrapped key failed authentication: altered, reordered, moved or wrong key."""


def new_data_key() -> bytes:
    """A fresh random 256-bit data key for one file."""
    return os.urandom(KEY_SIZE)


def wrap_key(master: bytes, key: bytes) -> bytes:
    """``key`` wrapped with ``master`` (RFC 3394 AES key wrap; 40 bytes for a 32-byte key)."""
    _check_key(master, "master key")
    _check_key(key, "data key")
    return aes_key_wrap(master, key)


def unwrap_key(master: bytes, wrapped: bytes) -> bytes:
    """The data key inside ``wrapped``; ``TamperedError`` if it was altered or ``master`` is
    not the key that wrapped it."""
    _check_key(master, "master key")
    try:
        key = aes_key_unwrap(master, wrapped)
    except (InvalidUnwrap, ValueError):
        raise TamperedError("wrapped key does not unwrap with this master key") from None
    _check_key(key, "data key")
    return key


def _check_key(key: bytes, what: str) -> None:
    if len(key) != KEY_SIZE:
        raise ValueError(f"{what} must be {KEY_SIZE} bytes, got {len(key)}")


@dataclass(frozen=True)
class _Header:
    raw: bytes
    version: int
    chunk_size: int
    nonce_prefix: bytes

    def nonce(self, index: int) -> bytes:
        return self.nonce_prefix + index.to_bytes(8, "big")

    def associated_data(self, index: int, word: int) -> bytes:
        return self.raw + index.to_bytes(8, "big") + _WORD.pack(word)


def _parse_header(raw: bytes) -> _Header:
    if len(raw) < HEADER_SIZE or raw[: len(MAGIC)] != MAGIC:
        raise AtRestError("not an encrypted recording")
    _magic, version, chunk_size, nonce_prefix, _file_id = _HEADER.unpack(raw[:HEADER_SIZE])
    if version not in (1, 2):
        raise AtRestError(f"unsupported encrypted file version {version}")
    if not _MIN_CHUNK <= chunk_size <= _MAX_CHUNK:
        raise AtRestError(f"implausible chunk size {chunk_size}")
    return _Header(raw[:HEADER_SIZE], version, chunk_size, nonce_prefix)


class EncryptingWriter:
    """A write-only binary file that seals what it is given in chunks (see the module docstring).

    A chunk is sealed and written when it is full, and ``flush`` seals whatever is buffered as a
    shorter chunk before handing everything to the operating system. So a crash (SIGKILL, the
    OOM killer) loses only what was written since the last ``flush``: a muxer that flushes after
    every fragment loses at most the fragment being built, at any bitrate. ``close`` seals the
    final chunk (possibly empty), which marks the file as complete. Not seekable, so muxers
    must write a streamable format (fragmented MP4).
    """

    def __init__(self, file: BinaryIO, data_key: bytes, *, chunk_size: int = CHUNK_SIZE) -> None:
        _check_key(data_key, "data key")
        if not _MIN_CHUNK <= chunk_size <= _MAX_CHUNK:
            raise ValueError(f"chunk_size must be {_MIN_CHUNK}..{_MAX_CHUNK}, got {chunk_size}")
        self._file = file
        self._aead = AESGCM(data_key)
        raw = _HEADER.pack(MAGIC, VERSION, chunk_size, os.urandom(4), os.urandom(16))
        self._header = _Header(raw, VERSION, chunk_size, raw[12:16])
        self._buffer = bytearray()
        self._index = 0
        self._position = 0
        self._closed = False
        file.write(raw)

    @property
    def closed(self) -> bool:
        """Whether ``close`` has been called."""
        return self._closed

    def writable(self) -> bool:
        """Always True while open."""
        return not self._closed

    def seekable(self) -> bool:
        """Always False: sealed chunks cannot be rewritten in place."""
        return False

    def tell(self) -> int:
        """Plaintext bytes written so far."""
        return self._position

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Buffer ``data``, sealing and writing every chunk it completes; returns ``len(data)``."""
        if self._closed:
            raise ValueError("write to a closed EncryptingWriter")
        view = memoryview(data).cast("B")
        size = self._header.chunk_size
        self._buffer += view
        if len(self._buffer) >= size:
            whole = len(self._buffer) - len(self._buffer) % size
            for start in range(0, whole, size):
                self._seal(bytes(self._buffer[start : start + size]), final=False)
            del self._buffer[:whole]
        self._position += len(view)
        return len(view)

    def flush(self) -> None:
        """Seal what is buffered as a (short) chunk and hand everything to the OS."""
        if self._closed:
            return
        if self._buffer:
            self._seal(bytes(self._buffer), final=False)
            self._buffer.clear()
        self._file.flush()

    def close(self) -> None:
        """Seal the final chunk (possibly empty) and close the underlying file."""
        if self._closed:
            return
        self._closed = True
        try:
            self._seal(bytes(self._buffer), final=True)
            self._buffer.clear()
            self._file.flush()
        finally:
            self._file.close()

    def __enter__(self) -> EncryptingWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _seal(self, plaintext: bytes, *, final: bool) -> None:
        header, index = self._header, self._index
        word = len(plaintext) | (_FINAL if final else 0)
        sealed = self._aead.encrypt(
            header.nonce(index), plaintext, header.associated_data(index, word)
        )
        # One write per record: a crash tears at most the record being written.
        self._file.write(_WORD.pack(word) + sealed)
        self._index += 1


def open_encrypted_writer(
    path: Path | str, data_key: bytes, *, chunk_size: int = CHUNK_SIZE
) -> EncryptingWriter:
    """A new encrypted file at ``path`` (created exclusively, mode 0600), sealed with
    ``data_key``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    file = os.fdopen(fd, "wb")
    try:
        return EncryptingWriter(file, data_key, chunk_size=chunk_size)
    except BaseException:
        file.close()
        raise


@dataclass(frozen=True)
class _Layout:
    """Where the complete records of one file are: record ``i`` starts at ``offsets[i]`` on
    disk and holds plaintext ``starts[i] .. starts[i + 1]``."""

    header: _Header
    offsets: list[int]
    starts: list[int]
    """Plaintext offset of each record, plus the total size as a last entry."""
    words: list[int]
    final: bool
    """The file was closed properly (its final record is present)."""
    disk_end: int
    """File offset just after the last complete record (anything after it is torn)."""

    @property
    def size(self) -> int:
        return self.starts[-1]

    def length(self, index: int) -> int:
        return self.starts[index + 1] - self.starts[index]


def _layout(file: BinaryIO) -> _Layout:
    file.seek(0)
    header = _parse_header(file.read(HEADER_SIZE))
    total = os.fstat(file.fileno()).st_size
    if header.version == 1:
        return _layout_v1(file, header, total)
    return _layout_v2(file, header, total)


def _layout_v1(file: BinaryIO, header: _Header, total: int) -> _Layout:
    # Every record but the last is full-size, so the offsets follow from the file's size.
    chunk = header.chunk_size
    record = _WORD.size + chunk + _TAG
    full, rest = divmod(total - HEADER_SIZE, record)
    offsets = [HEADER_SIZE + i * record for i in range(full)]
    starts = [i * chunk for i in range(full + 1)]
    words = [chunk] * full
    final = False
    if rest >= _WORD.size:
        file.seek(HEADER_SIZE + full * record)
        (length,) = _WORD.unpack(file.read(_WORD.size))
        # A torn full-size record claims the whole chunk but lacks bytes: it does not count.
        if length < chunk and rest == _WORD.size + length + _TAG:
            offsets.append(HEADER_SIZE + full * record)
            starts.append(starts[-1] + length)
            words.append(length)
            final = True
    disk_end = offsets[-1] + _WORD.size + words[-1] + _TAG if offsets else HEADER_SIZE
    return _Layout(header, offsets, starts, words, final, disk_end)


def _layout_v2(file: BinaryIO, header: _Header, total: int) -> _Layout:
    fd = file.fileno()
    offsets: list[int] = []
    starts = [0]
    words: list[int] = []
    final = False
    position = HEADER_SIZE
    while position + _WORD.size <= total:
        raw = os.pread(fd, _WORD.size, position)
        if len(raw) < _WORD.size:
            break
        (word,) = _WORD.unpack(raw)
        length = word & ~_FINAL & 0x7FFF_FFFF
        if final or length > header.chunk_size or (length == 0 and not word & _FINAL):
            # A crash only ever leaves a prefix of a record, never a wrong length word.
            raise TamperedError(f"chunk {len(offsets)} has an impossible length")
        end = position + _WORD.size + length + _TAG
        if end > total:
            break  # torn: the process was killed while writing it
        offsets.append(position)
        starts.append(starts[-1] + length)
        words.append(word)
        final = bool(word & _FINAL)
        position = end
    return _Layout(header, offsets, starts, words, final, position)


@dataclass(frozen=True)
class EncryptedFileInfo:
    """What an encrypted file's record structure says, read without the key (nothing is
    authenticated)."""

    version: int
    """Format version (1: fixed-size chunks; 2: short chunks allowed)."""
    plaintext_size: int
    """Readable plaintext bytes: the complete chunks."""
    complete: bool
    """Whether the file was closed properly (its final chunk is present)."""
    chunk_ends: tuple[int, ...]
    """Plaintext offsets at which complete chunks end, in order: where :func:`truncate` can
    cut."""
    torn_bytes: int
    """Bytes on disk after the last complete chunk (a record torn by a crash)."""


def file_info(path: Path | str) -> EncryptedFileInfo:
    """The record structure of the encrypted file at ``path`` (see :class:`EncryptedFileInfo`)."""
    with open(path, "rb") as file:
        layout = _layout(file)
        total = os.fstat(file.fileno()).st_size
    return EncryptedFileInfo(
        version=layout.header.version,
        plaintext_size=layout.size,
        complete=layout.final,
        chunk_ends=tuple(layout.starts[1:]),
        torn_bytes=total - layout.disk_end,
    )


def truncate(path: Path | str, plaintext_size: int) -> None:
    """Cut the encrypted file at ``path`` so that it holds exactly its first ``plaintext_size``
    bytes, which must end at a chunk boundary (:attr:`EncryptedFileInfo.chunk_ends`, or 0).

    For a file a crash left behind: a torn record and chunks after the cut are removed; nothing
    is re-sealed (sealing new data under a used nonce would weaken the key). The result is a
    file without its final chunk, readable to its end.
    """
    with open(path, "r+b") as file:
        layout = _layout(file)
        if plaintext_size not in layout.starts:
            raise AtRestError(f"{plaintext_size} is not a chunk boundary of this file")
        index = layout.starts.index(plaintext_size)
        if index == len(layout.offsets) and layout.final:
            raise AtRestError("the file is complete; it is not cut")
        end = layout.offsets[index] if index < len(layout.offsets) else layout.disk_end
        file.truncate(end)


def plaintext_size(path: Path | str) -> int:
    """Readable plaintext bytes in the encrypted file at ``path``: its complete chunks. Needs no
    key and authenticates nothing; ``read_range`` does."""
    with open(path, "rb") as file:
        return _layout(file).size


def is_complete(path: Path | str) -> bool:
    """Whether the file at ``path`` was closed properly (its final chunk is present)."""
    with open(path, "rb") as file:
        return _layout(file).final


def read_range(path: Path | str, data_key: bytes, start: int, end_inclusive: int) -> bytes:
    """Plaintext bytes ``start..end_inclusive`` of the encrypted file at ``path``.

    Reads and decrypts only the chunks the range touches. Raises ``TamperedError`` if any of
    them fails authentication, ``AtRestError`` if the range is outside ``plaintext_size``.
    To read one file in many ranges, use an :class:`EncryptedFile`: each call here walks the
    file's records again.
    """
    with open(path, "rb") as file:
        return _read_range(file, _layout(file), AESGCM(data_key), start, end_inclusive)


class EncryptedFile:
    """An encrypted file whose records were walked once, for reading many ranges of it (serving
    a video to a player). It holds no open file between reads, so reads may run on any thread
    and nothing needs closing. The size is fixed when it is made."""

    def __init__(self, path: Path | str, data_key: bytes) -> None:
        self._path = path
        with open(path, "rb") as file:
            self._layout = _layout(file)
        self._aead = AESGCM(data_key)

    @property
    def size(self) -> int:
        """Readable plaintext bytes."""
        return self._layout.size

    def read_range(self, start: int, end_inclusive: int) -> bytes:
        """Plaintext bytes ``start..end_inclusive``, as :func:`read_range`."""
        with open(self._path, "rb") as file:
            return _read_range(file, self._layout, self._aead, start, end_inclusive)


def _read_range(file: BinaryIO, layout: _Layout, aead: AESGCM, start: int, end: int) -> bytes:
    if not 0 <= start <= end < layout.size:
        raise AtRestError(f"range {start}-{end} outside 0-{layout.size - 1}")
    header = layout.header
    first = bisect.bisect_right(layout.starts, start) - 1
    last = bisect.bisect_right(layout.starts, end) - 1
    # The touched records lie back to back on disk, so one read covers them all.
    base = layout.offsets[first]
    stop = layout.offsets[last] + _WORD.size + layout.length(last) + _TAG
    file.seek(base)
    blob = file.read(stop - base)
    out = bytearray()
    for index in range(first, last + 1):
        position = layout.offsets[index] - base
        (word,) = _WORD.unpack_from(blob, position)
        length = layout.length(index)
        if word != layout.words[index]:
            raise TamperedError(f"chunk {index} has an unexpected length")
        sealed = blob[position + _WORD.size : position + _WORD.size + length + _TAG]
        try:
            out += aead.decrypt(header.nonce(index), sealed, header.associated_data(index, word))
        except InvalidTag:
            raise TamperedError(f"chunk {index} failed authentication") from None
    offset = layout.starts[first]
    return bytes(out[start - offset : end - offset + 1])


class DecryptingReader(io.RawIOBase):
    """A read-only, seekable view of an encrypted file's plaintext (for PyAV probing and the
    like); each read decrypts only the chunks it needs. The size is fixed when opened."""

    def __init__(self, path: Path | str, data_key: bytes) -> None:
        super().__init__()
        self._file = open(path, "rb")
        try:
            self._layout = _layout(self._file)
        except BaseException:
            self._file.close()
            raise
        self._aead = AESGCM(data_key)
        self._position = 0

    @property
    def size(self) -> int:
        """Readable plaintext bytes."""
        return self._layout.size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._position = base + offset
        return self._position

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        target = memoryview(buffer).cast("B")
        end = min(self.size, self._position + len(target)) - 1
        if end < self._position:
            return 0
        data = _read_range(self._file, self._layout, self._aead, self._position, end)
        target[: len(data)] = data
        self._position += len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()
