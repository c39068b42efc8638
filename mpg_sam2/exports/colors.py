"""Colours: one fixed colour per expression, and a perceptual colormap for heatmaps.

Expression colours come from the Okabe-Ito palette, designed to stay distinguishable for the
common forms of colour blindness. Its black is left out (invisible on the mask-only video's black
background); after seven expressions the colours repeat.
"""
from __future__ import annotations

import numpy as np

# Okabe & Ito (2008), "Color Universal Design", in the order that keeps the first few far apart.
EXPRESSION_PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 159, 0),  # orange
    (86, 180, 233),  # sky blue
    (0, 158, 115),  # bluish green
    (240, 228, 66),  # yellow
    (0, 114, 178),  # blue
    (213, 94, 0),  # vermillion
    (204, 121, 167),  # reddish purple
)

# viridis (van der Walt & Smith, matplotlib) sampled at 0, 0.1, ..., 1. Interpolating linearly
# between 11 anchors is close to the full 256-entry table and keeps lightness monotonic.
_VIRIDIS_ANCHORS = np.array(
    [
        (68, 1, 84), (72, 36, 117), (65, 68, 135), (53, 95, 141), (42, 120, 142), (33, 145, 140),
        (34, 168, 132), (68, 191, 112), (122, 209, 81), (189, 223, 38), (253, 231, 37),
    ],
    dtype=np.float64,
)


def expression_color(k: int) -> tuple[int, int, int]:
    """RGB colour of the ``k``-th expression (0-based); the palette repeats after 7."""
    return EXPRESSION_PALETTE[k % len(EXPRESSION_PALETTE)]


def color_hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def viridis_lut() -> np.ndarray:
    """uint8 ``[256, 3]`` viridis table, built by interpolating the anchors."""
    x = np.linspace(0.0, 1.0, 256)
    anchors_x = np.linspace(0.0, 1.0, len(_VIRIDIS_ANCHORS))
    lut = np.stack([np.interp(x, anchors_x, _VIRIDIS_ANCHORS[:, c]) for c in range(3)], axis=1)
    return np.round(lut).astype(np.uint8)


_LUT = viridis_lut()


def colorize(heatmap: np.ndarray) -> np.ndarray:
    """float ``[H, W]`` in [0, 1] -> uint8 ``[H, W, 3]`` viridis; values outside are clipped, NaN is 0."""
    h = np.nan_to_num(np.asarray(heatmap, dtype=np.float32), nan=0.0)
    idx = np.clip(np.round(h * 255.0), 0, 255).astype(np.uint8)
    return _LUT[idx]
