"""Composite layouts: tiles inside the canvas, never overlapping, even, 16:9, paged."""

from __future__ import annotations

import itertools

import pytest

from mcu.mixer.layout import (
    SPEAKER_STRIP,
    LayoutInput,
    LayoutKind,
    Tile,
    compute_layout,
    page_count,
)

SIZES = [(1280, 720), (640, 360), (1920, 1080), (320, 240)]
GRID_SHAPES = {1: (1, 1), 2: (2, 1), 3: (2, 2), 4: (2, 2), 5: (3, 2), 6: (3, 2), 7: (3, 3)}
GRID_SHAPES |= {8: (3, 3), 9: (3, 3)}


def people(n: int) -> list[LayoutInput]:
    return [LayoutInput(f"p{i}", f"Person {i}") for i in range(n)]


CONTENT = LayoutInput("p0:content", "Person 0 (content)", is_content=True)


def check_geometry(tiles: list[Tile], size: tuple[int, int]) -> None:
    width, height = size
    for tile in tiles:
        assert tile.width > 0 and tile.height > 0, tile
        assert tile.x >= 0 and tile.y >= 0, tile
        assert tile.x + tile.width <= width and tile.y + tile.height <= height, tile
        assert all(v % 2 == 0 for v in (tile.x, tile.y, tile.width, tile.height)), tile
    for a, b in itertools.combinations(tiles, 2):
        apart = (
            a.x + a.width <= b.x
            or b.x + b.width <= a.x
            or a.y + a.height <= b.y
            or b.y + b.height <= a.y
        )
        assert apart, (a, b)
    ids = [t.source_id for t in tiles]
    assert len(ids) == len(set(ids))


def is_16_9(tile: Tile) -> bool:
    # Even rounding of both sides moves the ratio by at most 2 px on the short side.
    return abs(tile.width * 9 - tile.height * 16) <= 2 * 16


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("n", range(1, 13))
def test_grid_pages_are_square_grids_of_16_9_cells(n: int, size: tuple[int, int]) -> None:
    inputs = people(n)
    pages = page_count(n)
    assert pages == (1 if n <= 9 else 2)
    seen: list[str] = []
    for page in range(pages):
        tiles = compute_layout("grid", inputs, size, page=page)
        check_geometry(tiles, size)
        seen += [t.source_id for t in tiles]
        count = len(tiles)
        assert count == (min(n, 9) if page == 0 else n - 9)
        if count == 1:
            assert tiles[0] == Tile(0, 0, size[0], size[1], tiles[0].source_id, tiles[0].label)
            continue
        cols, rows = GRID_SHAPES[count]
        assert len({t.y for t in tiles}) == rows
        assert max(sum(1 for t in tiles if t.y == y) for y in {t.y for t in tiles}) == cols
        assert len({(t.width, t.height) for t in tiles}) == 1
        assert all(is_16_9(t) for t in tiles)
        # The cells use the canvas: the block fills it in width or in height (within the gaps).
        fill_w = (max(t.x + t.width for t in tiles) - min(t.x for t in tiles)) / size[0]
        fill_h = (max(t.y + t.height for t in tiles) - min(t.y for t in tiles)) / size[1]
        assert max(fill_w, fill_h) > 0.9
    assert seen == [i.source_id for i in inputs]  # every input once, in order
    assert [t.label for t in compute_layout("grid", inputs, size)][:2] == [
        i.label for i in inputs[:2]
    ]


def test_grid_paging_options() -> None:
    inputs = people(12)
    last = compute_layout("grid", inputs, (1280, 720), page=1)
    assert compute_layout("grid", inputs, (1280, 720), page=7) == last  # past the end: last page
    assert compute_layout("grid", inputs, (1280, 720), page=-1)[0].source_id == "p0"
    four = compute_layout("grid", inputs, (1280, 720), page=2, per_page=4)
    assert [t.source_id for t in four] == ["p8", "p9", "p10", "p11"]
    assert page_count(12, per_page=4) == 3
    assert page_count(0) == 1


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("n", range(1, 13))
def test_speaker_is_large_with_a_strip_below(n: int, size: tuple[int, int]) -> None:
    inputs = people(n)
    speaker = f"p{n // 2}"
    tiles = compute_layout("speaker", inputs, size, active_speaker=speaker)
    check_geometry(tiles, size)
    main, strip = tiles[0], tiles[1:]
    assert main.source_id == speaker
    assert len(strip) == min(n - 1, SPEAKER_STRIP)
    assert speaker not in {t.source_id for t in strip}
    if strip:
        assert is_16_9(main) and all(is_16_9(t) for t in strip)
        assert all(t.y >= main.y + main.height for t in strip)
        assert all(main.width > 3 * t.width for t in strip)
    else:
        assert (main.width, main.height) == size


def test_speaker_falls_back_to_first_input() -> None:
    tiles = compute_layout("speaker", people(3), (1280, 720), active_speaker="nobody")
    assert tiles[0].source_id == "p0"
    assert compute_layout("speaker", people(3), (1280, 720))[0].source_id == "p0"


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("n", range(0, 12))
def test_content_takes_most_of_the_frame(n: int, size: tuple[int, int]) -> None:
    inputs = [*people(n), CONTENT]
    speaker = f"p{n - 1}" if n else None
    tiles = compute_layout("content", inputs, size, active_speaker=speaker)
    check_geometry(tiles, size)
    content = tiles[0]
    assert content.source_id == CONTENT.source_id
    assert content.width * content.height > 0.6 * size[0] * size[1]
    if n:
        assert tiles[1].source_id == speaker  # first in the strip, top right
        assert tiles[1].x > content.x + content.width and tiles[1].y == content.y
        assert all(is_16_9(t) for t in tiles[1:])
        assert all(t.width * t.height * 8 < content.width * content.height for t in tiles[1:])
    else:
        assert (content.width, content.height) == size


def test_content_without_content_is_speaker() -> None:
    inputs = people(5)
    assert compute_layout("content", inputs, (1280, 720), active_speaker="p2") == compute_layout(
        "speaker", inputs, (1280, 720), active_speaker="p2"
    )


@pytest.mark.parametrize("kind", ["grid", "speaker"])
def test_only_the_content_layout_places_content(kind: LayoutKind) -> None:
    tiles = compute_layout(kind, [*people(3), CONTENT], (1280, 720))
    assert CONTENT.source_id not in {t.source_id for t in tiles}
    assert len(tiles) == 3
    alone = compute_layout(kind, [CONTENT], (1280, 720))
    assert [t.source_id for t in alone] == [CONTENT.source_id]


def test_no_inputs_no_tiles() -> None:
    for kind in ("grid", "speaker", "content"):
        assert compute_layout(kind, [], (1280, 720)) == []  # type: ignore[arg-type]


def test_odd_canvas_sizes_round_down_to_even() -> None:
    tiles = compute_layout("grid", people(5), (641, 361))
    check_geometry(tiles, (640, 360))
