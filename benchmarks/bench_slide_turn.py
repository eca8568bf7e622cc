"""Page turn to picture: how long a subscriber waits to see the next slide.

    .venv/bin/python benchmarks/bench_slide_turn.py            # --turns 10 --pause 2
    .venv/bin/python benchmarks/bench_slide_turn.py --viewer chromium --turns 6

Starts the real server (``python -m mcu --workers 1``) on 127.0.0.1, creates a room, and joins a
presenter (an aiortc participant over the real protocol), who uploads a two-page PDF (a dark page
and a light page, each with a title and text) and shows page 1, and a viewer that decodes the
slide track: an aiortc participant (``--viewer aiortc``, the default) or a headless Chromium tab
running the web client (``--viewer chromium``). Then the presenter turns the page ``--turns``
times, every ``--pause`` seconds (longer than the slide track's one-second refresh, so each turn
starts from an idle slide). For each turn it prints, from the moment the presenter's ``page``
message is sent:

- **event** — the viewer receives the ``slides`` broadcast (the page is rendered and handed to
  the slide track; the keyframe is being encoded);
- **picture** — the aiortc viewer's ``track.recv()`` returns the first frame whose centre has the
  new page's brightness; in Chromium, the content ``<video>`` presents such a frame
  (``requestVideoFrameCallback``'s ``presentationTime``, sampled through a canvas; the page's
  clock and this process's are both the machine's wall clock).

Then the median and the maximum over the turns. aiortc's jitter buffer hands a frame to the
decoder only when a packet of the *next* frame arrives, so there ``picture`` includes the wait
for the frame the server sends after the new page's keyframe. Loopback only: the script
re-executes itself in a private network namespace holding only ``lo`` (``unshare -n`` as root,
else ``unshare -rn``) unless it already is in one. Figures are printed, never asserted on; the
exit status is 2 only when the server, the room or the viewer could not be set up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
for path in (HERE.parent, HERE):  # run as a script from anywhere
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import av  # noqa: E402
from broadcast.netns import reexec_isolated  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from mcu.sfu import ice  # noqa: E402
from tests.e2e.chromium import Chromium, ChromiumError, Page  # noqa: E402
from tests.e2e.room_page import with_name  # noqa: E402
from tests.support.room_client import ReceivedTrack, RoomClient, joined_client  # noqa: E402
from tests.support.server import ServerProcess  # noqa: E402

ROOM, PASSWORD = "slides-bench", "bench-password"
PAGE_LUMA = (40, 215)
"Brightness (Y, 0-255) of the two pages' backgrounds: a turn is seen when the centre flips."
TURN_TIMEOUT = 10.0
"Seconds a turn may take before it is reported as not seen (still well bounded)."
SETUP_TIMEOUT = 30.0
"Seconds for the viewer to join and show page 1."


@dataclass
class Turn:
    """One page turn: seconds after the page message was sent, None where not seen in time."""

    event: float | None
    "The viewer got the ``slides`` broadcast."
    picture: float | None
    "The viewer decoded (aiortc) or presented (Chromium) the new page."
    received: float | None = None
    "Chromium only: the last packet of that frame arrived (``receiveTime``)."


# In the Chromium viewer: note every change of brightness the content <video> presents, and
# every change of the page the client was told about, on the machine's wall clock (ms).
CHROMIUM_PROBE = """(() => {
  const video = document.querySelector('#content video');
  const canvas = document.createElement('canvas');
  canvas.width = 64;
  canvas.height = 36;
  const context = canvas.getContext('2d', {willReadFrequently: true});
  const probe = {pictures: [], pages: [], page: window.mcu.slides.page, bright: null};
  window.slideProbe = probe;
  const onFrame = (now, metadata) => {
    context.drawImage(video, 0, 0, 64, 36);
    const bright = context.getImageData(48, 18, 1, 1).data[0] > 128;
    if (bright !== probe.bright) {
      probe.bright = bright;
      probe.pictures.push({
        at: performance.timeOrigin + metadata.presentationTime,
        received: metadata.receiveTime === undefined
          ? null : performance.timeOrigin + metadata.receiveTime,
        bright,
      });
    }
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
  setInterval(() => {
    const page = window.mcu.slides.page;
    if (page !== probe.page) {
      probe.page = page;
      probe.pages.push({at: performance.timeOrigin + performance.now(), page});
    }
  }, 5);
  return true;
})()"""


def two_page_pdf() -> bytes:
    """A 16:9 two-page PDF: a dark page and a light page, each with a title and lines of text."""
    pages = []
    for number, luma in enumerate(PAGE_LUMA, start=1):
        image = Image.new("RGB", (1600, 900), (luma, luma, luma))
        draw = ImageDraw.Draw(image)
        ink = (255, 255, 255) if luma < 128 else (0, 0, 0)
        font = ImageFont.load_default(size=28)
        draw.text((60, 40), f"Ward round, slide {number}", fill=ink, font=font)
        for line in range(12):
            draw.text((60, 120 + 40 * line), f"{line:02d} Hb 13.{line} g/dL", fill=ink, font=font)
        pages.append(image)
    out = io.BytesIO()
    pages[0].save(out, "PDF", save_all=True, append_images=pages[1:], resolution=100)
    return out.getvalue()


def centre_luma(frame: av.VideoFrame) -> int:
    """The Y value at the middle of the right half (background, away from the text)."""
    plane = frame.planes[0]
    x, y = frame.width * 3 // 4, frame.height // 2
    return memoryview(plane)[y * plane.line_size + x]


def first_showing(track: ReceivedTrack, luma: int, since: float) -> float | None:
    """When the viewer first decoded a picture of brightness ``luma`` after ``since``, or None."""
    for picture in track.pictures:
        if picture.decoded_at >= since and abs(centre_luma(picture.frame) - luma) < 40:
            return picture.decoded_at
    return None


async def upload(server: ServerProcess, client: RoomClient, data: bytes) -> dict[str, Any]:
    joined = next(m for m in client.messages if m["type"] == "joined")
    async with server.http.post(
        f"{server.base_url}/rooms/{ROOM}/documents",
        data=data,
        headers={"Authorization": f"Bearer {joined['session_token']}"},
    ) as response:
        body: dict[str, Any] = await response.json()
        if response.status != 201:
            raise RuntimeError(f"upload refused: {response.status} {body}")
        return body


async def turn_page(
    presenter: RoomClient, viewer: RoomClient, track: ReceivedTrack, page: int
) -> Turn:
    """Turn to ``page`` with an aiortc viewer."""
    luma = PAGE_LUMA[page - 1]
    seen_messages = len(viewer.messages)
    started = time.monotonic()
    await presenter.send({"type": "slides", "action": "page", "page": page})
    event: float | None = None

    def shown() -> bool:
        nonlocal event
        if event is None and any(
            m["type"] == "slides" and m.get("page") == page for m in viewer.messages[seen_messages:]
        ):
            event = time.monotonic() - started
        return event is not None and first_showing(track, luma, started) is not None

    with contextlib.suppress(TimeoutError):
        await viewer.wait_until(shown, timeout=TURN_TIMEOUT)
    decoded = first_showing(track, luma, started)
    return Turn(event, None if decoded is None else decoded - started)


async def turn_page_in_chromium(presenter: RoomClient, tab: Page, page: int) -> Turn:
    """Turn to ``page`` with a Chromium viewer (its probe installed)."""
    bright = PAGE_LUMA[page - 1] > 128
    started = time.time() * 1000
    await presenter.send({"type": "slides", "action": "page", "page": page})
    deadline = time.monotonic() + TURN_TIMEOUT
    event = picture = None
    while time.monotonic() < deadline and picture is None:
        await asyncio.sleep(0.05)  # the probe has the precise times; this only collects them
        probe = await tab.evaluate("window.slideProbe")
        event = next((e["at"] for e in probe["pages"] if e["at"] >= started), None)
        picture = next(
            (p for p in probe["pictures"] if p["at"] >= started and p["bright"] == bright), None
        )

    def since(at: float | None) -> float | None:
        return None if at is None else (at - started) / 1000

    if picture is None:
        return Turn(since(event), None)
    return Turn(since(event), since(picture["at"]), since(picture["received"]))


async def measure(turns: int, pause: float, viewer_kind: str) -> list[Turn]:
    """(event, picture) after each page turn."""
    with tempfile.TemporaryDirectory(prefix="bench-slide-turn-") as work:
        server = ServerProcess(Path(work) / "server", extra_args=["--log-level", "warning"])
        await server.start()
        presenter = None
        try:
            await server.create_room(ROOM, PASSWORD)
            presenter = await joined_client(server, "Presenter", room=ROOM, password=PASSWORD)
            document = await upload(server, presenter, two_page_pdf())
            show: dict[str, Any] = {"type": "slides", "action": "show", "page": 1}
            show["document_id"] = document["document_id"]
            if viewer_kind == "chromium":
                return await measure_chromium(server, presenter, show, turns, pause)
            return await measure_aiortc(server, presenter, show, turns, pause)
        finally:
            if presenter is not None:
                await presenter.close()
            await server.stop()


async def measure_aiortc(
    server: ServerProcess, presenter: RoomClient, show: dict[str, Any], turns: int, pause: float
) -> list[Turn]:
    viewer = await joined_client(server, "Viewer", room=ROOM, password=PASSWORD)
    try:
        await presenter.send(show)
        shown = await viewer.wait_for(lambda m: m["type"] == "slides" and m.get("presenter"))
        track_id = shown["track_id"]
        await viewer.wait_until(
            lambda: (
                track_id in viewer.received
                and first_showing(viewer.received[track_id], PAGE_LUMA[0], 0) is not None
            ),
            timeout=SETUP_TIMEOUT,
        )
        track = viewer.received[track_id]
        results: list[Turn] = []
        for turn in range(turns):
            await asyncio.sleep(pause)
            page = 2 if turn % 2 == 0 else 1
            results.append(await turn_page(presenter, viewer, track, page))
            report(turn, page, results[-1])
        return results
    finally:
        await viewer.close()


async def measure_chromium(
    server: ServerProcess, presenter: RoomClient, show: dict[str, Any], turns: int, pause: float
) -> list[Turn]:
    async with Chromium() as browser:
        link = await server.invite(ROOM)
        tab = await browser.open(with_name(server.base_url, link, "Viewer"))
        await tab.wait_for("window.mcu?.state === 'joined'", timeout=SETUP_TIMEOUT)
        await presenter.send(show)
        await tab.wait_for(
            "document.querySelector('#content video')?.videoWidth > 0", timeout=SETUP_TIMEOUT
        )
        await tab.evaluate(CHROMIUM_PROBE)
        await tab.wait_for("window.slideProbe.bright === false", timeout=SETUP_TIMEOUT)
        results: list[Turn] = []
        for turn in range(turns):
            await asyncio.sleep(pause)
            page = 2 if turn % 2 == 0 else 1
            results.append(await turn_page_in_chromium(presenter, tab, page))
            report(turn, page, results[-1])
        return results


def seconds_ms(value: float | None) -> str:
    return "not seen" if value is None else f"{1000 * value:6.0f} ms"


def report(turn: int, page: int, result: Turn) -> None:
    received = "" if result.received is None else f" (received {seconds_ms(result.received)})"
    print(
        f"turn {turn + 1:2d} to page {page}: event {seconds_ms(result.event)}, "
        f"picture {seconds_ms(result.picture)}{received}",
        flush=True,
    )


def summary(values: list[float]) -> str:
    if not values:
        return "none seen"
    return f"median {1000 * statistics.median(values):.0f} ms, max {1000 * max(values):.0f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=10, help="page turns to measure")
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between page turns")
    parser.add_argument(
        "--viewer", choices=("aiortc", "chromium"), default="aiortc", help="who decodes the slides"
    )
    parser.add_argument("--json", type=Path, help="also write every turn's figures here")
    args = parser.parse_args()
    if args.turns < 1 or args.pause < 0:
        parser.error("--turns must be at least 1 and --pause not negative")
    why = reexec_isolated(__file__, sys.argv[1:])
    if why is not None:
        print(f"(on the host network: {why})")
    ice.install(ice.IcePolicy(addresses=("127.0.0.1",)))
    try:
        results = asyncio.run(measure(args.turns, args.pause, args.viewer))
    except (RuntimeError, TimeoutError, OSError, ChromiumError) as exc:
        print(f"could not set up the room or the viewer: {exc}", file=sys.stderr)
        sys.exit(2)
    events = [t.event for t in results if t.event is not None]
    pictures = [t.picture for t in results if t.picture is not None]
    print(f"\n{len(results)} page turns, {len(pictures)} seen by the {args.viewer} viewer")
    print(f"  page turn -> slides event:      {summary(events)}")
    print(f"  page turn -> decoded picture:   {summary(pictures)}")
    if args.json:
        turns = [asdict(t) for t in results]
        figures = {"viewer": args.viewer, "pause": args.pause, "turns": turns}
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
