"""Binary PNG masks in the Ref-YouTube-VOS layout: ``<out>/<video>/<expression_id>/<frame>.png``.

Expression ids are the expressions' positions (``"0"``, ``"1"``, ...), as in the dataset's
``meta_expressions.json``; frame names are the 5-digit zero-padded source frame indices
(``00000.png``). Pixels are 0 (background) or 255 (object), mode "L".
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from mpg_sam2.atomic import atomic_dir
from mpg_sam2.mask_io.png import write_binary_png

from .inputs import check_frame_indices, check_masks, check_name


def frame_name(source_index: int) -> str:
    return f"{source_index:05d}"


def write_png_masks(
    out_dir: str | os.PathLike[str],
    video_name: str,
    masks: Mapping[str, np.ndarray],
    frame_indices: Sequence[int] | np.ndarray | None = None,
) -> Path:
    """Write one binary PNG per (expression, frame); returns ``<out_dir>/<video_name>``.

    Args:
        masks: ``{expression: bool [T, H, W]}``; dict order gives the expression ids.
        frame_indices: source index of each of the T frames (names the files); default 0..T-1.
    The ``<video_name>`` folder is built under a temporary name and renamed when complete,
    replacing an older one.
    """
    check_name("video_name", video_name)
    masks = check_masks(masks)
    names = [frame_name(i) for i in check_frame_indices(frame_indices, len(next(iter(masks.values()))))]
    target = Path(out_dir) / video_name
    with atomic_dir(target) as tmp:
        for exp_id, mask in enumerate(masks.values()):
            folder = tmp / str(exp_id)
            folder.mkdir()
            for name, m in zip(names, mask):
                write_binary_png(folder / f"{name}.png", m)
    return target
