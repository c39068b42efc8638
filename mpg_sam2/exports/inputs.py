"""Check and normalise what the writers are given: frames, masks, heatmaps, names.

The contract, shared by every writer:
- frames: uint8 ``[T, H, W, 3]`` RGB, or a sequence of ``[H, W, 3]``;
- masks: ``{expression: bool [T, H, W]}``, expression order = dict order = expression id;
- heatmaps: ``{expression: float [T, h, w]}`` in [0, 1], any (low) resolution;
- fps: a finite number > 0.
"""
from __future__ import annotations

import math
import re
from typing import Mapping, Sequence

import numpy as np

from .errors import ExportError

# Frame, folder and archive names come from user input (uploaded file names); keep them to one
# plain path component.
_SAFE_NAME = re.compile(r"^[\w][\w.\- ]*$")


def check_frames(frames: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """-> uint8 ``[T, H, W, 3]`` (a view when possible)."""
    arr = np.asarray(frames) if not isinstance(frames, np.ndarray) else frames
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
        raise ExportError(
            f"frames must be uint8 RGB of shape [T, H, W, 3], got dtype {arr.dtype} and shape {arr.shape}; "
            "convert with np.asarray(frames, dtype=np.uint8)"
        )
    if arr.shape[0] == 0:
        raise ExportError("frames is empty (T = 0); there is nothing to export")
    return arr


def check_fps(fps: float) -> float:
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) or fps <= 0:
        raise ExportError(f"fps must be a finite number > 0, got {fps!r}")
    return float(fps)


def check_masks(masks: Mapping[str, np.ndarray], shape: tuple[int, ...] | None = None) -> dict[str, np.ndarray]:
    """-> ``{expression: bool [T, H, W]}`` in the given order.

    ``shape`` is (T, H, W) of the frames; None takes it from the first mask.
    """
    if not isinstance(masks, Mapping) or not masks:
        raise ExportError("masks must be a non-empty dict {expression: bool array [T, H, W]}")
    if shape is None:
        shape = np.shape(next(iter(masks.values())))
        if len(shape) != 3 or 0 in shape:
            raise ExportError(f"masks must be bool arrays [T, H, W] with T, H, W > 0, got shape {shape}")
    out: dict[str, np.ndarray] = {}
    for text, mask in masks.items():
        if not isinstance(text, str) or not text.strip():
            raise ExportError(f"mask keys must be non-empty expression strings, got {text!r}")
        m = np.asarray(mask)
        if m.shape != tuple(shape):
            raise ExportError(f"mask of {text!r} has shape {m.shape}, expected [T, H, W] = {tuple(shape)} like the frames")
        if m.dtype != np.bool_:
            if not np.issubdtype(m.dtype, np.integer) or not np.isin(m, (0, 1)).all():
                raise ExportError(f"mask of {text!r} must be bool (or 0/1 integers), got {m.dtype}; threshold the logits first")
            m = m.astype(bool)
        out[text] = m
    return out


def check_heatmaps(name: str, heatmaps: Mapping[str, np.ndarray] | None, num_frames: int) -> dict[str, np.ndarray]:
    """-> ``{expression: float32 [T, h, w]}``; None becomes an empty dict."""
    if heatmaps is None:
        return {}
    out: dict[str, np.ndarray] = {}
    for text, h in heatmaps.items():
        a = np.asarray(h, dtype=np.float32)
        if a.ndim != 3 or a.shape[0] != num_frames or min(a.shape[1:], default=0) < 1:
            raise ExportError(f"{name} of {text!r} must have shape [T={num_frames}, h, w], got {a.shape}")
        out[text] = a
    return out


def check_name(kind: str, name: str) -> str:
    """A file or folder name from user input: one path component, no leading dot."""
    if not isinstance(name, str) or not _SAFE_NAME.match(name) or name in (".", ".."):
        raise ExportError(
            f"{kind} {name!r} is not a plain file name; use letters, digits, '_', '-', '.' or spaces, "
            "with no '/' and no leading dot"
        )
    return name


def check_frame_indices(frame_indices: Sequence[int] | np.ndarray | None, num_frames: int) -> list[int]:
    """Source frame index of each frame (names the PNGs); default 0..T-1."""
    if frame_indices is None:
        return list(range(num_frames))
    idx = [int(i) for i in np.asarray(frame_indices).reshape(-1)]
    if len(idx) != num_frames or any(i < 0 for i in idx) or len(set(idx)) != len(idx):
        raise ExportError(f"frame_indices must be {num_frames} distinct non-negative integers, got {len(idx)} values")
    return idx


def check_timestamps(timestamps: Sequence[float] | np.ndarray | None, num_frames: int, fps: float) -> list[float]:
    """Time in seconds of each frame; default ``i / fps``."""
    if timestamps is None:
        return [i / fps for i in range(num_frames)]
    ts = [float(t) for t in np.asarray(timestamps, dtype=np.float64).reshape(-1)]
    if len(ts) != num_frames or not all(math.isfinite(t) for t in ts):
        raise ExportError(f"timestamps must be {num_frames} finite numbers (one per frame), got {len(ts)} values")
    return ts
