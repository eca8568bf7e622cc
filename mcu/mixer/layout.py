"""Where each participant goes in a composite picture: pure geometry, no pixels.

Every coordinate and size is even so a tile maps onto whole 2x2 chroma blocks of a yuv420p canvas.
Camera tiles keep 16:9 cells (the compositor letterboxes whatever aspect a source really has);
a lone input and shared content take the space they are given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

LayoutKind = Literal["grid", "speaker", "content"]

GRID_MAX_PER_PAGE = 9
"The grid's default page: 3x3."
SPEAKER_STRIP = 6
"Thumbnails under the speaker; the strip always has this many slots so they keep their size."
CONTENT_STRIP_FRACTION = 0.2
"Width of the participants' column beside shared content, as a fraction of the canvas."
_ASPECT = 16 / 9


@dataclass(frozen=True)
class Tile:
    """One rectangle of the canvas and whose picture goes there."""

    x: int
    "Left edge in pixels (even)."
    y: int
    "Top edge in pixels (even)."
    width: int
    "Width in pixels (even)."
    height: int
    "Height in pixels (even)."
    source_id: str
    "The :class:`LayoutInput` shown here; the compositor looks its picture up by this key."
    label: str
    "Text drawn bottom-left (the participant's name); empty for none."


@dataclass(frozen=True)
class LayoutInput:
    """One picture the layout may place: a participant's camera (or name tile) or shared content."""

    source_id: str
    "Key of the picture (a participant id, or the content track's key)."
    label: str
    "What the tile is labelled with."
    is_content: bool = False
    "Shared screen or slides: placed large by the ``content`` layout, left out of the others."


def compute_layout(
    kind: LayoutKind,
    inputs: Sequence[LayoutInput],
    size: tuple[int, int],
    *,
    active_speaker: str | None = None,
    page: int = 0,
    per_page: int = GRID_MAX_PER_PAGE,
) -> list[Tile]:
    """The tiles of one composite picture of ``size`` (width, height), in drawing order.

    - ``grid``: ``per_page`` inputs per page in the most square grid (1 → the whole canvas,
      2 → side by side, 3-4 → 2x2, 5-6 → 3x2, 7-9 → 3x3), a short last row centred. ``page``
      past the end shows the last page, so a receiver whose page emptied still sees someone.
    - ``speaker``: ``active_speaker`` (or the first input) large, up to six others in a strip below.
    - ``content``: the first content input fills most of the canvas, the speaker and then others in
      a column on the right; without content it is ``speaker``.

    ``grid`` and ``speaker`` leave content inputs out unless nothing else is there. The order of
    ``inputs`` is kept (the caller sorts them, e.g. by name).
    """
    width, height = _even(size[0]), _even(size[1])
    if width < 2 or height < 2:
        raise ValueError(f"canvas too small: {size}")
    cameras = [i for i in inputs if not i.is_content]
    contents = [i for i in inputs if i.is_content]
    if kind == "content" and contents:
        return _content(contents[0], cameras, width, height, active_speaker)
    shown = cameras or contents
    if not shown:
        return []
    if kind == "grid":
        pages = page_count(len(shown), per_page)
        first = min(max(page, 0), pages - 1) * max(per_page, 1)
        return _grid(shown[first : first + max(per_page, 1)], width, height)
    if kind in ("speaker", "content"):
        return _speaker(shown, width, height, active_speaker)
    raise ValueError(f"unknown layout {kind!r}")


def page_count(n_inputs: int, per_page: int = GRID_MAX_PER_PAGE) -> int:
    """How many grid pages ``n_inputs`` camera inputs fill (at least 1)."""
    return max(1, math.ceil(n_inputs / max(per_page, 1)))


def _even(value: float) -> int:
    return int(value) // 2 * 2


def _gap(height: int) -> int:
    # 8 px at 720p, 4 px at 360p: enough to separate tiles without wasting the picture.
    return max(2, _even(height / 90))


