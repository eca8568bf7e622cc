"""The impaired link the thin-link tests stand on: its rate limit holds and can be lifted.

A sender in the far namespace paces UDP datagrams at about 5.8 Mbit/s towards this side; with
the link limited to 1 Mbit/s what arrives can be no more than the token bucket's burst, its
queue and the rate over the time the sending took. Without the limit nearly all of it arrives.
"""

from __future__ import annotations

import asyncio
import socket
import sys

import pytest

from tests.support.impair import QUEUE_MS, ImpairedLink, impair_available

pytestmark = pytest.mark.skipif(impair_available() is not None, reason=str(impair_available()))

COUNT = 600
SIZE = 1200
SENDER = f"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
start = time.monotonic()
for i in range({COUNT}):
    s.sendto(b"x" * {SIZE}, (sys.argv[1], int(sys.argv[2])))
    if i % 4 == 3:
        time.sleep(0.0066)
print(time.monotonic() - start)
"""


async def blast(link: ImpairedLink) -> tuple[int, float]:
    """Bytes that arrived here of COUNT datagrams sent from the far side, and the send time."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind((link.host_address, 0))
    receiver.setblocking(False)
    port = receiver.getsockname()[1]
    received = 0
    loop = asyncio.get_running_loop()
    sending = asyncio.ensure_future(
        link.run(sys.executable, "-c", SENDER, link.host_address, str(port))
    )
    try:
        while True:  # until nothing came for half a second after the sender finished
            try:
                data = await asyncio.wait_for(loop.sock_recv(receiver, 2048), 0.5)
            except TimeoutError:
                if sending.done():
                    break
                continue
            received += len(data)
        return received, float((await sending).strip())
    finally:
        receiver.close()


async def test_rate_limit_holds_and_lifts() -> None:
    async with ImpairedLink(index=7) as link:
        await link.set_rate(1000)
        limited, took = await blast(link)
        # Burst (32 kbit) + what the queue holds + the rate over the sending, with a margin.
        bound = 4_000 + 1_000_000 / 8 * QUEUE_MS / 1000 + 1_000_000 / 8 * (took + 0.2)
        assert limited <= bound, (limited, bound, took)
        assert limited < COUNT * SIZE * 0.6, (limited, took)
        await link.set_rate(None)
        free, took = await blast(link)
        assert free >= COUNT * SIZE * 0.9, (free, took)
        assert link.rate_kbit is None
