"""Loss and outage between a browser and the server: what the people in the room notice.

    .venv/bin/python benchmarks/bench_loss.py                 # --seconds 20 --outage 10
    .venv/bin/python benchmarks/bench_loss.py --loss 0,5 --outage 0
    .venv/bin/python benchmarks/bench_loss.py --loss 0,2,5 --outage 0 --compare-opus-fec

Starts the real server (``python -m mcu --workers 1``, every address of the namespace) and a
consultation of headless Chromium tabs running the web client (fake camera, 640x360 VP8, and
microphone): one participant on loopback ("near") and one in a network namespace of its own
("far") behind a veth pair (tests/support/impair.py). For each ``--loss`` percentage the link
drops that share of packets at random in each direction for ``--seconds``, and the script prints,
over that window, for both directions (far receiving near: the downstream leg is lossy; near
receiving far: the upstream leg is):

- video frames decoded, freezes (Chromium's ``freezeCount``: a frame late by more than
  max(3 x the average frame interval, average + 150 ms)) and their total duration;
- the share of audio samples concealed (invented by the decoder for lost packets);
- the receiver's NACKs and keyframe requests (PLI), and the server's repair counters
  (``mcu_nacks_received_total``, ``mcu_retransmissions_total``,
  ``mcu_rtx_packets_received_total``, ``mcu_keyframe_requests_received_total`` /
  ``..._sent_total``).

With ``--compare-opus-fec`` the loss windows run twice, in a room on a server with Opus loss
protection (``opus_fec``: in-band FEC asked for, RED taken and passed on; the default) and in one
on a server started with ``MCU_OPUS_FEC=false``, so the audio concealed can be compared.

Then, with ``--outage`` > 0, a second room with two near participants: the far one's link is
cut entirely (TCP too) for ``--outage`` seconds. It prints what the near pair decoded from each
other meanwhile, and how long after the link came back each direction decoded a new frame of the
far participant's video (far receiving near, near receiving far).

Loopback and private test addresses only: the script re-executes itself in a private network
namespace holding only ``lo`` unless it already is in one, and needs root there (it makes a
namespace and a veth pair, and nftables rules; Debian package ``nftables``). Figures are
printed, never asserted on; the exit status is 2 only when the room could not be set up.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
for path in (HERE.parent, HERE):  # run as a script from anywhere
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from broadcast.netns import reexec_isolated  # noqa: E402

from tests.e2e.chromium import Page  # noqa: E402
from tests.e2e.lossy_room import (  # noqa: E402
    LossyRoom,
    inbound_audio,
    inbound_video,
    lossy_room,
)
from tests.support.impair import impair_available  # noqa: E402

Stats = dict[str, Any]

VIDEO_FIELDS = ("framesDecoded", "freezeCount", "totalFreezesDuration", "nackCount", "pliCount")
AUDIO_FIELDS = ("concealedSamples", "totalSamplesReceived")

# How often the recovery after an outage is sampled (each sample is a getStats over CDP).
RECOVERY_POLL_S = 0.1
RECOVERY_LIMIT_S = 60.0


async def snapshot(page: Page, sender: str) -> dict[str, float]:
    """The counters of `page`'s inbound video and audio from `sender`."""
    stats: Stats = await page.evaluate("window.mcu.stats()")
    video = inbound_video(stats, sender)
    audio = inbound_audio(stats, sender)
    values = {f"video.{name}": float(video.get(name, 0)) for name in VIDEO_FIELDS}
    values |= {f"audio.{name}": float(audio.get(name, 0)) for name in AUDIO_FIELDS}
    values["state.joined"] = float(stats.get("state") == "joined")
    return values


def delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before.get(name, 0.0) for name in after}


def direction_line(label: str, change: dict[str, float], seconds: float) -> str:
    samples = change["audio.totalSamplesReceived"]
    concealed = change["audio.concealedSamples"] / samples if samples > 0 else float("nan")
    return (
        f"  {label:<22} frames {change['video.framesDecoded']:6.0f}"
        f" ({change['video.framesDecoded'] / seconds:4.1f}/s)"
        f"  freezes {change['video.freezeCount']:3.0f}"
        f" ({change['video.totalFreezesDuration']:5.2f} s)"
        f"  audio concealed {concealed:6.2%}"
        f"  NACK {change['video.nackCount']:4.0f}  PLI {change['video.pliCount']:3.0f}"
    )


