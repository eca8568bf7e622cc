"""Chunked AES-GCM encryption at rest: round trips, short chunks, ranges, tampering, crash
truncation, the first format still read."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mcu.crypto.atrest import (
    CHUNK_SIZE,
    HEADER_SIZE,
    MAGIC,
    AtRestError,
    DecryptingReader,
    EncryptingWriter,
    TamperedError,
    file_info,
    is_complete,
    new_data_key,
    open_encrypted_writer,
    plaintext_size,
    read_range,
    truncate,
    unwrap_key,
    wrap_key,
)

SMALL = 1024  # chunk size that makes multi-chunk files cheap
RECORD = 4 + SMALL + 16


def _encrypt(path: Path, data: bytes, key: bytes, *, chunk_size: int = SMALL, step: int = 777):
    with open_encrypted_writer(path, key, chunk_size=chunk_size) as writer:
        for start in range(0, len(data), step):
            writer.write(data[start : start + step])
    return path


@pytest.fixture
def key() -> bytes:
    return new_data_key()


@pytest.fixture
def plaintext() -> bytes:
    return random.Random(7).randbytes(10 * SMALL + 123)


def test_roundtrip_default_chunk(tmp_path: Path, key: bytes) -> None:
    data = os.urandom(3 * CHUNK_SIZE + 5)
    path = _encrypt(tmp_path / "f", data, key, chunk_size=CHUNK_SIZE, step=10_000)
    assert plaintext_size(path) == len(data)
    assert read_range(path, key, 0, len(data) - 1) == data
    assert is_complete(path)


@pytest.mark.parametrize("size", [0, 1, SMALL - 1, SMALL, SMALL + 1, 3 * SMALL])
def test_roundtrip_sizes(tmp_path: Path, key: bytes, size: int) -> None:
    data = os.urandom(size)
    path = _encrypt(tmp_path / "f", data, key)
    assert plaintext_size(path) == size
    if size:
        assert read_range(path, key, 0, size - 1) == data
    # A final chunk is always written, possibly empty, and it is the only short one.
    full, rest = divmod(size, SMALL)
    assert path.stat().st_size == HEADER_SIZE + full * RECORD + 4 + rest + 16


def test_random_ranges_equal_slices(tmp_path: Path, key: bytes, plaintext: bytes) -> None:
    path = _encrypt(tmp_path / "f", plaintext, key)
    rng = random.Random(1)
    for _ in range(300):
        start = rng.randrange(len(plaintext))
        end = rng.randrange(start, len(plaintext))
        assert read_range(path, key, start, end) == plaintext[start : end + 1]
    for start, end in [
        (0, 0),
        (SMALL - 1, SMALL),
        (SMALL, 2 * SMALL - 1),
        (len(plaintext) - 1,) * 2,
    ]:
        assert read_range(path, key, start, end) == plaintext[start : end + 1]


def test_out_of_range_refused(tmp_path: Path, key: bytes, plaintext: bytes) -> None:
    path = _encrypt(tmp_path / "f", plaintext, key)
    with pytest.raises(AtRestError):
        read_range(path, key, 0, len(plaintext))
    with pytest.raises(AtRestError):
        read_range(path, key, 5, 4)


def test_tampered_chunk_detected(tmp_path: Path, key: bytes, plaintext: bytes) -> None:
    path = _encrypt(tmp_path / "f", plaintext, key)
    raw = bytearray(path.read_bytes())
    raw[HEADER_SIZE + 3 * RECORD + 100] ^= 0x01
    path.write_bytes(raw)
    with pytest.raises(TamperedError):
        read_range(path, key, 3 * SMALL + 5, 3 * SMALL + 6)
    # Chunks the range does not touch are not read, so still decrypt.
    assert read_range(path, key, 0, SMALL - 1) == plaintext[:SMALL]


def test_tampered_header_detected(tmp_path: Path, key: bytes, plaintext: bytes) -> None:
    path = _encrypt(tmp_path / "f", plaintext, key)
    raw = bytearray(path.read_bytes())
    raw[HEADER_SIZE - 1] ^= 0x80  # the file id, bound into every chunk
    path.write_bytes(raw)
    with pytest.raises(TamperedError):
        read_range(path, key, 0, 10)


def test_swapped_chunks_detected(tmp_path: Path, key: bytes, plaintext: bytes) -> None:
    path = _encrypt(tmp_path / "f", plaintext, key)
    raw = bytearray(path.read_bytes())
    one = slice(HEADER_SIZE + RECORD, HEADER_SIZE + 2 * RECORD)
    two = slice(HEADER_SIZE + 2 * RECORD, HEADER_SIZE + 3 * RECORD)
    raw[one], raw[two] = raw[two], raw[one]
    path.write_bytes(raw)
    with pytest.raises(TamperedError):
        read_range(path, key, SMALL, SMALL + 10)
    with pytest.raises(TamperedError):
        read_range(path, key, 2 * SMALL, 2 * SMALL + 10)


def test_chunk_from_another_file_detected(tmp_path: Path, key: bytes, plaintext: bytes) -> None:
    # Even under the same key, a chunk moved into another file at the same index fails: the
    # file id and nonce prefix of its header are part of what it was sealed with.
    first = _encrypt(tmp_path / "a", plaintext, key)
    second = _encrypt(tmp_path / "b", plaintext, key)
    raw = bytearray(second.read_bytes())
    chunk = slice(HEADER_SIZE + RECORD, HEADER_SIZE + 2 * RECORD)
    raw[chunk] = first.read_bytes()[chunk]
    second.write_bytes(raw)
    with pytest.raises(TamperedError):
        read_range(second, key, SMALL, SMALL)


def test_wrong_key_detected(tmp_path: Path, key: bytes, plaintext: bytes) -> None:
    path = _encrypt(tmp_path / "f", plaintext, key)
    with pytest.raises(TamperedError):
        read_range(path, new_data_key(), 0, 10)


@pytest.mark.parametrize("cut", [1, 3, 4, 5, RECORD // 2, RECORD - 1, RECORD, RECORD + 2])
def test_truncated_file_reads_up_to_last_complete_chunk(
    tmp_path: Path, key: bytes, plaintext: bytes, cut: int
) -> None:
    path = _encrypt(tmp_path / "f", plaintext, key)
    whole = path.read_bytes()
    tail = len(plaintext) % SMALL
    final_record = 4 + tail + 16
    path.write_bytes(whole[:-final_record])  # killed before close: no final chunk at all
    path.write_bytes(whole[: len(whole) - final_record - cut])  # ...and mid-way through a chunk
    complete = (len(whole) - final_record - cut - HEADER_SIZE) // RECORD
    assert plaintext_size(path) == complete * SMALL
    assert not is_complete(path)
    assert read_range(path, key, 0, complete * SMALL - 1) == plaintext[: complete * SMALL]
    with pytest.raises(AtRestError):
        read_range(path, key, 0, complete * SMALL)


def test_killed_writer_keeps_everything_flushed(tmp_path: Path, key: bytes) -> None:
    # flush() seals what is buffered as a short chunk: a SIGKILL after it loses nothing,
    # however little was written (a voice track fills a 64 KiB chunk only every ~16 s).
    data = os.urandom(5 * SMALL + 300)
    writer = open_encrypted_writer(tmp_path / "f", key, chunk_size=SMALL)
    writer.write(data[:100])
    writer.flush()
    assert plaintext_size(tmp_path / "f") == 100
    writer.write(data[100:])
    writer.flush()
    assert plaintext_size(tmp_path / "f") == len(data)
    assert read_range(tmp_path / "f", key, 0, len(data) - 1) == data
    assert not is_complete(tmp_path / "f")
    writer.write(b"tail")  # not flushed: what a crash now would lose
    assert plaintext_size(tmp_path / "f") == len(data)
    writer.close()
    assert is_complete(tmp_path / "f")
    assert read_range(tmp_path / "f", key, 0, len(data) + 3) == data + b"tail"


def test_short_chunks_anywhere_read_as_slices(tmp_path: Path, key: bytes) -> None:
    rng = random.Random(5)
    data = rng.randbytes(20 * SMALL)
    path = tmp_path / "f"
    with open_encrypted_writer(path, key, chunk_size=SMALL) as writer:
        position = 0
        while position < len(data):
            step = rng.choice([1, 17, 300, SMALL - 1, SMALL, 3 * SMALL + 5])
            writer.write(data[position : position + step])
            position += step
            if rng.random() < 0.5:
                writer.flush()
    info = file_info(path)
    assert info.complete and info.version == 2 and info.plaintext_size == len(data)
    assert len(info.chunk_ends) > 20  # short chunks in the middle, not only at the end
    for _ in range(300):
        start = rng.randrange(len(data))
        end = rng.randrange(start, min(len(data), start + 3 * SMALL))
        assert read_range(path, key, start, end) == data[start : end + 1]
    with DecryptingReader(path, key) as reader:
        assert reader.read() == data


def test_final_mark_is_authenticated(tmp_path: Path, key: bytes) -> None:
    path = _encrypt(tmp_path / "f", os.urandom(2 * SMALL + 10), key)
    raw = bytearray(path.read_bytes())
    last = HEADER_SIZE + 2 * RECORD
    raw[last] ^= 0x80  # unmark the final chunk: it claims to be an ordinary short one
    path.write_bytes(raw)
    assert not is_complete(path)
    with pytest.raises(TamperedError):
        read_range(path, key, 2 * SMALL, 2 * SMALL + 1)


def test_impossible_length_is_tampering(tmp_path: Path, key: bytes) -> None:
    path = _encrypt(tmp_path / "f", os.urandom(3 * SMALL), key)
    raw = bytearray(path.read_bytes())
    raw[HEADER_SIZE + RECORD : HEADER_SIZE + RECORD + 4] = (SMALL + 1).to_bytes(4, "big")
    path.write_bytes(raw)
    with pytest.raises(TamperedError):
        plaintext_size(path)


@pytest.mark.parametrize("cut", [0, 1, 4, 30])
def test_truncate_to_a_chunk_boundary(tmp_path: Path, key: bytes, cut: int) -> None:
    data = os.urandom(3 * SMALL)
    path = tmp_path / "f"
    writer = open_encrypted_writer(path, key, chunk_size=SMALL)
    for piece in (data[:500], data[500:SMALL], data[SMALL:]):
        writer.write(piece)
        writer.flush()
    # killed while writing one more record: the first `cut` bytes of it reached the disk
    with open(path, "ab") as file:
        file.write((SMALL.to_bytes(4, "big") + os.urandom(SMALL + 16))[:cut])
    info = file_info(path)
    assert info.chunk_ends == (500, SMALL, 2 * SMALL, 3 * SMALL)
    assert info.torn_bytes == cut and not info.complete
    with pytest.raises(AtRestError):
        truncate(path, 600)  # not a chunk boundary
    truncate(path, 3 * SMALL)
    assert file_info(path).torn_bytes == 0
    assert read_range(path, key, 0, 3 * SMALL - 1) == data
    truncate(path, 500)
    assert file_info(path).chunk_ends == (500,)
    assert read_range(path, key, 0, 499) == data[:500]
    writer.close()


def test_complete_file_is_not_truncated(tmp_path: Path, key: bytes) -> None:
    path = _encrypt(tmp_path / "f", os.urandom(SMALL + 3), key)
    with pytest.raises(AtRestError):
        truncate(path, SMALL + 3)


def _encrypt_v1(path: Path, data: bytes, key: bytes, *, final: bool = True) -> Path:
    """A file in the first format (every chunk full but the last), sealed as it was."""
    header = MAGIC + bytes([1]) + SMALL.to_bytes(4, "big") + os.urandom(4) + os.urandom(16)
    aead = AESGCM(key)
    chunks = [data[i : i + SMALL] for i in range(0, len(data) - len(data) % SMALL, SMALL)]
    if final:
        chunks.append(data[len(chunks) * SMALL :])
    out = bytearray(header)
    for index, chunk in enumerate(chunks):
        word = len(chunk).to_bytes(4, "big")
        aad = header + index.to_bytes(8, "big") + word
        out += word + aead.encrypt(header[12:16] + index.to_bytes(8, "big"), chunk, aad)
    path.write_bytes(out)
    return path


def test_version_1_files_still_read(tmp_path: Path, key: bytes, plaintext: bytes) -> None:
    path = _encrypt_v1(tmp_path / "old", plaintext, key)
    assert plaintext_size(path) == len(plaintext) and is_complete(path)
    assert file_info(path).version == 1
    rng = random.Random(2)
    for _ in range(100):
        start = rng.randrange(len(plaintext))
        end = rng.randrange(start, len(plaintext))
        assert read_range(path, key, start, end) == plaintext[start : end + 1]
    cut = _encrypt_v1(tmp_path / "killed", plaintext, key, final=False)
    assert plaintext_size(cut) == 10 * SMALL and not is_complete(cut)
    assert read_range(cut, key, 0, 10 * SMALL - 1) == plaintext[: 10 * SMALL]


def test_header_is_not_mp4(tmp_path: Path, key: bytes) -> None:
    path = _encrypt(tmp_path / "f", b"\x00\x00\x00\x18ftypisom" + bytes(100), key)
    raw = path.read_bytes()
    assert raw.startswith(MAGIC)
    assert raw[4:8] != b"ftyp"
    assert b"ftyp" not in raw
    assert not raw.startswith(b"%PDF")


def test_not_an_encrypted_file(tmp_path: Path, key: bytes) -> None:
    (tmp_path / "plain").write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(100))
    with pytest.raises(AtRestError):
        plaintext_size(tmp_path / "plain")


def test_writer_refuses_existing_file(tmp_path: Path, key: bytes) -> None:
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(FileExistsError):
        open_encrypted_writer(tmp_path / "f", key)


def test_writer_on_a_file_object(key: bytes) -> None:
    class Keep(io.BytesIO):
        def close(self) -> None:
            self.kept = self.getvalue()
            super().close()

    sink = Keep()
    writer = EncryptingWriter(sink, key, chunk_size=SMALL)
    assert writer.write(memoryview(b"abc" * 1000)) == 3000
    assert writer.tell() == 3000 and not writer.seekable()
    writer.close()
    assert writer.closed
    with pytest.raises(ValueError):
        writer.write(b"x")
    assert len(sink.kept) == HEADER_SIZE + 2 * RECORD + 4 + (3000 - 2 * SMALL) + 16


def test_decrypting_reader_seeks(tmp_path: Path, key: bytes, plaintext: bytes) -> None:
    path = _encrypt(tmp_path / "f", plaintext, key)
    with DecryptingReader(path, key) as reader:
        assert reader.size == len(plaintext)
        reader.seek(SMALL - 3)
        assert reader.read(10) == plaintext[SMALL - 3 : SMALL + 7]
        reader.seek(-5, io.SEEK_END)
        assert reader.read() == plaintext[-5:]
        assert reader.read(1) == b""


def test_wrap_unwrap(key: bytes) -> None:
    master = new_data_key()
    wrapped = wrap_key(master, key)
    assert len(wrapped) == 40 and key not in wrapped
    assert unwrap_key(master, wrapped) == key
    with pytest.raises(TamperedError):
        unwrap_key(new_data_key(), wrapped)
    with pytest.raises(TamperedError):
        unwrap_key(master, wrapped[:-1] + bytes([wrapped[-1] ^ 1]))
    with pytest.raises(ValueError):
        wrap_key(master[:16], key)
    assert new_data_key() != new_data_key()
