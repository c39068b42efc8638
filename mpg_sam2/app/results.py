"""What one app request keeps for the frame inspector and the summary."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from mpg_sam2.exports.colors import color_hex, expression_color
from mpg_sam2.exports.render import heatmap_rgb, overlay
from mpg_sam2.pipeline.segmentation import VideoSegmentation

INSPECTOR_FILE = "inspector.npz"


def save_inspector(folder: Path, frames: np.ndarray, segmentation: VideoSegmentation) -> Path:
    """Frames and per-expression arrays, so the inspector can redraw any frame later."""
    arrays = {"frames": frames, "timestamps": segmentation.timestamps_s}
    for k, r in enumerate(segmentation.expressions):
        arrays[f"masks_{k}"] = r.masks
        arrays[f"priors_{k}"] = r.mask_priors
        arrays[f"scores_{k}"] = r.object_scores
        if r.text_attention is not None:
            arrays[f"attention_{k}"] = r.text_attention
    arrays["texts"] = np.array([r.text for r in segmentation.expressions])
    path = folder / INSPECTOR_FILE
    np.savez_compressed(path, **arrays)
    return path


def inspect_frame(path: str | Path, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """The four panels of frame ``index``: original, mask prior, final masks, attention.

    The prior and attention panels show the first expression (colour legend in the summary).
    """
    data = np.load(path)
    frames = data["frames"]
    index = int(np.clip(index, 0, len(frames) - 1))
    frame = frames[index]
    h, w = frame.shape[:2]
    texts = list(data["texts"])
    masks = [data[f"masks_{k}"][index] for k in range(len(texts))]
    final = overlay(frame, masks, [expression_color(k) for k in range(len(texts))])
    prior = heatmap_rgb(data["priors_0"][index], w, h)
    attention = heatmap_rgb(data["attention_0"][index], w, h) if "attention_0" in data else None
    return frame, prior, final, attention


def summary_rows(segmentation: VideoSegmentation) -> list[list[object]]:
    """One row per expression: colour, text, frames with the object, first / last such frame."""
    rows = []
    for k, r in enumerate(segmentation.expressions):
        present = r.frames_present
        rows.append([
            color_hex(expression_color(k)), r.text, f"{len(present)}/{segmentation.num_frames}",
            int(present[0]) if len(present) else "-", int(present[-1]) if len(present) else "-",
            f"{float(r.masks.mean()):.3f}",
        ])
    return rows


def score_table(segmentation: VideoSegmentation):
    """Long-format table (frame, time, expression, object score) for a line plot."""
    import pandas as pd

    records = []
    for r in segmentation.expressions:
        for t, score in enumerate(r.object_scores):
            records.append({"frame": t, "time_s": float(segmentation.timestamps_s[t]), "expression": r.text,
                            "object score": float(score)})
    return pd.DataFrame.from_records(records)
