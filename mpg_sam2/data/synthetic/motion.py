"""Trajectories: where an object's centre is in each frame, and whether it is shown at all.

Kinds (see :data:`.attributes.MOTIONS`): ``static``; ``left``/``right``/``up``/``down`` at a
constant speed, staying inside the frame; ``bounce``, reflected off the borders at least once;
``enter``, sliding in from a border (entirely outside the frame in frame 0, entirely inside in
the last frame); ``leave``, the time reverse of entering; ``appear``, static but only shown from
a later frame on. Positions are in pixels, ``x`` right and ``y`` down, and may lie outside the frame.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .attributes import MOTIONS

__all__ = ["DIRECTIONS", "Trajectory", "pass_through", "sample_trajectory"]

DIRECTIONS: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
_OPPOSITE = {"left": "right", "right": "left", "up": "down", "down": "up"}


@dataclass(frozen=True)
class Trajectory:
    """``centres`` float64 ``[T, 2]`` as (x, y); ``present`` bool ``[T]``.

    ``direction`` is the travel direction of linear, entering and leaving motions, else None.
    """

    kind: str
    centres: np.ndarray
    present: np.ndarray
    direction: str | None = None


def _inner(extent: float, size: int) -> tuple[float, float]:
    """The range of centre coordinates that keeps a shape of this extent fully inside the frame."""
    return extent + 1.0, size - extent - 2.0


def _linear(rng: np.random.Generator, direction: str, extent: float, height: int, width: int, frames: int) -> np.ndarray | None:
    dx, dy = DIRECTIONS[direction]
    along, across = (width, height) if dx else (height, width)
    lo, hi = _inner(extent, along)
    shortest = 0.25 * along
    if hi - lo < shortest:
        return None
    length = rng.uniform(shortest, min(hi - lo, 0.6 * along))
    start = rng.uniform(lo, hi - length)
    path = start + length * np.linspace(0.0, 1.0, frames)
    if dx < 0 or dy < 0:
        path = path[::-1]
    other = np.full(frames, rng.uniform(*_inner(extent, across)))
    return np.stack([path, other] if dx else [other, path], axis=1)


def _fold(u: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Unfolded coordinate -> position bouncing between ``lo`` and ``hi``."""
    span = hi - lo
    m = np.mod(u - lo, 2 * span)
    return lo + np.where(m <= span, m, 2 * span - m)


def _bounce(rng: np.random.Generator, extent: float, height: int, width: int, frames: int) -> np.ndarray | None:
    axes = ("x", "y", "xy")[int(rng.integers(3))]
    t = np.arange(frames, dtype=np.float64)
    coords = []
    for name, size in (("x", width), ("y", height)):
        lo, hi = _inner(extent, size)
        room = hi - lo
        if room < 0.2 * size:
            return None
        if name in axes and (axes != "xy" or name == "x"):
            # The bouncing axis: head for a wall that is reached after 25-60% of the path.
            path = rng.uniform(0.6, 1.0) * room
            to_wall = rng.uniform(0.25, 0.6) * path
            v = path / (frames - 1)
            if rng.random() < 0.5:
                coords.append(_fold(hi - to_wall + v * t, lo, hi))
            else:
                coords.append(_fold(lo + to_wall - v * t, lo, hi))
        elif name in axes:
            v = rng.uniform(0.3, 0.6) * room / (frames - 1) * (1 if rng.random() < 0.5 else -1)
            coords.append(_fold(rng.uniform(lo, hi) + v * t, lo, hi))
        else:
            coords.append(np.full(frames, rng.uniform(lo, hi)))
    return np.stack(coords, axis=1)


def _enter(rng: np.random.Generator, direction: str, extent: float, height: int, width: int, frames: int) -> np.ndarray | None:
    dx, dy = DIRECTIONS[direction]
    along, across = (width, height) if dx else (height, width)
    t = np.arange(frames, dtype=np.float64)
    for k in rng.permutation(np.arange(1, max(2, (frames - 1) // 2 + 1))):
        # The centre crosses the border at frame k: wholly outside at frame 0, wholly inside at the end.
        remaining = frames - 1 - k
        v_lo = max((extent + 1) / k, (extent + 1) / remaining)
        v_hi = min((along - extent - 2) / remaining, 0.2 * along)
        if v_lo <= v_hi:
            path = rng.uniform(v_lo, v_hi) * (t - k)
            if dx < 0 or dy < 0:
                path = along - 1 - path
            other = np.full(frames, rng.uniform(*_inner(extent, across)))
            return np.stack([path, other] if dx else [other, path], axis=1)
    return None


def sample_trajectory(rng: np.random.Generator, kind: str, extent: float, height: int, width: int, frames: int) -> Trajectory | None:
    """A trajectory of ``kind`` for a shape reaching ``extent`` pixels from its centre; None if it cannot fit."""
    if kind not in MOTIONS:
        raise ValueError(f"unknown motion {kind!r}; expected one of {MOTIONS}")
    present = np.ones(frames, dtype=bool)
    direction = None
    if kind in ("static", "appear"):
        x = rng.uniform(*_inner(extent, width))
        y = rng.uniform(*_inner(extent, height))
        centres = np.tile([x, y], (frames, 1))
        if kind == "appear":
            present[: int(rng.integers(1, max(2, frames // 2 + 1)))] = False
    elif kind in DIRECTIONS:
        direction = kind
        centres = _linear(rng, kind, extent, height, width, frames)
    elif kind == "bounce":
        centres = _bounce(rng, extent, height, width, frames)
    else:
        direction = list(DIRECTIONS)[int(rng.integers(4))]
        if kind == "enter":
            centres = _enter(rng, direction, extent, height, width, frames)
        else:
            centres = _enter(rng, _OPPOSITE[direction], extent, height, width, frames)
            centres = None if centres is None else centres[::-1].copy()
    if centres is None:
        return None
    return Trajectory(kind, centres, present, direction)


def pass_through(rng: np.random.Generator, point: np.ndarray, frame: int, height: int, width: int, frames: int) -> Trajectory:
    """A straight, constant-speed trajectory that is at ``point`` (x, y) in ``frame`` (an occluder's path)."""
    direction = list(DIRECTIONS)[int(rng.integers(4))]
    dx, dy = DIRECTIONS[direction]
    along = width if dx else height
    speed = rng.uniform(0.3, 0.55) * along / (frames - 1)
    t = np.arange(frames, dtype=np.float64) - frame
    centres = np.asarray(point, dtype=np.float64)[None, :] + speed * t[:, None] * np.array([dx, dy], dtype=np.float64)
    return Trajectory(direction, centres, np.ones(frames, dtype=bool), direction)
