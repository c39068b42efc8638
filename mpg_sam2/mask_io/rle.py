"""COCO run-length encoding: MeViS' ``mask_dict.json``, COCO's ``instances.json``, the COCO RLE export.

An RLE is ``{"size": [H, W], "counts": ...}``. The counts are run lengths over the mask read in
column-major (Fortran) order, starting with a run of zeros (possibly of length 0). ``counts`` is
either a list of ints ("uncompressed", COCO crowd annotations) or pycocotools' compressed string:
each count, after the first two, is stored as the difference to the count two places before,
then written in little-endian groups of 5 bits, one character (``chr(48 + bits)``) per group, bit
0x20 meaning "more groups follow" and bit 0x10 of the last group the sign. The functions below
are written from that description and checked against pycocotools in the tests.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

__all__ = [
    "counts_from_string",
    "counts_to_string",
    "decode",
    "encode",
    "mask_counts",
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
            # Stop once the remaining bits are pure sign extension of the group just written.
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


def mask_counts(mask: np.ndarray) -> list[int]:
    """bool ``[H, W]`` -> run lengths in column-major order, starting with a (possibly empty) run of 0s."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    if flat.size == 0:
        return [0]
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts.insert(0, 0)  # counts always start with a (here empty) run of zeros
    return counts


def encode(mask: np.ndarray, compressed: bool = True) -> dict[str, Any]:
    """bool ``[H, W]`` -> ``{"size": [H, W], "counts": str}`` (or a list of ints if not ``compressed``).

    The compressed form is what pycocotools' ``mask.encode`` gives, with ``counts`` decoded to
    ``str`` as MeViS stores it in JSON; the list form is what pycocotools reads through
    ``frPyObjects`` (COCO crowd annotations).
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"encode takes one [H, W] mask, got shape {mask.shape}")
    counts = mask_counts(mask)
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts_to_string(counts) if compressed else counts}
