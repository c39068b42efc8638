"""COCO run-length encoding of binary masks, compatible with pycocotools.

A mask is flattened in column-major (Fortran) order and stored as the lengths of alternating runs
of 0s and 1s, starting with 0s (a mask whose first pixel is 1 starts with a run of length 0).
The compressed string form is pycocotools' ``rleToString``: from the third count on, each count
is stored as the difference to the count two places earlier, then written as 5-bit groups, low
bits first, each offset by 48 into printable ASCII, with 0x20 flagging "another group follows".
"""
from __future__ import annotations

import numpy as np


def rle_counts(mask: np.ndarray) -> list[int]:
    """bool ``[H, W]`` -> run lengths in column-major order, starting with a run of 0s."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    if flat.size == 0:
        return [0]
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts.insert(0, 0)
    return counts


def compress_counts(counts: list[int]) -> str:
    """Run lengths -> pycocotools' compact ASCII string."""
    out: list[str] = []
    for i, count in enumerate(counts):
        x = count - counts[i - 2] if i > 2 else count
        more = True
        while more:
            c = x & 0x1F
            x >>= 5  # arithmetic shift: negative differences keep their sign
            # Stop once the remaining bits are pure sign extension of the group just written.
            more = x != -1 if c & 0x10 else x != 0
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def encode_mask(mask: np.ndarray, compressed: bool = True) -> dict:
    """bool ``[H, W]`` -> ``{"size": [H, W], "counts": str | list[int]}`` (pycocotools RLE)."""
    counts = rle_counts(mask)
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": compress_counts(counts) if compressed else counts}


def mask_bbox(mask: np.ndarray) -> list[int]:
    """COCO ``[x, y, width, height]`` of the mask's pixels; ``[0, 0, 0, 0]`` when empty."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if ys.size == 0:
        return [0, 0, 0, 0]
    return [int(xs[0]), int(ys[0]), int(xs[-1] - xs[0] + 1), int(ys[-1] - ys[0] + 1)]
