"""Recordings encrypted at rest: AES-256-GCM in fixed-size chunks, seekable without the whole file.

Layout of an encrypted file::

    header (32 bytes)
        magic    b"MCUENC1"   7 bytes (offset 4 is b"NC1\\x01", never MP4's b"ftyp")
        version  u8           1
        chunk    u32 BE       plaintext bytes per chunk (64 KiB)
        nonce    4 bytes      random per-file nonce prefix
        file id  16 bytes     random, names this file in every chunk's associated data
    records, one per chunk
        length   u32 BE       plaintext bytes in this chunk (== chunk, except the last)
        sealed   length + 16  AES-GCM ciphertext and tag

Chunk ``i`` is sealed with nonce ``prefix || u64be(i)`` and associated data
``header || u64be(i) || u32be(length)``: a chunk cannot be reordered, moved into another file,
resized, or kept under an altered header without failing authentication. Every record but the
last holds a full chunk, so record ``i`` starts at ``32 + i * (20 + chunk)`` and a byte range is
served by decrypting only the chunks it touches. The last record is always short (possibly
empty); a file whose last record is missing or torn (the process was killed mid-write) reads
fine up to its last complete chunk.

Each file has its own random 256-bit data key, stored only wrapped (RFC 3394 AES key wrap) with
the server's master key, in the library catalogue, never next to the file.

File I/O here is synchronous: call it from an executor.
"""

from __future__ import annotations

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
    "EncryptingWriter",
    "TamperedError",
    "is_complete",
    "new_data_key",
    "open_encrypted_writer",
    "plaintext_size",
    "read_range",
    "unwrap_key",
    "wrap_key",
]

MAGIC: Final = b"MCUENC1"
"""First bytes of every encrypted file."""
VERSION: Final = 1
CHUNK_SIZE: Final = 64 * 1024
"""Plaintext bytes per chunk: ~0.35 s of 1.5 Mbit/s video, the most a crash can lose."""
HEADER_SIZE: Final = 32
KEY_SIZE: Final = 32
_TAG = 16
_LENGTH = struct.Struct(">I")
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
    chunk_size: int
    nonce_prefix: bytes

    @property
    def record_size(self) -> int:
        return _LENGTH.size + self.chunk_size + _TAG

    def nonce(self, index: int) -> bytes:
        return self.nonce_prefix + index.to_bytes(8, "big")

    def associated_data(self, index: int, length: int) -> bytes:
        return self.raw + index.to_bytes(8, "big") + _LENGTH.pack(length)

    def offset(self, index: int) -> int:
        return HEADER_SIZE + index * self.record_size


def _parse_header(raw: bytes) -> _Header:
    if len(raw) < HEADER_SIZE or raw[: len(MAGIC)] != MAGIC:
        raise AtRestError("not an encrypted recording")
    _magic, version, chunk_size, nonce_prefix, _file_id = _HEADER.unpack(raw[:HEADER_SIZE])
    if version != VERSION:
        raise AtRestError(f"unsupported encrypted file version {version}")
    if not _MIN_CHUNK <= chunk_size <= _MAX_CHUNK:
        raise AtRestError(f"implausible chunk size {chunk_size}")
    return _Header(raw[:HEADER_SIZE], chunk_size, nonce_prefix)


