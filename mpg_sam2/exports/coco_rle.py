"""COCO RLE JSON: one record per (expression, frame), decodable with ``pycocotools.mask.decode``.

File layout: ``{"format": "mpg_sam2.coco_rle/1", "video": ..., "fps": ..., "expressions": [...],
"annotations": [record, ...]}`` with each record
``{"expression", "expression_id", "frame_index", "timestamp_s", "segmentation": {"size": [H, W],
"counts": ...}, "area", "bbox"}``. ``frame_index`` is the source frame index, ``bbox`` COCO's
``[x, y, width, height]``. Compressed counts (a string) by default; ``compressed=False`` writes
the run lengths as a list, which pycocotools reads through ``frPyObjects``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from mpg_sam2.atomic import atomic_file
from mpg_sam2.mask_io import rle

from .inputs import check_fps, check_frame_indices, check_masks, check_timestamps

FORMAT = "mpg_sam2.coco_rle/1"


def mask_bbox(mask: np.ndarray) -> list[int]:
    """COCO ``[x, y, width, height]`` of the pixels of bool ``[H, W]``; ``[0, 0, 0, 0]`` when empty."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if ys.size == 0:
        return [0, 0, 0, 0]
    return [int(xs[0]), int(ys[0]), int(xs[-1] - xs[0] + 1), int(ys[-1] - ys[0] + 1)]


def coco_records(
    masks: Mapping[str, np.ndarray],
    timestamps: Sequence[float],
    frame_indices: Sequence[int],
    compressed: bool = True,
) -> list[dict]:
    """The records for ``masks`` (already checked: bool ``[T, H, W]`` each)."""
    records = []
    for exp_id, (text, mask) in enumerate(masks.items()):
        for i, m in enumerate(mask):
            records.append(
                {
                    "expression": text,
                    "expression_id": exp_id,
                    "frame_index": int(frame_indices[i]),
                    "timestamp_s": float(timestamps[i]),
                    "segmentation": rle.encode(m, compressed=compressed),
                    "area": int(m.sum()),
                    "bbox": mask_bbox(m),
                }
            )
    return records


def write_coco_rle(
    path: str | os.PathLike[str],
    masks: Mapping[str, np.ndarray],
    fps: float,
    timestamps: Sequence[float] | np.ndarray | None = None,
    frame_indices: Sequence[int] | np.ndarray | None = None,
    video_name: str | None = None,
    compressed: bool = True,
) -> Path:
    """Write the JSON atomically and return ``path``.

    Args:
        masks: ``{expression: bool [T, H, W]}``.
        timestamps: seconds of each frame, default ``i / fps``.
        frame_indices: source index of each frame, default 0..T-1.
    """
    masks = check_masks(masks)
    t = len(next(iter(masks.values())))
    fps = check_fps(fps)
    ts = check_timestamps(timestamps, t, fps)
    idx = check_frame_indices(frame_indices, t)
    doc = {
        "format": FORMAT,
        "video": video_name,
        "fps": fps,
        "expressions": [{"id": k, "text": text} for k, text in enumerate(masks)],
        "annotations": coco_records(masks, ts, idx, compressed=compressed),
    }
    with atomic_file(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False)
    return Path(path)
