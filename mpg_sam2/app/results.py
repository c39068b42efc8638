"""What one app request keeps for the frame inspector and the summary.

The inspector folder holds one uncompressed ``.npy`` file per array, opened memory-mapped, so
moving the frame slider reads one frame of each (about 2.8 MB at 720p) instead of
decompressing the whole video on every change::

    frames.npy      uint8   [T, H, W, 3]
    masks.npy       uint8   [K, T, H, ceil(W / 8)]   bits of the bool masks (np.packbits)
    priors.npy      float16 [K, T, g, g]             mask priors in [0, 1]
    attention.npy   float16 [K, T, h, w]             text attention in [0, 1] (when recorded)
    inspector.json  texts, frame size, the frame to open first (a corrected result: the clicked one)
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mpg_sam2.exports.colors import color_hex, expression_color
from mpg_sam2.exports.render import heatmap_rgb, overlay
from mpg_sam2.pipeline.segmentation import VideoSegmentation

INSPECTOR_DIR = "inspector"
_INDEX = "inspector.json"


class InspectorMissing(FileNotFoundError):
    """The folder of a result is gone (cleaned up after an hour, or never written)."""


def save_inspector(folder: Path, frames: np.ndarray, segmentation: VideoSegmentation, open_frame: int = 0) -> Path:
    """Write the inspector folder under ``folder``; returns its path."""
    target = folder / INSPECTOR_DIR
    target.mkdir(parents=True, exist_ok=True)
    results = segmentation.expressions
    np.save(target / "frames.npy", np.ascontiguousarray(frames))
    np.save(target / "masks.npy", np.stack([np.packbits(r.masks, axis=-1) for r in results]))
    np.save(target / "priors.npy", np.stack([r.mask_priors for r in results]).astype(np.float16))
    if all(r.text_attention is not None for r in results):
        np.save(target / "attention.npy", np.stack([r.text_attention for r in results]).astype(np.float16))
    index = {"texts": [r.text for r in results], "frame_size": list(frames.shape[1:3]), "num_frames": len(frames),
             "open_frame": int(open_frame)}
    (target / _INDEX).write_text(json.dumps(index), encoding="utf-8")
    return target


def inspector_frames(path: str | Path) -> int:
    """Number of frames of an inspector folder."""
    return int(_index(Path(path))["num_frames"])


def inspector_open_frame(path: str | Path) -> int:
    """The frame the inspector opens on (0 unless the result is a correction)."""
    return int(_index(Path(path)).get("open_frame", 0))


def inspector_texts(path: str | Path) -> list[str]:
    """The expressions of an inspector folder, in colour order."""
    return list(_index(Path(path))["texts"])


def frame_size(path: str | Path) -> tuple[int, int]:
    """``(H, W)`` of the frames of an inspector folder."""
    height, width = _index(Path(path))["frame_size"]
    return int(height), int(width)


def inspect_frame(path: str | Path, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """The four panels of frame ``index``: original, mask prior, final masks, attention.

    The prior and attention panels show the first expression (colour legend in the summary).
    """
    path = Path(path)
    info = _index(path)
    height, width = info["frame_size"]
    index = int(np.clip(index, 0, info["num_frames"] - 1))
    frame = np.array(_mapped(path, "frames")[index])
    bits = _mapped(path, "masks")[:, index]  # [K, H, ceil(W / 8)]
    masks = np.unpackbits(bits, axis=-1, count=width).astype(bool)
    final = overlay(frame, list(masks), [expression_color(k) for k in range(len(masks))])
    prior = heatmap_rgb(np.asarray(_mapped(path, "priors")[0, index], dtype=np.float32), width, height)
    attention = None
    if (path / "attention.npy").exists():
        attention = heatmap_rgb(np.asarray(_mapped(path, "attention")[0, index], dtype=np.float32), width, height)
    return frame, prior, final, attention


def _index(path: Path) -> dict:
    try:
        return json.loads((path / _INDEX).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InspectorMissing(f"the result in {path} is no longer there; run the segmentation again") from None


def _mapped(path: Path, name: str) -> np.ndarray:
    return np.load(path / f"{name}.npy", mmap_mode="r")


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
