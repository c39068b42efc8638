"""One palette PNG per frame holding every expression: index k+1 is expression k, 0 is background.

The palette is the expression palette (index k+1 gets expression k's colour), so the PNGs look
like the overlay's colours in any image viewer. Where masks overlap, the **later** expression wins
(its index is written last), the same order the overlay draws in. Layout:
``<out>/<video>/<frame>.png`` with 5-digit zero-padded source frame indices.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from mpg_sam2.atomic import atomic_dir
from mpg_sam2.mask_io.label_map import label_map
from mpg_sam2.mask_io.png import write_label_png

from .colors import expression_color
from .errors import ExportError
from .inputs import check_frame_indices, check_masks, check_name
from .png_masks import frame_name

MAX_EXPRESSIONS = 255  # one index per expression, 0 reserved for background


def _palette(n: int) -> list[int]:
    flat = [0, 0, 0]
    for k in range(n):
        flat.extend(expression_color(k))
    return flat + [0, 0, 0] * (256 - 1 - n)


def write_palette_pngs(
    out_dir: str | os.PathLike[str],
    video_name: str,
    masks: Mapping[str, np.ndarray],
    frame_indices: Sequence[int] | np.ndarray | None = None,
) -> Path:
    """Write one mode-"P" PNG per frame; returns ``<out_dir>/<video_name>`` (written atomically)."""
    check_name("video_name", video_name)
    masks = check_masks(masks)
    if len(masks) > MAX_EXPRESSIONS:
        raise ExportError(f"a palette PNG holds at most {MAX_EXPRESSIONS} expressions, got {len(masks)}; split them")
    names = [frame_name(i) for i in check_frame_indices(frame_indices, len(next(iter(masks.values()))))]
    palette = _palette(len(masks))
    target = Path(out_dir) / video_name
    with atomic_dir(target) as tmp:
        for i, name in enumerate(names):
            write_label_png(tmp / f"{name}.png", label_map([m[i] for m in masks.values()]), palette)
    return target