class EncryptingWriter:
    """A write-only binary file that seals what it is given in chunks (see the module docstring).

    Only whole chunks reach the disk before ``close``: ``flush`` pushes the complete chunks
    written so far to the operating system but keeps a partial chunk buffered, because a short
    chunk may only end the file. So a crash (SIGKILL, power loss) loses at most the last
    ``chunk_size`` bytes written (~0.35 s of 1.5 Mbit/s video at the default 64 KiB); what came
    before stays readable. ``close`` seals the final short chunk. Not seekable, so muxers must
    write a streamable format (fragmented MP4).
    """

    def __init__(self, file: BinaryIO, data_key: bytes, *, chunk_size: int = CHUNK_SIZE) -> None:
        _check_key(data_key, "data key")
        if not _MIN_CHUNK <= chunk_size <= _MAX_CHUNK:
            raise ValueError(f"chunk_size must be {_MIN_CHUNK}..{_MAX_CHUNK}, got {chunk_size}")
        self._file = file
        self._aead = AESGCM(data_key)
        raw = _HEADER.pack(MAGIC, VERSION, chunk_size, os.urandom(4), os.urandom(16))
        self._header = _Header(raw, chunk_size, raw[12:16])
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
                self._seal(bytes(self._buffer[start : start + size]))
            del self._buffer[:whole]
        self._position += len(view)
        return len(view)

    def flush(self) -> None:
        """Hand the complete chunks to the OS; a partial chunk stays buffered (see the class)."""
        if not self._closed:
            self._file.flush()

    def close(self) -> None:
        """Seal the final (short, possibly empty) chunk and close the underlying file."""
        if self._closed:
            return
        self._closed = True
        try:
            self._seal(bytes(self._buffer))
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

    def _seal(self, plaintext: bytes) -> None:
        header, index = self._header, self._index
        sealed = self._aead.encrypt(
            header.nonce(index), plaintext, header.associated_data(index, len(plaintext))
        )
        self._file.write(_LENGTH.pack(len(plaintext)) + sealed)
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
    header: _Header
    full_chunks: int
    """Records holding a whole chunk."""
    tail: int | None
    """Plaintext length of the complete short final record, None if it is missing or torn."""

    @property
    def size(self) -> int:
        return self.full_chunks * self.header.chunk_size + (self.tail or 0)

    def chunk_length(self, index: int) -> int:
        return self.header.chunk_size if index < self.full_chunks else self.tail or 0


def _layout(file: BinaryIO) -> _Layout:
    header = _parse_header(file.read(HEADER_SIZE))
    total = os.fstat(file.fileno()).st_size
    full, rest = divmod(total - HEADER_SIZE, header.record_size)
    tail: int | None = None
    if rest >= _LENGTH.size:
        file.seek(header.offset(full))
        (length,) = _LENGTH.unpack(file.read(_LENGTH.size))
        # A torn full-size record claims the whole chunk but lacks bytes: it does not count.
        if length < header.chunk_size and rest == _LENGTH.size + length + _TAG:
            tail = length
    return _Layout(header, full, tail)


def plaintext_size(path: Path | str) -> int:
    """Readable plaintext bytes in the encrypted file at ``path``: its complete chunks, plus the
    final short chunk if that was written whole. Needs no key and authenticates nothing;
    ``read_range`` does."""
    with open(path, "rb") as file:
        return _layout(file).size


def is_complete(path: Path | str) -> bool:
    """Whether the file at ``path`` was closed properly (its final short chunk is present)."""
    with open(path, "rb") as file:
        return _layout(file).tail is not None


def read_range(path: Path | str, data_key: bytes, start: int, end_inclusive: int) -> bytes:
    """Plaintext bytes ``start..end_inclusive`` of the encrypted file at ``path``.

    Reads and decrypts only the chunks the range touches. Raises ``TamperedError`` if any of
    them fails authentication, ``AtRestError`` if the range is outside ``plaintext_size``.
    """
    with open(path, "rb") as file:
        return _read_range(file, _layout(file), AESGCM(data_key), start, end_inclusive)


def _read_range(file: BinaryIO, layout: _Layout, aead: AESGCM, start: int, end: int) -> bytes:
    if not 0 <= start <= end < layout.size:
        raise AtRestError(f"range {start}-{end} outside 0-{layout.size - 1}")
    header, size = layout.header, layout.header.chunk_size
    first, last = start // size, end // size
    file.seek(header.offset(first))
    # Every touched record but the tail is full-size, so one read covers them all.
    blob = file.read(
        (last - first) * header.record_size + _LENGTH.size + layout.chunk_length(last) + _TAG
    )
    out = bytearray()
    position = 0
    for index in range(first, last + 1):
        (length,) = _LENGTH.unpack_from(blob, position)
        if length != layout.chunk_length(index):
            raise TamperedError(f"chunk {index} has an unexpected length")
        sealed = blob[position + _LENGTH.size : position + _LENGTH.size + length + _TAG]
        try:
            out += aead.decrypt(header.nonce(index), sealed, header.associated_data(index, length))
        except InvalidTag:
            raise TamperedError(f"chunk {index} failed authentication") from None
        position += header.record_size
    offset = first * size
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
