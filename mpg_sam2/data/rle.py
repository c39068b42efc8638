"""COCO run-length encoding, the mask format of MeViS' ``mask_dict.json`` and COCO's ``instances.json``.

An RLE is ``{"size": [H, W], "counts": ...}``. The counts are run lengths over the mask read in
column-major (Fortran) order, starting with a run of zeros (possibly of length 0). ``counts`` is
either a list of ints ("uncompressed", COCO crowd annotations) or pycocotools' compressed string:
each count, after the first two, is stored as the difference to the count two places before,
then written in little-endian groups of 5 bits, one character (``chr(48 + bits)``) per group, bit
0x20 meaning "more groups follow" and bit 0x10 of the last group the sign. The functions below
are written from that description and checked against pycocotools in the tests.

Polygons are rasterised by :func:`polygon_to_mask`, a re-implementation of pycocotools'
``rleFrPoly``: vertices are scaled by 5 and rounded, edges walked pixel by pixel on that grid, and
a pixel column is inside between the edge crossings that land on its centre.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = [
    "counts_from_string",
    "counts_to_string",
    "decode",
    "encode",
    "polygon_to_mask",
    "polygons_to_mask",
]


def counts_from_string(text: str | bytes) -> list[int]:
    """Run lengths of a compressed COCO counts string."""
    if isinstance(text, bytes):
        text = text.decode("ascii")
    counts: list[int] = []
    pos, n = 0, len(text)
    while pos < n:
        value, shift, more = 0, 0, True
        while more:
            if pos >= n:
                raise ValueError(f"RLE string ends inside a number at character {pos}: {text[:40]!r}...")
            group = ord(text[pos]) - 48
            if not 0 <= group < 64:
                raise ValueError(f"character {text[pos]!r} at {pos} is not part of a COCO RLE string")
            value |= (group & 0x1F) << shift
            more = bool(group & 0x20)
            pos += 1
            shift += 5
            if not more and group & 0x10:
                value -= 1 << shift  # sign-extend from the last group's top bit
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts


def counts_to_string(counts: Sequence[int]) -> str:
    """Compressed COCO counts string of a list of run lengths."""
    out: list[str] = []
    for i, count in enumerate(counts):
        value = int(count) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            group = value & 0x1F
            value >>= 5  # arithmetic shift: negative deltas end at -1
            more = value != -1 if group & 0x10 else value != 0
            if more:
                group |= 0x20
            out.append(chr(group + 48))
    return "".join(out)


def _size(rle: Mapping[str, Any]) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in rle["size"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"an RLE needs 'size': [height, width], got keys {sorted(rle)}") from None
    return height, width


def decode(rle: Mapping[str, Any]) -> np.ndarray:
    """``{"size": [H, W], "counts": str | list[int]}`` -> bool ``[H, W]``."""
    height, width = _size(rle)
    counts = rle.get("counts")
    if isinstance(counts, (str, bytes)):
        runs = counts_from_string(counts)
    elif isinstance(counts, Sequence):
        runs = [int(c) for c in counts]
    else:
        raise ValueError(f"RLE 'counts' must be a string or a list of ints, got {type(counts).__name__}")
    total = height * width
    if sum(runs) != total or any(r < 0 for r in runs):
        raise ValueError(
            f"RLE runs sum to {sum(runs)} (min {min(runs, default=0)}) but size {height}x{width} has {total} pixels; "
            "is 'size' [height, width] and the RLE column-major?"
        )
    values = np.zeros(len(runs), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, runs)
    return flat.reshape((width, height)).T


def _runs(mask: np.ndarray) -> list[int]:
    flat = np.asarray(mask, dtype=bool).T.reshape(-1)
    if flat.size == 0:
        return [0]
    change = np.nonzero(flat[1:] != flat[:-1])[0] + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    runs = np.diff(bounds).tolist()
    if flat[0]:
        runs.insert(0, 0)  # counts always start with a (here empty) run of zeros
    return runs


def encode(mask: np.ndarray, compressed: bool = True) -> dict[str, Any]:
    """bool ``[H, W]`` -> ``{"size": [H, W], "counts": str}`` (or a list of ints if not ``compressed``).

    The compressed form is what pycocotools' ``mask.encode`` gives, with ``counts`` decoded to
    ``str`` as MeViS stores it in JSON.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"encode takes one [H, W] mask, got shape {mask.shape}")
    runs = _runs(mask)
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts_to_string(runs) if compressed else runs}


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
