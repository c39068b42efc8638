"""Backgrounds: a plain colour, a linear gradient, or smooth noise, all in muted tones.

Muted means saturation <= 0.3 and value in [0.35, 0.65], so every named colour -- white and black
included -- keeps its contrast with the background, and colour words stay unambiguous.
"""
from __future__ import annotations

import colorsys
import math

import numpy as np

__all__ = ["BACKGROUNDS", "sample_background"]

BACKGROUNDS: tuple[str, ...] = ("plain", "gradient", "noise")


def _muted(rng: np.random.Generator) -> np.ndarray:
    rgb = colorsys.hsv_to_rgb(rng.uniform(0.0, 1.0), rng.uniform(0.0, 0.3), rng.uniform(0.35, 0.65))
    return np.asarray(rgb, dtype=np.float32) * 255.0


def _upsample(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of ``[h, w, C]`` to ``[height, width, C]`` (corners aligned)."""

    def axis_weights(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = np.linspace(0.0, n_in - 1, n_out, dtype=np.float32)
        lo = np.minimum(pos.astype(np.int64), n_in - 2)
        return lo, lo + 1, pos - lo

    y0, y1, fy = axis_weights(height, grid.shape[0])
    x0, x1, fx = axis_weights(width, grid.shape[1])
    rows = grid[y0] * (1 - fy)[:, None, None] + grid[y1] * fy[:, None, None]
    return rows[:, x0] * (1 - fx)[None, :, None] + rows[:, x1] * fx[None, :, None]


def sample_background(rng: np.random.Generator, height: int, width: int, kind: str | None = None) -> tuple[str, np.ndarray]:
    """``(kind, image)`` with image float32 ``[height, width, 3]`` in [0, 255]; kind drawn if None."""
    if kind is None:
        kind = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    if kind == "plain":
        image = np.broadcast_to(_muted(rng), (height, width, 3)).astype(np.float32)
    elif kind == "gradient":
        a, b = _muted(rng), _muted(rng)
        theta = rng.uniform(0.0, 2 * math.pi)
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        u = xs / max(width - 1, 1) * math.cos(theta) + ys / max(height - 1, 1) * math.sin(theta)
        u = (u - u.min()) / max(float(u.max() - u.min()), 1e-6)
        image = a * (1 - u[..., None]) + b * u[..., None]
    elif kind == "noise":
        cells = max(2, int(round(max(height, width) / 48)))
        # Mostly brightness, a little tint: coloured blotches would compete with the colour words.
        grid = rng.normal(0.0, 16.0, (cells + 1, cells + 1, 1)) + rng.normal(0.0, 6.0, (cells + 1, cells + 1, 3))
        grid = grid.astype(np.float32)
        fine = rng.normal(0.0, 4.0, (height, width, 1)).astype(np.float32)
        image = _muted(rng) + _upsample(grid, height, width) + fine
    else:
        raise ValueError(f"unknown background {kind!r}; expected one of {BACKGROUNDS}")
    return kind, np.clip(image, 0.0, 255.0).astype(np.float32)
