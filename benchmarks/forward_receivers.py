"""The subscribers' side of ``bench_forward.py``: peer connections that count, never decrypt.

``bench_forward.py`` starts this script as a child process pinned to its own core and drives it
with JSON lines on stdin/stdout:

- ``{"op": "answer", "offers": [sdp, ...]}``: one aiortc ``RTCPeerConnection`` per offer, on
  127.0.0.1; replies ``{"answers": [sdp, ...]}`` in the same order.
- ``{"op": "arm", "timeout": s}``: waits until every connection is connected (ICE and DTLS done),
  then counts at the socket; replies ``{"armed": n}``.
- ``{"op": "counts"}``: replies ``{"counts": [...], "cpu": s}``, SRTP packets received per
  connection and this process's CPU time.
- ``{"op": "quit"}``: closes the connections and exits.

Counting at the socket: ``datagram_received`` of each connection's aioice ``StunProtocol`` is
wrapped so that an RTP packet (first byte 128-191, second byte not an RTCP packet type) is counted
and dropped before aiortc would unprotect it. STUN (consent freshness, so the connections stay up
beyond 30 s), DTLS and SRTCP go on to aiortc as before. Nothing is decrypted or decoded: counting
costs this process 3-5 us per packet, less than half of what the server spends sending it, and the
4 MiB socket buffers (``mcu.sfu.ice``) absorb bursts.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
PROJECT_ROOT = SCRIPT.parent.parent
if str(PROJECT_ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(PROJECT_ROOT))

import uvloop  # noqa: E402
from aiortc import RTCPeerConnection, RTCSessionDescription  # noqa: E402
from aiortc.rtcdtlstransport import RTCDtlsTransport  # noqa: E402

from mcu.sfu import ice  # noqa: E402
from mcu.sfu.peer import new_peer_connection  # noqa: E402

RECEIVER_CORE = 1
PIPE_LIMIT = 16 << 20  # a batch of SDP offers is one JSON line


class ReceiverProcess:
    """The child process holding the subscribers' peer connections; JSON lines over pipes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls) -> ReceiverProcess:
        """Start the process (it pins itself to ``RECEIVER_CORE``)."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SCRIPT),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=PIPE_LIMIT,
        )
        return cls(process)

    async def call(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send one request and wait at most ``timeout`` seconds for its reply."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        await self.process.stdin.drain()
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            raise RuntimeError("the receiver process exited")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"receiver process: {reply['error']}")
        return reply

    async def stop(self) -> None:
        """Ask the process to close its connections and exit; kill it if it does not."""
        try:
            await self.call({"op": "quit"}, 30)
        except Exception:
            pass
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


def count_at_socket(pc: RTCPeerConnection, counts: list[int], index: int) -> None:
    """Count SRTP packets at this connection's sockets and drop them before unprotect."""
    dtls: RTCDtlsTransport = pc.getTransceivers()[0].receiver.transport
    for protocol in dtls.transport._connection._protocols:
        original = protocol.datagram_received

        def counting(data: bytes, addr: Any, original: Any = original) -> None:
            # RTP: first byte 128-191 and second byte not an RTCP packet type (200-207).
            if 127 < data[0] < 192 and not 191 < data[1] < 224:
                counts[index] += 1
            else:
                original(data, addr)  # STUN, DTLS, SRTCP: aiortc's as before

        protocol.datagram_received = counting  # type: ignore[method-assign,assignment]


async def receiver_main() -> None:
    """Answer the server's offers, then count packets at the sockets until told to quit."""
    os.sched_setaffinity(0, {RECEIVER_CORE})
    ice.install(ice.IcePolicy(addresses=("127.0.0.1",)))
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # nothing else may write to the message pipe
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=PIPE_LIMIT)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    pcs: list[RTCPeerConnection] = []
    counts: list[int] = []
    armed = 0

    async def answer(pc: RTCPeerConnection, offer: str) -> str:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)

    for _ in range(1_000_000):
        line = await reader.readline()
        if not line:
            break
        message = json.loads(line)
        reply: dict[str, Any]
        try:
            if message["op"] == "answer":
                batch = [new_peer_connection([]) for _ in message["offers"]]
                pcs.extend(batch)  # index i here is subscriber i on the server
                counts.extend(0 for _ in batch)
                answers = await asyncio.gather(
                    *(answer(pc, o) for pc, o in zip(batch, message["offers"], strict=True))
                )
                reply = {"answers": answers}
            elif message["op"] == "arm":
                deadline = time.monotonic() + message["timeout"]
                while time.monotonic() < deadline:
                    if all(pc.connectionState == "connected" for pc in pcs[armed:]):
                        break
                    await asyncio.sleep(0.05)
                else:
                    raise RuntimeError("subscriber connections did not connect in time")
                for index in range(armed, len(pcs)):
                    count_at_socket(pcs[index], counts, index)
                armed = len(pcs)
                reply = {"armed": armed}
            elif message["op"] == "counts":
                reply = {"counts": counts, "cpu": time.process_time()}
            elif message["op"] == "quit":
                await asyncio.wait_for(
                    asyncio.gather(*(pc.close() for pc in pcs), return_exceptions=True), 20
                )
                out.write(json.dumps({"ok": True}) + "\n")
                out.flush()
                return
            else:
                reply = {"error": f"unknown op {message['op']!r}"}
        except Exception as exc:
            reply = {"error": repr(exc)}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    uvloop.run(receiver_main())
