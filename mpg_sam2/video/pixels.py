"""Turn one decoded frame, whatever its pixel format, into an upright RGB uint8 array.

- Grayscale, 10/12/16-bit and YUV formats go through FFmpeg's swscale to ``rgb24`` (16-bit
  values are rounded to 8 bits, not clipped).
- Formats with an alpha channel are composited on **black** (``rgb * alpha / 255``): the model
  never saw transparency, and black is what a masked-out region looks like in our overlays.
- Rotation metadata (the display matrix, counter-clockwise degrees) is applied, so a phone video
  filmed upright comes out upright. Multiples of 90 only; flips in the matrix are ignored.
- An optional downsize (aspect kept, PIL bilinear with antialiasing) happens last.
"""
from __future__ import annotations

import av
import numpy as np
from PIL import Image


def has_alpha(frame: av.VideoFrame) -> bool:
    return any(c.is_alpha for c in frame.format.components)


def rotation_of(frame: av.VideoFrame) -> int:
    """Counter-clockwise display rotation of ``frame`` in degrees, snapped to 0, 90, 180 or 270."""
    rotation = getattr(frame, "rotation", 0) or 0
    return int(round(rotation / 90.0)) % 4 * 90


def upright_size(width: int, height: int, rotation_degrees: int) -> tuple[int, int]:
    """(width, height) of a coded frame once it is displayed with its rotation."""
    return (height, width) if rotation_degrees % 180 else (width, height)


def fit_within(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """(width, height) scaled so the longer side is at most ``max_side``, aspect kept, >= 1 pixel."""
    if max_side is None or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def frame_to_rgb(frame: av.VideoFrame, rotation_degrees: int, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decoded frame -> uint8 ``[H, W, 3]`` RGB, composited, rotated upright, resized to ``size``.

    Args:
        frame: any pixel format FFmpeg decodes.
        rotation_degrees: counter-clockwise rotation to apply (0, 90, 180, 270).
        size: (width, height) of the upright output, or None to keep the decoded size.
    """
    if has_alpha(frame):
        rgba = frame.to_ndarray(format="rgba").astype(np.uint16)
        # +127 rounds the division instead of truncating it.
        rgb = ((rgba[..., :3] * rgba[..., 3:4] + 127) // 255).astype(np.uint8)
    else:
        rgb = frame.to_ndarray(format="rgb24")
    if rotation_degrees:
        rgb = np.rot90(rgb, k=rotation_degrees // 90)
    if size is not None and (rgb.shape[1], rgb.shape[0]) != tuple(size):
        rgb = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize(tuple(size), Image.BILINEAR))
    return np.ascontiguousarray(rgb)
