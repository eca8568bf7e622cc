"""The compiled forwarding path (mcu.infra.native, scripts/build_native).

The rest of the suite runs whichever build is current, the compiled one in CI; these tests check
that it is the compiled one there, that an edited source is never shadowed by an old build, and
that the forwarding tests pass on the source too.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pylibsrtp import Policy, Session
from pylibsrtp._binding import ffi

from mcu.infra import native
from mcu.sfu.aiortc_send import MAX_PLAIN_BYTES

ROOT = Path(__file__).resolve().parents[2]
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]

needs_build = pytest.mark.skipif(
    native.STATUS != native.COMPILED_STATUS,
    reason=f"the forwarding path is not compiled here ({native.STATUS})",
)


def _rtp(sequence: int, payload: bytes) -> tuple[bytes, bytes]:
    return bytes((0x80, 96)) + sequence.to_bytes(2, "big") + bytes(8), payload


PROBE = (
    "import sys, mcu.infra.native as n\n"
    "import mcu.sfu.aiortc_send, mcu.sfu.consumer, mcu.sfu.producer, mcu.sfu.rewrite, mcu.media\n"
    "print(n.STATUS)\n"
    "print(*(sys.modules[m].__spec__.origin for m in n.COMPILED), sep='\\n')\n"
)


def probe(tree: Path, **env: str) -> tuple[str, list[str]]:
    """Import the compiled modules in a fresh interpreter from ``tree``; (status, origins)."""
    environment = {k: v for k, v in os.environ.items() if k != native.ENVIRONMENT}
    environment.update(env, PYTHONPATH=str(tree))
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=tree, env=environment, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    status, *origins = result.stdout.strip().splitlines()
    return status, origins


@pytest.fixture
def built_copy(tmp_path: Path) -> Path:
    """A copy of the package with its current build (and the sources its stamp names)."""
    for folder in ("mcu", "codecs"):
        shutil.copytree(
            ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    return tmp_path


@needs_build
def test_the_forwarding_modules_run_compiled() -> None:
    for module in native.COMPILED:
        origin = importlib.import_module(module).__spec__.origin
        assert origin is not None and origin.endswith(SUFFIX), (module, origin)
    from mcu.sfu import aiortc_send

    assert aiortc_send._wire_send is not None  # and the transmitter writes through _wire.c


@needs_build
def test_the_c_helper_keeps_a_blocked_packet_and_reports_a_failed_write() -> None:
    # A full non-blocking pipe stands in for a socket whose buffer is full: the protected packet
    # stays available for the transport to queue; a descriptor that cannot be written fails.
    from mcu.sfu import aiortc_send

    wire: Any = aiortc_send._wire
    key = os.urandom(32 + 12)
    policy = {"key": key, "srtp_profile": Policy.SRTP_PROFILE_AEAD_AES_256_GCM}
    session = Session(Policy(ssrc_type=Policy.SSRC_ANY_OUTBOUND, **policy))
    reference = Session(Policy(ssrc_type=Policy.SSRC_ANY_OUTBOUND, **policy))
    context = int(ffi.cast("uintptr_t", session._srtp[0]))
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    try:
        with contextlib.suppress(BlockingIOError):
            while True:
                os.write(write_end, bytes(65536))
        header, payload = _rtp(1, b"blocked")
        assert wire.send(write_end, context, header, payload) == wire.BLOCKED
        assert wire.pending() == reference.protect(header + payload)
        header, payload = _rtp(2, b"failed")
        assert wire.send(read_end, context, header, payload) == wire.FAILED  # EBADF
        assert wire.send(write_end, context, header, payload) == wire.REFUSED  # number reused
        assert wire.pending() == b""
        assert wire.send(write_end, context, *_rtp(3, bytes(MAX_PLAIN_BYTES))) == wire.REFUSED
    finally:
        os.close(read_end)
        os.close(write_end)


@needs_build
def test_an_edited_source_runs_instead_of_the_old_build(built_copy: Path) -> None:
    status, origins = probe(built_copy)
    assert status == native.COMPILED_STATUS  # the copy itself is a working build
    assert all(o.endswith(SUFFIX) for o in origins)

    consumer = built_copy / "mcu" / "sfu" / "consumer.py"
    consumer.write_text(consumer.read_text() + "\n# edited after the build\n")
    status, origins = probe(built_copy)
    assert status.startswith("python: the compiled build is out of date")
    assert "sfu/consumer.py changed" in status
    assert all(o.endswith(".py") for o in origins), origins


@needs_build
def test_a_changed_dependency_outdates_the_build(built_copy: Path) -> None:
    # consumer.py is compiled against the types of rtp.py, which is not itself compiled.
    rtp = built_copy / "mcu" / "sfu" / "rtp.py"
    rtp.write_text(rtp.read_text() + "\n# edited after the build\n")
    status, origins = probe(built_copy)
    assert "sfu/rtp.py changed" in status
    assert all(o.endswith(".py") for o in origins), origins


@needs_build
def test_the_build_can_be_turned_off(built_copy: Path) -> None:
    status, origins = probe(built_copy, **{native.ENVIRONMENT: "0"})
    assert status == f"python: {native.ENVIRONMENT}=0"
    assert all(o.endswith(".py") for o in origins), origins


@needs_build
def test_the_forwarding_tests_pass_on_the_source_too() -> None:
    # Everything else ran compiled: the same behaviour from the interpreted source, which is
    # what runs wherever the build is missing or out of date.
    tests = [
        "test_rewrite.py",
        "test_rtp_rewrite.py",
        "test_consumer.py",
        "test_consumer_burst.py",
        "test_consumer_follow.py",
        "test_producer_shedding.py",
        "test_aiortc_send.py",
        "test_layers.py",
    ]
    environment = dict(os.environ, **{native.ENVIRONMENT: "0"})
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         *(str(ROOT / "tests" / "unit" / t) for t in tests)],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout, result.stdout[-2000:]
