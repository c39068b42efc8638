"""Mask-only video: every expression's mask in its colour on black, nothing of the frames."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np

from .colors import expression_color
from .encode import H264Writer
from .inputs import check_fps, check_masks
from .render import mask_only


def write_mask_video(
    path: str | os.PathLike[str],
    masks: Mapping[str, np.ndarray],
    fps: float,
    audio_source: str | os.PathLike[str] | None = None,
    audio_start_s: float = 0.0,
) -> Path:
    """Write the mask-only mp4 (same encoding as the overlay video).

    Args:
        masks: ``{expression: bool [T, H, W]}``, all of one shape; later expressions on top.
    Returns:
        ``path``, written atomically.
    """
    masks = check_masks(masks)
    t, h, w = next(iter(masks.values())).shape
    colors = [expression_color(k) for k in range(len(masks))]
    with H264Writer(path, check_fps(fps), w, h, audio_source=audio_source, audio_start_s=audio_start_s) as out:
        for i in range(t):
            out.write(mask_only((h, w), [m[i] for m in masks.values()], colors))
    return Path(path)
