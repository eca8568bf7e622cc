"""The compositor, checked by pixels: solid-colour sources land in their tiles, letterboxed,
missing ones grey, names and the speaker's border drawn."""

from __future__ import annotations

import av
import numpy as np
import numpy.typing as npt
import pytest

from mcu.mixer import compositor
from mcu.mixer.compositor import Compositor, rgb_to_yuv
from mcu.mixer.layout import LayoutInput, Tile, compute_layout

RED, GREEN, BLUE, NAVY = (220, 40, 40), (40, 200, 40), (40, 40, 220), (20, 20, 90)
Image = npt.NDArray[np.uint8]


def solid(colour: tuple[int, int, int], width: int = 320, height: int = 180) -> av.VideoFrame:
    rgb = np.empty((height, width, 3), np.uint8)
    rgb[...] = colour
    return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")


def rgb(frame: av.VideoFrame) -> Image:
    return np.asarray(frame.to_ndarray(format="rgb24"), np.uint8)


def near(pixel: Image, colour: tuple[int, int, int], tolerance: int = 10) -> bool:
    return bool(np.abs(pixel.astype(int) - colour).max() <= tolerance)


def centre(tile: Tile) -> tuple[int, int]:
    return tile.y + tile.height // 3, tile.x + tile.width // 2  # above the label


def grid(names: list[str], size: tuple[int, int] = (640, 360)) -> list[Tile]:
    return compute_layout("grid", [LayoutInput(n, n) for n in names], size)


def test_each_tile_shows_its_source_and_missing_sources_are_grey() -> None:
    tiles = grid(["red", "green", "blue", "gone", "absent"])
    frames = {"red": solid(RED), "green": solid(GREEN), "blue": solid(BLUE), "gone": None}
    out = Compositor(640, 360).compose(tiles, frames)
    assert (out.width, out.height, out.format.name) == (640, 360, "yuv420p")
    image = rgb(out)
    expected = {"red": RED, "green": GREEN, "blue": BLUE}
    for tile in tiles:
        pixel = image[centre(tile)]
        if tile.source_id in expected:
            assert near(pixel, expected[tile.source_id]), (tile.source_id, pixel)
        else:
            assert np.ptp(pixel.astype(int)) <= 6 and 30 <= pixel[0] <= 90, pixel  # dark grey
    assert near(image[1, 1], (0, 0, 0), 4)  # gaps are black


