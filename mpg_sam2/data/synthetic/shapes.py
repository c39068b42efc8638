"""Anti-aliased sprites of the benchmark's shapes, with their textures.

A shape is drawn once per object as a sprite -- a coverage map in [0, 1] and a colour per pixel --
and pasted at the object's (integer) position in every frame; shapes neither rotate nor scale
during a clip, so this is the only geometry a clip computes. Coverage comes from a signed distance
``d`` (pixels, negative inside) as ``clip(0.5 - d, 0, 1)``: a one-pixel ramp across the outline,
which is what box-filtering the edge over a pixel gives for straight edges.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .attributes import SHAPES, TEXTURES

__all__ = ["Sprite", "make_sprite", "shape_distance"]


@dataclass(frozen=True)
class Sprite:
    """An object's appearance, centred on pixel ``(half, half)``.

    ``coverage`` float32 ``[S, S]`` in [0, 1]; ``colour`` float32 ``[S, S, 3]`` in [0, 255];
    ``S = 2 * half + 1``. The object's mask is ``coverage >= 0.5``.
    """

    coverage: np.ndarray
    colour: np.ndarray

    @property
    def half(self) -> int:
        return self.coverage.shape[0] // 2

    @property
    def mask(self) -> np.ndarray:
        """bool ``[S, S]``: the pixels the object owns (more than half covered)."""
        return self.coverage >= 0.5


def _segment_distance(px: np.ndarray, py: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Unsigned distance from each point to the closed polygon's outline."""
    best = np.full(px.shape, np.inf, dtype=np.float32)
    for (ax, ay), (bx, by) in zip(vertices, np.roll(vertices, -1, axis=0)):
        ex, ey = bx - ax, by - ay
        t = np.clip(((px - ax) * ex + (py - ay) * ey) / (ex * ex + ey * ey), 0.0, 1.0)
        best = np.minimum(best, np.hypot(px - ax - t * ex, py - ay - t * ey))
    return best


def _inside_polygon(px: np.ndarray, py: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Even-odd rule: a horizontal ray from the point crosses the outline an odd number of times."""
    inside = np.zeros(px.shape, dtype=bool)
    for (ax, ay), (bx, by) in zip(vertices, np.roll(vertices, -1, axis=0)):
        if ay == by:
            continue
        straddles = (ay > py) != (by > py)
        x_cross = ax + (py - ay) * (bx - ax) / (by - ay)
        inside ^= straddles & (px < x_cross)
    return inside


def _polygon_distance(px: np.ndarray, py: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    d = _segment_distance(px, py, vertices)
    return np.where(_inside_polygon(px, py, vertices), -d, d)


def _regular(n: int, radius: float, angle: float) -> np.ndarray:
    """``n`` vertices on a circle, the first at ``angle`` (radians, 0 = pointing up)."""
    a = angle + 2 * math.pi * np.arange(n) / n
    return np.stack([radius * np.sin(a), -radius * np.cos(a)], axis=1)


def _star(radius: float, angle: float) -> np.ndarray:
    outer = _regular(5, radius, angle)
    inner = _regular(5, 0.45 * radius, angle + math.pi / 5)
    return np.stack([outer, inner], axis=1).reshape(10, 2)


def _cross(radius: float, angle: float) -> np.ndarray:
    a, w = radius, 0.34 * radius  # arm half-length, arm half-width
    pts = np.array([(-w, -a), (w, -a), (w, -w), (a, -w), (a, w), (w, w), (w, a), (-w, a), (-w, w), (-a, w), (-a, -w), (-w, -w)])
    c, s = math.cos(angle), math.sin(angle)
    return pts @ np.array([[c, s], [-s, c]])


def shape_distance(shape: str, radius: float, angle: float, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Signed distance (pixels, < 0 inside) of points ``(px, py)`` relative to the shape's centre.

    ``radius`` is the size class's radius in pixels; each shape is scaled so the shapes of one
    size class look about equally big. ``angle`` (radians) tilts the polygons.
    """
    if shape == "circle":
        return np.hypot(px, py) - 0.9 * radius
    if shape == "ring":
        outer, inner = 0.95 * radius, 0.5 * radius
        return np.abs(np.hypot(px, py) - (outer + inner) / 2) - (outer - inner) / 2
    if shape == "square":
        return _polygon_distance(px, py, _regular(4, 1.1 * radius, angle + math.pi / 4))
    if shape == "triangle":
        return _polygon_distance(px, py, _regular(3, 1.15 * radius, angle) + (0.0, 0.15 * radius))
    if shape == "star":
        return _polygon_distance(px, py, _star(1.15 * radius, angle))
    if shape == "cross":
        return _polygon_distance(px, py, _cross(radius, angle))
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")


def _shade(rgb: np.ndarray) -> np.ndarray:
    """The texture's second colour: darker for light colours, lighter for dark ones."""
    luma = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return rgb * 0.45 if luma > 100 else rgb + (255.0 - rgb) * 0.55


def _texture_weight(texture: str, radius: float, angle: float, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Weight in [0, 1] of the shade colour at each point (anti-aliased like the outline)."""
    if texture == "plain":
        return np.zeros(px.shape, dtype=np.float32)
    if texture == "striped":
        period = max(6.0, 0.55 * radius)
        u = (px * math.cos(angle + math.pi / 4) + py * math.sin(angle + math.pi / 4)) / period
        # Distance to the nearest stripe edge, positive inside the shaded half of each period.
        d = (np.abs(u - np.floor(u) - 0.5) - 0.25) * period
        return np.clip(0.5 + d, 0.0, 1.0)
    if texture == "dotted":
        period = max(6.0, 0.5 * radius)
        qx = px - period * np.round(px / period)
        qy = py - period * np.round(py / period)
        return np.clip(0.5 - (np.hypot(qx, qy) - 0.28 * period), 0.0, 1.0)
    raise ValueError(f"unknown texture {texture!r}; expected one of {TEXTURES}")


def make_sprite(shape: str, radius: float, rgb: tuple[float, float, float], texture: str, angle: float = 0.0) -> Sprite:
    """The sprite of one object; ``radius`` in pixels, ``rgb`` in [0, 255], ``angle`` in radians."""
    half = int(math.ceil(1.2 * radius)) + 2
    axis = np.arange(-half, half + 1, dtype=np.float32)
    py, px = np.meshgrid(axis, axis, indexing="ij")
    coverage = np.clip(0.5 - shape_distance(shape, radius, angle, px, py), 0.0, 1.0).astype(np.float32)
    base = np.asarray(rgb, dtype=np.float32)
    weight = _texture_weight(texture, radius, angle, px, py)[..., None]
    colour = (base * (1.0 - weight) + _shade(base) * weight).astype(np.float32)
    return Sprite(coverage, colour)