async def measure_loss(room: LossyRoom, percent: int, seconds: float) -> None:
    near = room.near[0]
    await room.link.set_loss(percent)
    before_far = await snapshot(room.far, room.near_ids[0])
    before_near = await snapshot(near, room.far_id)
    before_server = await room.server_counters()
    started = time.monotonic()
    await asyncio.sleep(seconds)
    after_far = await snapshot(room.far, room.near_ids[0])
    after_near = await snapshot(near, room.far_id)
    after_server = await room.server_counters()
    elapsed = time.monotonic() - started
    await room.link.set_loss(0)
    server = delta(before_server, after_server)
    print(f"{percent} % loss each way, {elapsed:.1f} s:")
    print(direction_line("far receives (down)", delta(before_far, after_far), elapsed))
    print(direction_line("near receives (up)", delta(before_near, after_near), elapsed))
    print(
        "  server: NACKs in {:.0f}, resent {:.0f}, RTX from publishers {:.0f},"
        " PLI/FIR in {:.0f}, PLI out {:.0f}".format(*server.values())
    )
    joined = after_far["state.joined"] and after_near["state.joined"]
    print(f"  session: {'joined' if joined else 'LOST'}")


async def first_new_frame(page: Page, sender: str, limit: float) -> float | None:
    """Seconds until `page` decodes a frame of `sender` newer than now, or None within `limit`."""
    started = time.monotonic()
    frames = (await snapshot(page, sender))["video.framesDecoded"]
    while time.monotonic() - started < limit:
        if (await snapshot(page, sender))["video.framesDecoded"] > frames:
            return time.monotonic() - started
        await asyncio.sleep(RECOVERY_POLL_S)
    return None


async def frames_stalled(page: Page, sender: str, limit: float) -> None:
    """Wait (at most `limit` s) until `page` stops decoding `sender`'s video (the cut is felt)."""
    started = time.monotonic()
    frames = (await snapshot(page, sender))["video.framesDecoded"]
    while time.monotonic() - started < limit:
        await asyncio.sleep(0.5)
        now = (await snapshot(page, sender))["video.framesDecoded"]
        if now == frames:
            return
        frames = now


async def measure_outage(room: LossyRoom, seconds: float) -> None:
    near, other = room.near
    near_id, other_id = room.near_ids
    before_pair = (await snapshot(near, other_id), await snapshot(other, near_id))
    await room.link.cut()
    started = time.monotonic()
    await asyncio.sleep(seconds)
    after_pair = (await snapshot(near, other_id), await snapshot(other, near_id))
    # The outage began when the link was cut, whenever the receivers noticed.
    recovery = asyncio.gather(
        first_new_frame(room.far, near_id, RECOVERY_LIMIT_S),
        first_new_frame(near, room.far_id, RECOVERY_LIMIT_S),
    )
    await room.link.restore()
    restored = time.monotonic()
    far_back, near_back = await recovery
    outage = restored - started
    print(f"{outage:.1f} s outage of the far participant (every packet dropped, both ways):")
    for label, before, after in (
        ("near 1 receives near 2", before_pair[0], after_pair[0]),
        ("near 2 receives near 1", before_pair[1], after_pair[1]),
    ):
        print(direction_line(label, delta(before, after), seconds))

    def back(value: float | None) -> str:
        return f"{value:.2f} s" if value is not None else f"not within {RECOVERY_LIMIT_S:.0f} s"

    print(f"  far decodes near 1 again after the link is back: {back(far_back)}")
    print(f"  near 1 decodes far again after the link is back: {back(near_back)}")
    joined = [await page.evaluate("window.mcu.state") == "joined" for page in room.pages]
    print(f"  session: {'everyone joined' if all(joined) else f'LOST ({joined})'}")


async def run(args: argparse.Namespace) -> int:
    losses = [int(value) for value in args.loss.split(",") if value.strip()]
    with tempfile.TemporaryDirectory(prefix="bench-loss-") as work:
        for opus_fec in (True, False) if args.compare_opus_fec else (None,):
            if not losses:
                break
            if opus_fec is not None:
                # Read by the server process lossy_room starts (docs/configuration.md).
                os.environ["MCU_OPUS_FEC"] = "true" if opus_fec else "false"
                print(f"-- opus_fec {'on (FEC and RED)' if opus_fec else 'off'}")
            try:
                async with lossy_room(Path(work) / f"loss-{opus_fec}", near=1) as room:
                    for percent in losses:
                        await measure_loss(room, percent, args.seconds)
                        await asyncio.sleep(args.settle)
            finally:
                os.environ.pop("MCU_OPUS_FEC", None)
        if args.outage > 0:
            async with lossy_room(Path(work) / "outage", near=2, link_index=2) as room:
                await measure_outage(room, args.outage)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--loss", default="0,5,20", help="loss percentages, comma-separated")
    parser.add_argument("--seconds", type=float, default=20.0, help="window per loss setting")
    parser.add_argument("--settle", type=float, default=5.0, help="clean link between windows")
    parser.add_argument("--outage", type=float, default=10.0, help="outage length (0: none)")
    parser.add_argument(
        "--compare-opus-fec",
        action="store_true",
        help="run the loss windows with Opus FEC and RED on (the default), then off",
    )
    args = parser.parse_args()
    why = reexec_isolated(__file__, sys.argv[1:])
    if why is not None:
        print(f"note: {why}", file=sys.stderr)
    if (reason := impair_available()) is not None:
        print(f"cannot impair links here: {reason}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(run(args))
    except AssertionError as exc:
        print(f"setup failed: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
