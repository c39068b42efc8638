"""Per-object masks merged into one label map (pixel value k + 1 = object k, 0 = background).

Where objects overlap the **later** one wins: its id is written last. That is the order the
overlay draws in, and for Ref-DAVIS17 it stands in for ReferFormer's per-pixel argmax over the
expressions' probabilities, which binary masks no longer carry.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["label_map"]


def label_map(masks: Sequence[np.ndarray], max_label: int = 255) -> np.ndarray:
    """bool ``[H, W]`` masks -> uint8 ``[H, W]`` labels, mask k as k + 1; later masks overwrite earlier.

    ``max_label`` (at most 255, the largest uint8) caps the number of masks; DAVIS-style label
    maps pass 254, since 255 means "void" there.
    """
    if not 0 < max_label <= 255:
        raise ValueError(f"max_label must be in 1..255 (uint8 labels), got {max_label}")
    if not 0 < len(masks) <= max_label:
        raise ValueError(f"a label map holds 1 to {max_label} objects, got {len(masks)}")
    out = np.zeros(np.shape(masks[0]), dtype=np.uint8)
    for k, mask in enumerate(masks):
        out[np.asarray(mask, dtype=bool)] = k + 1
    return out
