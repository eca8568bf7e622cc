"""One composite picture from many: scale each source into its tile, straight in yuv420p.

Nothing goes through RGB: libswscale scales each decoded yuv420p picture into its tile's size
(C speed, the GIL released), numpy copies the three planes into the canvas, and names are blended
into the luma plane from small cached bitmaps. A 3x3 grid at 1280x720 costs about a millisecond.
"""

from __future__ import annotations

import functools
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import av
import numpy as np
import numpy.typing as npt
from av.video.reformatter import VideoReformatter
from PIL import Image, ImageDraw, ImageFont

from mcu.mixer.layout import Tile

Plane = npt.NDArray[np.uint8]


def rgb_to_yuv(red: int, green: int, blue: int) -> tuple[int, int, int]:
    """BT.601 limited range, what libswscale and the encoders assume for untagged frames."""
    y = 16 + (65.481 * red + 128.553 * green + 24.966 * blue) / 255
    u = 128 + (-37.797 * red - 74.203 * green + 112.0 * blue) / 255
    v = 128 + (112.0 * red - 93.786 * green - 18.214 * blue) / 255
    return round(y), round(u), round(v)


BACKGROUND = rgb_to_yuv(0, 0, 0)
"Gaps between tiles and letterbox bars."
MISSING = rgb_to_yuv(56, 56, 56)
"A tile whose source has no picture (camera off, frozen, not decoded yet): dark grey."
HIGHLIGHT = rgb_to_yuv(46, 204, 113)
"Border of the active speaker's tile."
LABEL_CACHE_SIZE = 128
"Rendered labels kept (one per distinct name and tile size)."
_TEXT_Y = 235  # white text
_BAND_DIM = 110  # the band under a label keeps 110/256 of the picture's luma and colour...
_BAND_FLOOR = 40  # ...and tends to dark grey, so it shows over black letterbox bars too


@dataclass(frozen=True)
class _Label:
    """A name, rendered once: per-pixel weights that darken the band and draw the text."""

    y_mul: npt.NDArray[np.uint32]
    y_add: npt.NDArray[np.uint32]
    c_mul: npt.NDArray[np.uint32]
    c_add: npt.NDArray[np.uint32]

    @property
    def size(self) -> tuple[int, int]:
        height, width = self.y_mul.shape
        return width, height


# Names are often Chinese: Pillow's built-in font has no CJK glyphs, so a system font that has
# them is preferred (Debian: fonts-wqy-microhei or fonts-noto-cjk; MCU_LABEL_FONT overrides).
LABEL_FONTS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
)


@functools.lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    override = os.environ.get("MCU_LABEL_FONT")
    for path in ((override,) if override else ()) + LABEL_FONTS:
        try:
            return ImageFont.truetype(path, size)
        except OSError:
            continue
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow < 10.1 or no FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _render_label(text: str, font_size: int, max_width: int) -> _Label | None:
    font = _font(font_size)
    pad = max(2, font_size // 3)
    while text:
        left, _, right, _ = font.getbbox(text)
        if right - left + 2 * pad <= max_width or len(text) <= 1:
            break
        text = text[:-2].rstrip() + "…" if len(text) > 2 else text[:-1]
    if not text:
        return None
    left, _, right, _ = font.getbbox(text)
    width = min(max_width, (int(right - left) + 2 * pad + 1) // 2 * 2)
    # The band's height depends on the size, not on the text, so names line up across tiles.
    ascent, descent = font.getmetrics() if isinstance(font, ImageFont.FreeTypeFont) else (10, 2)
    height = (ascent + descent + 2 * pad + 1) // 2 * 2
    if width < 2 or height < 2:
        return None
    image = Image.new("L", (width, height), 0)
    ImageDraw.Draw(image).text((pad - left, pad), text, fill=255, font=font)
    alpha = np.asarray(image, dtype=np.uint32)
    # out = (pixel * mul + add) >> 8: the band dims the picture, the text is blended over it.
    y_mul = (_BAND_DIM * (255 - alpha) + 127) // 255
    y_add = (_BAND_FLOOR * (256 - _BAND_DIM) * (255 - alpha) + _TEXT_Y * alpha * 256 + 127) // 255
    alpha_c = alpha.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3)).astype(np.uint32)
    c_mul = (_BAND_DIM * (255 - alpha_c) + 127) // 255
    c_add = 128 * (256 - c_mul)  # the band and the text tend to neutral grey
    return _Label(y_mul, y_add, c_mul, c_add)


def _plane(frame: av.VideoFrame, index: int, width: int, height: int) -> Plane:
    """A zero-copy view of one plane of ``frame``, padding cut off."""
    plane = frame.planes[index]
    data: Plane = np.frombuffer(memoryview(plane), np.uint8)
    return data.reshape(-1, plane.line_size)[:height, :width]


