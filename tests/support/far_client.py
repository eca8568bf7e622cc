"""A room participant run as its own process, e.g. inside a network namespace of a test's making.

    nsenter --net=NS python -m tests.support.far_client WS_URL ROOM PASSWORD PARTICIPANT ADDRESS

joins ROOM with PASSWORD, gathers host candidates on ADDRESS only, uses the ICE servers the
server hands out (as a browser does, with every transport allowed), waits until it has decoded
video from PARTICIPANT, and prints one JSON line: the frames decoded, its candidate types and
the TURN user name it was handed. Exits 1 (printing the error) when that does not happen in time.
"""

from __future__ import annotations

import asyncio
import json
import sys

from mcu.sfu import ice
from tests.support.room_client import RoomClient, local_candidate_types

TIMEOUT_S = 40.0
FRAMES = 10


async def run(ws_url: str, room: str, password: str, participant: str) -> dict[str, object]:
    client = RoomClient(ws_url, "Far site")
    try:
        await client.connect()
        reply = await client.join(room, password=password)
        if reply["type"] != "joined":
            raise RuntimeError(f"not joined: {reply}")
        decoded = lambda: client.frames_from(participant, "video") >= FRAMES  # noqa: E731
        await client.wait_until(decoded, TIMEOUT_S)
        assert client.subscribe_pc is not None
        return {
            "frames": client.frames_from(participant, "video"),
            "candidates": sorted(local_candidate_types(client.subscribe_pc)),
            "turn_usernames": [s.get("username") for s in client.ice_servers],
        }
    finally:
        await client.close()


def main(argv: list[str]) -> int:
    ws_url, room, password, participant, address = argv
    ice.install(ice.IcePolicy(addresses=(address,)))
    try:
        result = asyncio.run(asyncio.wait_for(run(ws_url, room, password, participant), 60))
    except Exception as exc:  # reported to the test, which shows it
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        return 1
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
