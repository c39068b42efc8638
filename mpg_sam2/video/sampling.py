"""Which decoded frames to keep: every frame, every k-th frame, or a target frame rate by time.

Sampling by ``target_fps`` looks at the frames' presentation timestamps, never at their indices:
a variable-frame-rate phone video (frames at 0, 0.04, 0.2, 0.21 s, ...) sampled at 5 fps keeps
the first frame at or after each 0.2 s grid point, so the kept frames are spread evenly in time.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import InvalidSamplingError

# Matroska/WebM store timestamps in whole milliseconds (24 fps frame 8 is at 0.333 s, not 1/3 s):
# a frame this close before a grid point counts as on it.
_TIME_EPS_S = 1.5e-3


def _check_positive_int(name: str, value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidSamplingError(f"{name} must be a positive integer or None, got {value!r}")


@dataclass(frozen=True)
class FrameSampling:
    """How to sample frames from a video. The default keeps every frame, without a cap.

    Attributes:
        target_fps: keep about this many frames per second, chosen by timestamp. Above the
            source rate every frame is kept (frames are never duplicated).
        every_k: keep source frames 0, k, 2k, ... Exclusive with ``target_fps``.
        max_frames: stop after this many kept frames; the result is marked truncated.
        max_side: downsize frames whose longer side exceeds this (aspect kept). Masks are then
            computed, and returned, at the smaller size.
    """

    target_fps: float | None = None
    every_k: int | None = None
    max_frames: int | None = None
    max_side: int | None = None

    def __post_init__(self) -> None:
        if self.target_fps is not None:
            if isinstance(self.target_fps, bool) or not isinstance(self.target_fps, (int, float)):
                raise InvalidSamplingError(f"target_fps must be a number or None, got {self.target_fps!r}")
            if not math.isfinite(self.target_fps) or self.target_fps <= 0:
                raise InvalidSamplingError(f"target_fps must be a finite number > 0, got {self.target_fps!r}")
        _check_positive_int("every_k", self.every_k)
        _check_positive_int("max_frames", self.max_frames)
        _check_positive_int("max_side", self.max_side)
        if self.max_side is not None and self.max_side < 16:
            raise InvalidSamplingError(f"max_side must be at least 16 pixels, got {self.max_side}")
        if self.target_fps is not None and self.every_k is not None:
            raise InvalidSamplingError(
                f"give either target_fps ({self.target_fps}) or every_k ({self.every_k}), not both"
            )

    def sampled_fps(self, source_fps: float) -> float:
        """Nominal frame rate of the sampled sequence, for a source at ``source_fps``."""
        if self.every_k is not None:
            return source_fps / self.every_k
        if self.target_fps is not None:
            return min(float(self.target_fps), source_fps)
        return source_fps


class FrameSelector:
    """Stateful keep/drop decision for a stream of (source index, timestamp) pairs in display order."""

    def __init__(self, sampling: FrameSampling) -> None:
        self._sampling = sampling
        self._start_s: float | None = None
        self._grid_index = 0  # next grid point is start + grid_index / target_fps (no float drift)

    def keep(self, source_index: int, timestamp_s: float) -> bool:
        s = self._sampling
        if s.every_k is not None:
            return source_index % s.every_k == 0
        if s.target_fps is None:
            return True
        if self._start_s is None:
            self._start_s = timestamp_s
        eps = min(_TIME_EPS_S, 0.25 / s.target_fps)
        if timestamp_s + eps < self._start_s + self._grid_index / s.target_fps:
            return False
        # Skip every grid point this frame already covers, so a long gap yields one frame, not a burst.
        while self._start_s + self._grid_index / s.target_fps <= timestamp_s + eps:
            self._grid_index += 1
        return True
