"""The clicks a visitor has made on the frame inspector and not applied yet.

They live in the page as JSON (a hidden textbox: Gradio's example cache keeps plain values, not
``gr.State``), one entry per click, in click order::

    [{"frame": 3, "x": 40, "y": 21, "label": 1}, ...]   x, y: pixels of the segmented frames

The inspector shows the segmented frames at their own size, so a click's pixel (Gradio's
``SelectData.index``) is already a pixel of the frames the pipeline gets. Clicks on the same
frame become one :class:`~mpg_sam2.pipeline.clicks.Correction` (SAM 2 decodes a frame again
with all its points).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from mpg_sam2.pipeline.clicks import NEGATIVE, POSITIVE, Correction

# Dot colours on the inspector's images: green on the object, red not on it.
DOT_COLORS = {POSITIVE: (40, 220, 40), NEGATIVE: (230, 30, 30)}


class ClickOutside(ValueError):
    """A click that is not on a pixel of the frame."""


@dataclass(frozen=True)
class PendingClick:
    frame: int
    x: int
    y: int
    label: int  # 1: on the object, 0: not on it


def parse_pending(text: str | None) -> list[PendingClick]:
    """The clicks in the page's JSON; anything that is not a list of clicks reads as none
    (the value comes from the page)."""
    try:
        entries = json.loads(text or "[]")
        clicks = [PendingClick(int(e["frame"]), int(e["x"]), int(e["y"]), int(e["label"])) for e in entries]
    except (ValueError, TypeError, KeyError):
        return []
    return [c for c in clicks if c.label in (POSITIVE, NEGATIVE) and c.frame >= 0]


def dump_pending(clicks: Sequence[PendingClick]) -> str:
    return json.dumps([asdict(c) for c in clicks])


def add_click(clicks: Sequence[PendingClick], frame: int, index: Sequence[int] | None, label: int,
              frame_size: tuple[int, int]) -> list[PendingClick]:
    """``clicks`` and one more at pixel ``index`` = ``[x, y]`` of ``frame``.

    Raises :class:`ClickOutside` when ``index`` is missing or not inside the ``H x W`` frame.
    """
    height, width = frame_size
    if index is None or len(index) != 2:
        raise ClickOutside("Click on the picture itself to add a point.")
    x, y = (int(round(float(v))) for v in index)
    if not (0 <= x < width and 0 <= y < height):
        raise ClickOutside(f"The point ({x}, {y}) is outside the {width} x {height} frame; click on the picture.")
    if label not in (POSITIVE, NEGATIVE):
        raise ValueError(f"label must be {POSITIVE} or {NEGATIVE}, got {label!r}")
    return [*clicks, PendingClick(int(frame), x, y, label)]


def to_corrections(clicks: Sequence[PendingClick], expression: int) -> list[Correction]:
    """One correction per clicked frame (frames in the order of their first click)."""
    by_frame: dict[int, list[tuple[float, float, int]]] = {}
    for click in clicks:
        by_frame.setdefault(click.frame, []).append((float(click.x), float(click.y), click.label))
    return [Correction(expression, frame, tuple(points)) for frame, points in by_frame.items()]


def draw_clicks(image: np.ndarray | None, clicks: Sequence[PendingClick]) -> np.ndarray | None:
    """A copy of ``image`` (uint8 ``[H, W, 3]``) with a dot per click, ringed in white so it shows
    on any colour; the dot's radius grows with the frame (3 px at 240p)."""
    if image is None or not clicks:
        return image
    out = np.array(image, copy=True)
    height, width = out.shape[:2]
    radius = max(2, round(min(height, width) / 80))
    rows, cols = np.ogrid[:height, :width]
    for click in clicks:
        distance2 = (cols - click.x) ** 2 + (rows - click.y) ** 2
        out[distance2 <= (radius + 1) ** 2] = 255
        out[distance2 <= radius**2] = DOT_COLORS[click.label]
    return out


def describe_pending(clicks: Sequence[PendingClick]) -> str:
    """One line for the page: how many points wait, on which frames."""
    if not clicks:
        return "No points yet: click on the Original or Final masks picture to add one."
    frames = sorted({c.frame for c in clicks})
    positive = sum(c.label == POSITIVE for c in clicks)
    return (f"{len(clicks)} point{'s' if len(clicks) > 1 else ''} waiting ({positive} on the object, "
            f"{len(clicks) - positive} not on it) on frame{'s' if len(frames) > 1 else ''} "
            f"{', '.join(map(str, frames))}.")
