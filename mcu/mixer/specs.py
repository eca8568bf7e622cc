"""What a mixed receiver is given, out of what it asked for: few distinct encodes per room.

Every distinct spec is one compose-and-encode loop (~10-25 % of a core at 720p). Left to the
receivers, 30 of them asking for 30 bitrates would start 30 encoders and starve the forwarding
path of every room on the worker. So bitrates snap down to a short ladder, a room runs at most
``MAX_ENCODES_PER_ROOM`` encodes and the process ``MAX_ENCODES_PER_PROCESS``; past either, a
receiver shares the nearest encode already running.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace

from mcu.mixer.layout import LayoutKind

BITRATE_LADDER = (250_000, 375_000, 500_000, 750_000, 1_000_000, 1_500_000)
"Bit rates an encode runs at; a request snaps down to the highest step not above it."
MAX_ENCODES_PER_ROOM = 4
"Distinct composite encodes in one room (layouts, sizes, pages and bitrates in use)."
MAX_ENCODES_PER_PROCESS = 8
"Distinct composite encodes in one process, every room together: about one core's worth."


@dataclass(frozen=True)
class MixSpec:
    """What one group of mixed receivers gets."""

    layout: LayoutKind = "grid"
    width: int = 1280
    height: int = 720
    bitrate: int = 1_500_000
    fps: int = 30
    page: int = 0


def quantise(spec: MixSpec) -> MixSpec:
    """``spec`` with its bitrate snapped down to the ladder (up to its lowest step)."""
    steps = [b for b in BITRATE_LADDER if b <= spec.bitrate]
    bitrate = steps[-1] if steps else BITRATE_LADDER[0]
    return spec if bitrate == spec.bitrate else replace(spec, bitrate=bitrate)


def _distance(asked: MixSpec, running: MixSpec) -> tuple[int, int, int, int, int]:
    # What a receiver notices most comes first: another layout or page shows other people,
    # another size is rescaled by the browser, a higher bitrate may not fit its link.
    return (
        running.layout != asked.layout,
        running.page != asked.page,
        (running.width, running.height) != (asked.width, asked.height),
        running.bitrate > asked.bitrate,
        abs(running.bitrate - asked.bitrate),
    )


def choose(
    asked: MixSpec,
    running: Collection[MixSpec],
    process_encodes: int,
    *,
    room_limit: int = MAX_ENCODES_PER_ROOM,
    process_limit: int = MAX_ENCODES_PER_PROCESS,
) -> MixSpec:
    """The spec a receiver asking for ``asked`` gets, given the room's ``running`` encodes and
    the ``process_encodes`` running in the whole process.

    A new encode starts only within both limits; otherwise the nearest running one is shared. A
    room with none running always gets one, so no mixed receiver is left without a picture.
    """
    spec = quantise(asked)
    if spec in running or not running:
        return spec
    if len(running) < room_limit and process_encodes < process_limit:
        return spec
    return min(running, key=lambda r: _distance(spec, r))
