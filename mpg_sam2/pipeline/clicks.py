"""Click corrections of a request: which expression, which frame, which points.

A correction is every click on one frame of one expression's result, in pixels of the source
video: ``{"expression": 0, "frame": 12, "points": [[x, y, 1], [x, y, 0]]}`` (label 1: on the
object, 0: not on it). Corrections apply in the order given, each on the result of the ones
before (the model's :func:`~mpg_sam2.model.click_correction.repropagate`); the same list gives
the same masks from the app, the CLI (``--clicks FILE``) and :func:`segment_video`.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from mpg_sam2.model.click_correction import FrameClicks
from mpg_sam2.model.point_prompt import PointPrompt

POSITIVE, NEGATIVE = 1, 0
# SAM 2 decodes a frame's points together; far fewer are ever useful (its training corrects with
# at most 8). The cap keeps a request from the page from growing the prompt without bound.
MAX_POINTS_PER_FRAME = 32


class ClickError(ValueError):
    """A correction cannot be used; the message says which one and why."""


@dataclass(frozen=True)
class Correction:
    """Clicks on frame ``frame`` of expression ``expression`` (its index in the request)."""

    expression: int
    frame: int
    points: tuple[tuple[float, float, int], ...]  # (x, y, label) in source pixels, label 1 / 0

    def to_json(self) -> dict[str, Any]:
        return {"expression": self.expression, "frame": self.frame, "points": [[x, y, label] for x, y, label in self.points]}

    def frame_clicks(self, frame_size: tuple[int, int], sam_size: int, device: torch.device | str) -> FrameClicks:
        """The clicks in SAM 2 input pixels: ``x / W * S``, ``y / H * S`` (what SAM 2's video
        predictor does with ``normalize_coords``)."""
        return FrameClicks(self.frame, PointPrompt.from_points(self.points, frame_size=frame_size, sam_size=sam_size, device=device))


def add_clicks(
    corrections: Sequence[Correction], expression: int, frame: int, points: Sequence[tuple[float, float, int]]
) -> list[Correction]:
    """``corrections`` followed by the correction that new ``points`` on ``frame`` make: it holds
    every point that frame of that expression has had so far, old and new, because SAM 2
    decodes a frame again with all of its points (``add_new_points_or_box`` concatenates them).
    The app's re-runs and the simulated-click protocol both add clicks through here."""
    earlier = next((c.points for c in reversed(corrections) if c.expression == expression and c.frame == frame), ())
    new = tuple((float(x), float(y), int(label)) for x, y, label in points)
    return [*corrections, Correction(expression, frame, earlier + new)]


def parse_corrections(data: Any) -> list[Correction]:
    """Corrections from decoded JSON: one object or a list of objects as in the module doc.

    Raises :class:`ClickError` naming the entry and the field that is wrong.
    """
    entries = [data] if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise ClickError(f"clicks must be an object or a list of objects, got {type(data).__name__}")
    corrections = []
    for n, entry in enumerate(entries, start=1):
        where = f"correction {n}"
        if not isinstance(entry, dict):
            raise ClickError(f"{where} is a {type(entry).__name__}; write {{\"expression\": 0, \"frame\": 12, \"points\": [[x, y, 1]]}}")
        unknown = set(entry) - {"expression", "frame", "points"}
        if unknown:
            raise ClickError(f"{where} has unknown fields {sorted(unknown)}; use expression, frame and points")
        expression, frame = (_whole_number(entry.get(key), f"{where}: {key}") for key in ("expression", "frame"))
        points = entry.get("points")
        if not isinstance(points, list) or not points:
            raise ClickError(f"{where}: points must be a non-empty list of [x, y, label]")
        parsed = []
        for p, point in enumerate(points, start=1):
            if not (isinstance(point, (list, tuple)) and len(point) == 3):
                raise ClickError(f"{where}, point {p}: write [x, y, label], got {point!r}")
            x, y, label = point
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (x, y)):
                raise ClickError(f"{where}, point {p}: x and y must be finite numbers (pixels), got {x!r}, {y!r}")
            if label not in (POSITIVE, NEGATIVE) or isinstance(label, bool):
                raise ClickError(f"{where}, point {p}: label must be 1 (on the object) or 0 (not on it), got {label!r}")
            parsed.append((float(x), float(y), int(label)))
        corrections.append(Correction(expression, frame, tuple(parsed)))
    return corrections


def read_corrections(path: str | Path) -> list[Correction]:
    """Corrections from a JSON file (see :func:`parse_corrections`)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ClickError(f"clicks file {path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ClickError(f"clicks file {path} is not valid JSON: {error}") from None
    return parse_corrections(data)


def check_corrections(
    corrections: Sequence[Correction],
    num_expressions: int,
    num_frames: int | None,
    frame_size: tuple[int, int] | None,
) -> None:
    """Raise :class:`ClickError` if a correction names a missing expression or frame, has more
    than :data:`MAX_POINTS_PER_FRAME` points, or a point outside the ``H x W`` frame. ``num_frames`` and ``frame_size`` may be None before the
    video is decoded (a command line checks the expressions first, then the rest)."""
    for n, correction in enumerate(corrections, start=1):
        where = f"correction {n}"
        if not 0 <= correction.expression < num_expressions:
            raise ClickError(f"{where}: expression {correction.expression} does not exist; the request has "
                             f"{num_expressions} (indices 0 to {num_expressions - 1})")
        if not correction.points:
            raise ClickError(f"{where}: no points")
        if len(correction.points) > MAX_POINTS_PER_FRAME:
            raise ClickError(f"{where}: {len(correction.points)} points on one frame; at most {MAX_POINTS_PER_FRAME} are used")
        if num_frames is None or frame_size is None:
            continue
        height, width = frame_size
        if not 0 <= correction.frame < num_frames:
            raise ClickError(f"{where}: frame {correction.frame} does not exist; the video has {num_frames} frames "
                             f"(0 to {num_frames - 1})")
        for p, (x, y, _) in enumerate(correction.points, start=1):
            if not (0 <= x <= width and 0 <= y <= height):
                raise ClickError(f"{where}, point {p}: ({x:g}, {y:g}) lies outside the {width} x {height} frame")


def _whole_number(value: Any, what: str) -> int:
    valid = isinstance(value, int) or (isinstance(value, float) and math.isfinite(value) and value == int(value))
    if isinstance(value, bool) or not valid or value < 0:
        raise ClickError(f"{what} must be a whole number >= 0, got {value!r}")
    return int(value)