@pytest.mark.parametrize(
    ("source", "bars"),
    [((240, 180), "sides"), ((180, 320), "sides"), ((640, 180), "top and bottom")],
)
def test_sources_are_letterboxed_never_stretched(source: tuple[int, int], bars: str) -> None:
    tile = Tile(0, 0, 640, 360, "a", "")
    image = rgb(Compositor(640, 360).compose([tile], {"a": solid(RED, *source)}))
    scale = min(640 / source[0], 360 / source[1])
    width, height = source[0] * scale, source[1] * scale
    assert near(image[180, 320], RED)
    if bars == "sides":
        bar = int((640 - width) / 2)
        assert near(image[180, bar // 2], (0, 0, 0), 4)
        assert near(image[180, 640 - bar // 2], (0, 0, 0), 4)
        assert near(image[180, bar + 4], RED) and near(image[180, 640 - bar - 5], RED)
        assert near(image[2, 320], RED) and near(image[357, 320], RED)
    else:
        bar = int((360 - height) / 2)
        assert near(image[bar // 2, 320], (0, 0, 0), 4)
        assert near(image[360 - bar // 2, 320], (0, 0, 0), 4)
        assert near(image[bar + 4, 320], RED) and near(image[2 + 180, 2], RED)


def test_labels_are_drawn_bottom_left_on_a_dark_band() -> None:
    tiles = [Tile(0, 0, 320, 180, "a", "Dr Ana Souza"), Tile(320, 0, 320, 180, "b", "")]
    frames = {"a": solid(NAVY), "b": solid(NAVY)}
    out = Compositor(640, 360).compose(tiles, frames)
    luma = out.to_ndarray()[:360]
    labelled, plain = luma[120:180, 0:160], luma[120:180, 320:480]
    assert (labelled > 200).sum() > 50  # white text
    assert (plain > 200).sum() == 0
    navy_y = rgb_to_yuv(*NAVY)[0]
    assert np.abs(plain.astype(int) - navy_y).max() <= 2
    assert (luma[0:100, 0:320] > 200).sum() == 0  # only the bottom of the tile
    assert np.abs(luma[60, 160].astype(int) - navy_y) <= 2


def test_long_labels_are_cut_to_the_tile_and_the_cache_is_bounded() -> None:
    comp = Compositor(640, 360)
    tile = Tile(0, 0, 160, 90, "a", "Professor Maximilian Alexander von Hohenberg-Schwarzenau")
    luma = comp.compose([tile], {"a": solid(NAVY)}).to_ndarray()[:360]
    assert (luma[:, 160:] > 200).sum() == 0
    assert (luma[:90, :160] > 200).sum() > 20
    for i in range(compositor.LABEL_CACHE_SIZE + 20):
        comp.compose([Tile(0, 0, 160, 90, "a", f"Guest {i}")], {"a": None})
    assert len(comp._labels) <= compositor.LABEL_CACHE_SIZE


def test_the_active_speaker_gets_a_border() -> None:
    tiles = grid(["red", "green"])
    frames = {"red": solid(RED), "green": solid(GREEN)}
    comp = Compositor(640, 360)
    border = compositor.HIGHLIGHT
    highlighted = comp.compose(tiles, frames, highlight="green").to_ndarray()
    plain = comp.compose(tiles, frames).to_ndarray()
    red, green = tiles
    mid_y = green.y + green.height // 2
    assert abs(int(highlighted[mid_y, green.x]) - border[0]) <= 1
    assert abs(int(highlighted[mid_y, red.x]) - rgb_to_yuv(*RED)[0]) <= 2
    assert abs(int(plain[mid_y, green.x]) - rgb_to_yuv(*GREEN)[0]) <= 2
    alone = comp.compose(tiles[:1], frames, highlight="red").to_ndarray()
    assert abs(int(alone[mid_y, red.x]) - rgb_to_yuv(*RED)[0]) <= 2  # nothing to point out


def test_frames_are_fresh_and_the_canvas_is_cleared_when_the_layout_changes() -> None:
    comp = Compositor(640, 360)
    four = grid(["a", "b", "c", "d"])
    first = comp.compose(four, {k: solid(RED) for k in "abcd"})
    first_pixels = rgb(first).copy()
    two = grid(["a", "b"])
    second = comp.compose(two, {"a": solid(GREEN), "b": solid(GREEN)})
    assert np.array_equal(rgb(first), first_pixels)  # not overwritten by the next compose
    image = rgb(second)
    assert near(image[four[0].y + 4, four[0].x + 4], (0, 0, 0), 4)  # old tile area now background
    assert near(image[centre(two[0])], GREEN)


def test_any_source_format_and_size() -> None:
    rgb_frame = av.VideoFrame.from_ndarray(np.full((90, 160, 3), BLUE, np.uint8), format="rgb24")
    exact = solid(GREEN, 320, 180)
    tiles = [Tile(0, 0, 320, 180, "rgb", ""), Tile(320, 180, 320, 180, "exact", "")]
    image = rgb(Compositor(640, 360).compose(tiles, {"rgb": rgb_frame, "exact": exact}))
    assert near(image[90, 160], BLUE) and near(image[270, 480], GREEN)


def test_canvas_must_be_even() -> None:
    with pytest.raises(ValueError, match="even"):
        Compositor(641, 360)


def test_chinese_names_are_drawn_with_real_glyphs() -> None:
    """Two different Chinese characters must not render as the same missing-glyph box.

    Needs a CJK font (.ci/run installs fonts-wqy-microhei; see LABEL_FONTS).
    """
    from mcu.mixer.compositor import _render_label

    county, li = _render_label("县", 24, 400), _render_label("李", 24, 400)
    assert county is not None and li is not None
    assert county.y_add.shape == li.y_add.shape
    assert not np.array_equal(county.y_add, li.y_add)
