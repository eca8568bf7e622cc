"""What every target shares: reading structured values out of the fuzzer's bytes, and telling a
parser's documented refusal from a crash.

A target is a function ``(data: bytes) -> None`` that returns when the code under test accepted
or properly refused ``data`` and raises :class:`Crash` (or lets any unexpected exception out)
otherwise. The same function runs under atheris and, uninstrumented, in
``tests/unit/test_fuzz_corpus.py``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


class Crash(AssertionError):
    """A property of the code under test was violated for this input."""


class Input:
    """Reads fixed-size values from the front of a fuzzer input, then the rest as a blob.

    Reading past the end yields zeros / empty bytes, so every input decodes to something: the
    fuzzer's mutations never waste an execution on a harness-level refusal.
    """

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def byte(self) -> int:
        """The next byte (0 when none is left)."""
        return self.uint(1)

    def uint(self, size: int) -> int:
        """The next ``size`` bytes as a big-endian unsigned integer."""
        chunk = self._data[self._pos : self._pos + size]
        self._pos += size
        return int.from_bytes(chunk.ljust(size, b"\x00"), "big")

    def flag(self) -> bool:
        """The next byte's low bit."""
        return bool(self.byte() & 1)

    def take(self, size: int) -> bytes:
        """Up to ``size`` next bytes."""
        chunk = self._data[self._pos : self._pos + size]
        self._pos += size
        return chunk

    def rest(self) -> bytes:
        """Everything not read yet."""
        chunk = self._data[self._pos :]
        self._pos = len(self._data)
        return chunk

    @property
    def left(self) -> int:
        """Bytes not read yet."""
        return max(0, len(self._data) - self._pos)


def text(data: bytes) -> str:
    """Fuzzer bytes as text the way a peer can send it: UTF-8, invalid sequences replaced.

    Corpus files stay readable (a JSON message or an SDP offer is its own seed), and lone
    surrogates, which JSON's ``\\ud800`` escapes can still produce, remain reachable.
    """
    return data.decode("utf-8", "replace")


class _ErrorLog(logging.Handler):
    """Remembers records logged with a traceback: a catch-all that swallowed a crash."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)


_error_log = _ErrorLog()


def install_logging() -> None:
    """Route all logging to the crash detector only (the fuzzer's output stays readable)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(_error_log)
    root.setLevel(logging.ERROR)


@contextlib.contextmanager
def no_swallowed_exceptions() -> Iterator[None]:
    """Fail if the code under test logged an exception it caught (``logger.exception``).

    Servers catch everything at their edges so one bad packet cannot stop a socket; for the
    fuzzer that catch-all must stay unused, or it hides the crash it absorbed.
    """
    root = logging.getLogger()
    attached = _error_log not in root.handlers
    if attached:
        root.addHandler(_error_log)
    _error_log.records.clear()
    try:
        yield
    finally:
        if attached:
            root.removeHandler(_error_log)
    if _error_log.records:
        record = _error_log.records[0]
        _error_log.records.clear()
        cause = record.exc_info[1] if record.exc_info else None
        raise Crash(f"{record.name} caught and logged: {record.getMessage()}: {cause!r}") from cause
