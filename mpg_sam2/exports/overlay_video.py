"""Overlay video: the frames with every expression's mask blended in and outlined in its colour."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .colors import expression_color
from .encode import H264Writer
from .inputs import check_fps, check_frames, check_masks
from .render import overlay


def write_overlay_video(
    path: str | os.PathLike[str],
    frames: np.ndarray | Sequence[np.ndarray],
    fps: float,
    masks: Mapping[str, np.ndarray],
    audio_source: str | os.PathLike[str] | None = None,
    audio_start_s: float = 0.0,
) -> Path:
    """Write the overlay mp4 (H.264, yuv420p, even size, AAC audio from ``audio_source``).

    Args:
        frames: uint8 ``[T, H, W, 3]``.
        masks: ``{expression: bool [T, H, W]}``; the k-th expression gets palette colour k and,
            where masks overlap, later expressions are drawn on top.
    Returns:
        ``path``, written atomically.
    """
    frames = check_frames(frames)
    t, h, w, _ = frames.shape
    masks = check_masks(masks, (t, h, w))
    colors = [expression_color(k) for k in range(len(masks))]
    with H264Writer(path, check_fps(fps), w, h, audio_source=audio_source, audio_start_s=audio_start_s) as out:
        for i in range(t):
            out.write(overlay(frames[i], [m[i] for m in masks.values()], colors))
    return Path(path)
