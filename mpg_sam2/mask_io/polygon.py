"""COCO polygons rasterised exactly as pycocotools does (RefCOCO's ``instances.json``).

:func:`polygon_to_mask` re-implements pycocotools' ``rleFrPoly``: vertices are scaled by 5 and
rounded, edges walked pixel by pixel on that grid, and a pixel column is inside between the edge
crossings that land on its centre. The result is built as COCO run lengths and decoded by
:func:`mpg_sam2.mask_io.rle.decode`.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .rle import decode

__all__ = ["polygon_to_mask", "polygons_to_mask"]


def polygon_to_mask(polygon: Sequence[float], height: int, width: int) -> np.ndarray:
    """One COCO polygon ``[x0, y0, x1, y1, ...]`` (pixel coordinates) -> bool ``[height, width]``.

    Same pixels as pycocotools ``decode(frPyObjects([polygon], h, w))``; see the module docstring.
    """
    coords = [float(v) for v in polygon]
    if len(coords) < 6 or len(coords) % 2:
        raise ValueError(f"a polygon needs an even number >= 6 of coordinates, got {len(coords)}")
    scale = 5.0
    k = len(coords) // 2
    # C's (int) cast truncates toward zero; Python's int() does the same.
    xs = [int(scale * coords[2 * j] + 0.5) for j in range(k)]
    ys = [int(scale * coords[2 * j + 1] + 0.5) for j in range(k)]
    xs.append(xs[0])
    ys.append(ys[0])

    # Walk every edge on the 5x grid, one point per step along its longer axis.
    u: list[int] = []
    v: list[int] = []
    for j in range(k):
        xs_, xe, ys_, ye = xs[j], xs[j + 1], ys[j], ys[j + 1]
        dx, dy = abs(xe - xs_), abs(ys_ - ye)
        flip = (dx >= dy and xs_ > xe) or (dx < dy and ys_ > ye)
        if flip:
            xs_, xe, ys_, ye = xe, xs_, ye, ys_
        if dx >= dy:
            slope = (ye - ys_) / dx if dx else 0.0
            for d in range(dx + 1):
                t = dx - d if flip else d
                u.append(t + xs_)
                v.append(int(ys_ + slope * t + 0.5))
        else:
            slope = (xe - xs_) / dy
            for d in range(dy + 1):
                t = dy - d if flip else d
                v.append(t + ys_)
                u.append(int(xs_ + slope * t + 0.5))

    # Where the walk changes column and lands on a pixel centre, record where the column's
    # inside/outside state flips (downsampled back to pixels).
    flips: list[int] = []
    for j in range(1, len(u)):
        if u[j] == u[j - 1]:
            continue
        xd = float(u[j] if u[j] < u[j - 1] else u[j] - 1)
        xd = (xd + 0.5) / scale - 0.5
        if math.floor(xd) != xd or xd < 0 or xd > width - 1:
            continue
        yd = float(v[j] if v[j] < v[j - 1] else v[j - 1])
        yd = (yd + 0.5) / scale - 0.5
        yd = min(max(yd, 0.0), float(height))
        flips.append(int(xd) * height + int(math.ceil(yd)))
    flips.append(height * width)
    flips.sort()

    # Differences of the sorted flip positions are the run lengths; empty runs are merged away
    # by adding the following run to the previous one, exactly as pycocotools does.
    deltas = [flips[0]] + [flips[i] - flips[i - 1] for i in range(1, len(flips))]
    runs = [deltas[0]]
    i = 1
    while i < len(deltas):
        if deltas[i] > 0:
            runs.append(deltas[i])
            i += 1
        else:
            i += 1
            if i < len(deltas):
                runs[-1] += deltas[i]
                i += 1
    return decode({"size": [height, width], "counts": runs})


def polygons_to_mask(polygons: Sequence[Sequence[float]], height: int, width: int) -> np.ndarray:
    """Union of COCO polygons (one object's ``segmentation`` list) -> bool ``[height, width]``."""
    mask = np.zeros((height, width), dtype=bool)
    for polygon in polygons:
        mask |= polygon_to_mask(polygon, height, width)
    return mask
