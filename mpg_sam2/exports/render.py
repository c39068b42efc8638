"""Draw masks and heatmaps onto frames (pure numpy/PIL, one frame at a time)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image

from .colors import colorize

# Opacity of the mask fill in the overlay video: the object stays visible under its colour.
FILL_ALPHA = 0.45


def outline(mask: np.ndarray) -> np.ndarray:
    """bool ``[H, W]`` -> bool ``[H, W]``: mask pixels with a 4-neighbour outside the mask.

    The frame border counts as outside, so a mask touching the edge is closed there too.
    """
    m = np.pad(mask, 1, constant_values=False)
    interior = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    return mask & ~interior


def overlay(frame: np.ndarray, masks: Sequence[np.ndarray], colors: Sequence[tuple[int, int, int]]) -> np.ndarray:
    """uint8 ``[H, W, 3]`` with each bool ``[H, W]`` mask blended in its colour and outlined.

    Masks are drawn in order, so where they overlap the later expression is on top.
    """
    out = frame.astype(np.float32)
    for mask, color in zip(masks, colors):
        c = np.asarray(color, dtype=np.float32)
        out[mask] = (1.0 - FILL_ALPHA) * out[mask] + FILL_ALPHA * c
        out[outline(mask)] = c
    return np.round(out).astype(np.uint8)


def mask_only(shape: tuple[int, int], masks: Sequence[np.ndarray], colors: Sequence[tuple[int, int, int]]) -> np.ndarray:
    """uint8 ``[H, W, 3]``: masks in their colours on black; later expressions on top."""
    out = np.zeros((*shape, 3), dtype=np.uint8)
    for mask, color in zip(masks, colors):
        out[mask] = color
    return out


def upsample(heatmap: np.ndarray, width: int, height: int) -> np.ndarray:
    """float ``[h, w]`` -> float32 ``[height, width]``, bilinear (PIL, pixel centres aligned)."""
    img = Image.fromarray(np.ascontiguousarray(heatmap, dtype=np.float32))
    return np.asarray(img.resize((width, height), Image.BILINEAR), dtype=np.float32)


def heatmap_rgb(heatmap: np.ndarray, width: int, height: int) -> np.ndarray:
    """float ``[h, w]`` in [0, 1] -> uint8 ``[height, width, 3]`` in viridis."""
    return colorize(upsample(heatmap, width, height))


def resize_rgb(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    if (frame.shape[1], frame.shape[0]) == (width, height):
        return frame
    return np.asarray(Image.fromarray(frame).resize((width, height), Image.BILINEAR))


def resize_mask(mask: np.ndarray, width: int, height: int) -> np.ndarray:
    if (mask.shape[1], mask.shape[0]) == (width, height):
        return mask
    return np.asarray(Image.fromarray(mask).resize((width, height), Image.NEAREST))