def _fit(src_width: int, src_height: int, tile: Tile) -> tuple[int, int]:
    """The even size of a ``src`` picture scaled into ``tile`` without stretching it."""
    scale = min(tile.width / src_width, tile.height / src_height)
    width = min(tile.width, max(2, int(src_width * scale + 0.5) // 2 * 2))
    height = min(tile.height, max(2, int(src_height * scale + 0.5) // 2 * 2))
    return width, height


class Compositor:
    """Composes tiles into one yuv420p picture of a fixed size, reusing its canvas between calls.

    Not thread-safe: one ``compose`` at a time per instance (one instance per composite stream).
    ``compose`` releases the GIL for scaling and large copies, so it may run in an executor.
    """

    def __init__(self, width: int, height: int) -> None:
        if width % 2 or height % 2 or width <= 0 or height <= 0:
            raise ValueError(f"canvas must have even, positive dimensions: {width}x{height}")
        self.width = width
        self.height = height
        self._y: Plane = np.empty((height, width), np.uint8)
        self._u: Plane = np.empty((height // 2, width // 2), np.uint8)
        self._v: Plane = np.empty((height // 2, width // 2), np.uint8)
        self._last_tiles: tuple[Tile, ...] | None = None
        self._scalers: dict[str, VideoReformatter] = {}
        self._labels: OrderedDict[tuple[str, int, int], _Label | None] = OrderedDict()

    def compose(
        self,
        tiles: Sequence[Tile],
        frames: Mapping[str, av.VideoFrame | None],
        *,
        highlight: str | None = None,
    ) -> av.VideoFrame:
        """Draw ``tiles`` with the pictures in ``frames`` (by source id) into a new frame.

        A source that is missing from ``frames`` or None is drawn as a grey tile with its name.
        The tile of ``highlight`` (the active speaker) gets a border when there is more than one.
        """
        tiles = tuple(tiles)
        if tiles != self._last_tiles:
            # Gaps and margins only change with the layout; tiles are fully redrawn every time.
            self._fill(0, 0, self.width, self.height, BACKGROUND)
            self._last_tiles = tiles
            self._forget_scalers(tiles)
        for tile in tiles:
            self._draw_picture(tile, frames.get(tile.source_id))
            if highlight is not None and tile.source_id == highlight and len(tiles) > 1:
                self._draw_border(tile)
            if tile.label:
                self._draw_label(tile)
        return self._output()

    # -- drawing -----------------------------------------------------------------------------

    def _fill(self, x: int, y: int, width: int, height: int, colour: tuple[int, int, int]) -> None:
        self._y[y : y + height, x : x + width] = colour[0]
        cx, cy, cw, ch = x // 2, y // 2, width // 2, height // 2
        self._u[cy : cy + ch, cx : cx + cw] = colour[1]
        self._v[cy : cy + ch, cx : cx + cw] = colour[2]

    def _draw_picture(self, tile: Tile, frame: av.VideoFrame | None) -> None:
        if frame is None or frame.width < 2 or frame.height < 2:
            self._fill(tile.x, tile.y, tile.width, tile.height, MISSING)
            return
        width, height = _fit(frame.width, frame.height, tile)
        if (frame.width, frame.height) != (width, height) or frame.format.name != "yuv420p":
            scaler = self._scalers.get(tile.source_id)
            if scaler is None:
                scaler = self._scalers[tile.source_id] = VideoReformatter()
            frame = scaler.reformat(frame, width, height, "yuv420p")
        x = tile.x + (tile.width - width) // 4 * 2
        y = tile.y + (tile.height - height) // 4 * 2
        if (width, height) != (tile.width, tile.height):
            self._fill(tile.x, tile.y, tile.width, tile.height, BACKGROUND)  # letterbox bars
        self._y[y : y + height, x : x + width] = _plane(frame, 0, width, height)
        cx, cy, cw, ch = x // 2, y // 2, width // 2, height // 2
        self._u[cy : cy + ch, cx : cx + cw] = _plane(frame, 1, cw, ch)
        self._v[cy : cy + ch, cx : cx + cw] = _plane(frame, 2, cw, ch)

    def _draw_border(self, tile: Tile) -> None:
        t = max(2, min(6, min(tile.width, tile.height) // 50 // 2 * 2))
        x, y, w, h = tile.x, tile.y, tile.width, tile.height
        self._fill(x, y, w, t, HIGHLIGHT)
        self._fill(x, y + h - t, w, t, HIGHLIGHT)
        self._fill(x, y, t, h, HIGHLIGHT)
        self._fill(x + w - t, y, t, h, HIGHLIGHT)

    def _draw_label(self, tile: Tile) -> None:
        margin = max(2, tile.height // 40 // 2 * 2)
        font_size = min(26, max(11, round(tile.height * 0.08)))
        label = self._label(tile.label, font_size, tile.width - 2 * margin)
        if label is None:
            return
        width, height = label.size
        if height > tile.height - 2 * margin:
            return
        x, y = tile.x + margin, tile.y + tile.height - margin - height
        region = self._y[y : y + height, x : x + width]
        region[...] = (region * label.y_mul + label.y_add) >> 8
        cx, cy, cw, ch = x // 2, y // 2, width // 2, height // 2
        for chroma in (self._u, self._v):
            region = chroma[cy : cy + ch, cx : cx + cw]
            region[...] = (region * label.c_mul + label.c_add) >> 8

    def _label(self, text: str, font_size: int, max_width: int) -> _Label | None:
        key = (text, font_size, max_width)
        try:
            self._labels.move_to_end(key)
            return self._labels[key]
        except KeyError:
            pass
        label = self._labels[key] = _render_label(text, font_size, max_width)
        if len(self._labels) > LABEL_CACHE_SIZE:
            self._labels.popitem(last=False)
        return label

    def _forget_scalers(self, tiles: Sequence[Tile]) -> None:
        shown = {tile.source_id for tile in tiles}
        for source_id in [s for s in self._scalers if s not in shown]:
            del self._scalers[source_id]

    def _output(self) -> av.VideoFrame:
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        _plane(frame, 0, self.width, self.height)[...] = self._y
        _plane(frame, 1, self.width // 2, self.height // 2)[...] = self._u
        _plane(frame, 2, self.width // 2, self.height // 2)[...] = self._v
        return frame