def _whole(item: LayoutInput, width: int, height: int) -> Tile:
    return Tile(0, 0, width, height, item.source_id, item.label)


def _cell(max_width: float, max_height: float) -> tuple[int, int]:
    """The largest even 16:9 cell inside ``max_width`` x ``max_height``."""
    cell_width = _even(min(max_width, max_height * _ASPECT))
    cell_height = _even(cell_width / _ASPECT)
    return max(cell_width, 2), max(cell_height, 2)


def _row(
    items: Sequence[LayoutInput], y: int, cell: tuple[int, int], gap: int, width: int
) -> list[Tile]:
    """``items`` side by side at ``y``, the row centred horizontally."""
    cell_width, cell_height = cell
    row_width = len(items) * cell_width + (len(items) - 1) * gap
    x0 = _even((width - row_width) / 2)
    return [
        Tile(x0 + i * (cell_width + gap), y, cell_width, cell_height, item.source_id, item.label)
        for i, item in enumerate(items)
    ]


def _grid(items: Sequence[LayoutInput], width: int, height: int) -> list[Tile]:
    if len(items) == 1:
        return [_whole(items[0], width, height)]
    cols = math.ceil(math.sqrt(len(items)))
    rows = math.ceil(len(items) / cols)
    gap = _gap(height)
    cell = _cell((width - (cols + 1) * gap) / cols, (height - (rows + 1) * gap) / rows)
    block_height = rows * cell[1] + (rows - 1) * gap
    y0 = _even((height - block_height) / 2)
    tiles: list[Tile] = []
    for r in range(rows):
        tiles += _row(items[r * cols : (r + 1) * cols], y0 + r * (cell[1] + gap), cell, gap, width)
    return tiles


def _pick_speaker(items: Sequence[LayoutInput], active_speaker: str | None) -> int:
    for i, item in enumerate(items):
        if item.source_id == active_speaker:
            return i
    return 0


def _speaker(
    items: Sequence[LayoutInput], width: int, height: int, active_speaker: str | None
) -> list[Tile]:
    main_index = _pick_speaker(items, active_speaker)
    main = items[main_index]
    others = [item for i, item in enumerate(items) if i != main_index][:SPEAKER_STRIP]
    if not others:
        return [_whole(main, width, height)]
    gap = _gap(height)
    thumb = _cell((width - (SPEAKER_STRIP + 1) * gap) / SPEAKER_STRIP, height)
    big = _cell(width - 2 * gap, height - thumb[1] - 3 * gap)
    y0 = _even((height - (big[1] + gap + thumb[1])) / 2)
    tiles = _row([main], y0, big, gap, width)
    return tiles + _row(others, y0 + big[1] + gap, thumb, gap, width)


def _content(
    content: LayoutInput,
    cameras: Sequence[LayoutInput],
    width: int,
    height: int,
    active_speaker: str | None,
) -> list[Tile]:
    if not cameras:
        return [_whole(content, width, height)]
    gap = _gap(height)
    thumb = _cell(_even(width * CONTENT_STRIP_FRACTION), height - 2 * gap)
    slots = max(1, (height - gap) // (thumb[1] + gap))
    speaker_index = _pick_speaker(cameras, active_speaker)
    strip = [cameras[speaker_index]]
    strip += [c for i, c in enumerate(cameras) if i != speaker_index][: slots - 1]
    # Content keeps the whole remaining area: screens and slides come in any aspect.
    content_width = max(2, _even(width - thumb[0] - 3 * gap))
    tiles = [Tile(gap, gap, content_width, height - 2 * gap, content.source_id, content.label)]
    x = width - gap - thumb[0]
    for i, item in enumerate(strip):
        tiles.append(
            Tile(x, gap + i * (thumb[1] + gap), thumb[0], thumb[1], item.source_id, item.label)
        )
    return tiles
