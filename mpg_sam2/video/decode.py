"""Read the frames of a video file lazily, sampled, upright and as RGB uint8.

Frames are decoded and converted one at a time; :func:`iter_frames` never holds more than one,
:func:`load_video` holds the sampled frames as uint8 (``T*H*W*3`` bytes), never as float tensors.
Masks computed on these frames come at their size, which is smaller than the source when
``FrameSampling.max_side`` downsized them.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .container import open_video
from .errors import DownscaledWarning, NoDecodableFramesError, StillImageWarning, TruncatedVideoWarning
from .info import VideoInfo, probe_video
from .pixels import fit_within, frame_to_rgb, rotation_of, upright_size
from .raw_frames import raw_frames
from .sampling import FrameSampling, FrameSelector


@dataclass(frozen=True)
class VideoFrame:
    """One sampled frame.

    Attributes:
        index: position in the sampled sequence (0, 1, 2, ...).
        source_index: position among all decoded frames of the file (names Ref-YouTube-VOS PNGs).
        timestamp_s: presentation time in seconds, relative to the start of the video stream.
        rgb: uint8 ``[H, W, 3]``, upright, alpha composited on black.
    """

    index: int
    source_index: int
    timestamp_s: float
    rgb: np.ndarray


@dataclass(frozen=True)
class DecodedVideo:
    """The sampled frames of a video, in memory.

    Attributes:
        frames: uint8 ``[T, H, W, 3]``.
        timestamps_s: float64 ``[T]``, the frames' presentation times.
        source_indices: int64 ``[T]``, each frame's index among all decoded frames.
        fps: nominal rate of the sampled sequence (source rate, divided by ``every_k``, or capped
            at ``target_fps``); use ``timestamps_s`` for exact timing of variable-rate videos.
        info: what :func:`probe_video` reports for the file (source size, not downsized).
        truncated: True when ``max_frames`` stopped reading before the end.
        message: why and where it was truncated, for the user; None otherwise.
    """

    frames: np.ndarray
    timestamps_s: np.ndarray
    source_indices: np.ndarray
    fps: float
    info: VideoInfo
    truncated: bool
    message: str | None


class _SampledFrames:
    """Iterable over the sampled frames; after iteration it knows whether ``max_frames`` cut it."""

    def __init__(self, path: str | os.PathLike[str], sampling: FrameSampling) -> None:
        if not isinstance(sampling, FrameSampling):
            raise TypeError(f"sampling must be a FrameSampling, got {type(sampling).__name__}")
        self.path = Path(path)
        self.sampling = sampling
        self.truncated = False
        self.message: str | None = None

    def __iter__(self) -> Iterator[VideoFrame]:
        sampling = self.sampling
        with open_video(self.path) as video:
            selector = FrameSelector(sampling)
            problems: list[str] = []
            rotation = 0
            size: tuple[int, int] | None = None
            decoded = kept = 0
            for raw in raw_frames(video, problems):
                decoded += 1
                if size is None:
                    # The first frame fixes orientation and output size, so every frame stacks.
                    rotation = rotation_of(raw.frame)
                    width, height = upright_size(raw.frame.width, raw.frame.height, rotation)
                    size = fit_within(width, height, sampling.max_side)
                    if size != (width, height):
                        warnings.warn(
                            f"{self.path}: frames are {width}x{height}, larger than max_side={sampling.max_side}; "
                            f"they are resized to {size[0]}x{size[1]} and masks come at that size",
                            DownscaledWarning,
                            stacklevel=2,
                        )
                if not selector.keep(raw.source_index, raw.timestamp_s):
                    continue
                if sampling.max_frames is not None and kept >= sampling.max_frames:
                    self.truncated = True
                    self.message = (
                        f"{self.path}: read only the first {kept} sampled frames (max_frames={sampling.max_frames}), "
                        f"stopping at {raw.timestamp_s:.2f} s; raise max_frames or lower target_fps to cover the whole video"
                    )
                    warnings.warn(self.message, TruncatedVideoWarning, stacklevel=2)
                    return
                yield VideoFrame(
                    index=kept,
                    source_index=raw.source_index,
                    timestamp_s=raw.timestamp_s,
                    rgb=frame_to_rgb(raw.frame, rotation, size),
                )
                kept += 1
            if decoded == 0:
                why = f" ({'; '.join(problems)})" if problems else ""
                raise NoDecodableFramesError(
                    f"{self.path} has 0 decodable frames{why}; the file is empty or damaged, "
                    "try re-exporting it as mp4 (H.264)"
                )
            if decoded == 1:
                warnings.warn(
                    f"{self.path} has a single frame: it is segmented as a still image, without motion context",
                    StillImageWarning,
                    stacklevel=2,
                )


def iter_frames(path: str | os.PathLike[str], sampling: FrameSampling | None = None) -> Iterator[VideoFrame]:
    """Yield the sampled frames of ``path`` one at a time (see :class:`FrameSampling`).

    Warnings: :class:`StillImageWarning` (1-frame video), :class:`DownscaledWarning`
    (``max_side``), :class:`TruncatedVideoWarning` (``max_frames`` reached before the end),
    :class:`PartiallyDecodedWarning` (damaged file, the decodable part is returned).

    Raises:
        VideoError: missing file, not a video, damaged beyond opening, 0 decodable frames.
    """
    return iter(_SampledFrames(path, sampling or FrameSampling()))


def load_video(path: str | os.PathLike[str], sampling: FrameSampling | None = None) -> DecodedVideo:
    """Decode the sampled frames of ``path`` into one uint8 ``[T, H, W, 3]`` array.

    Same warnings and errors as :func:`iter_frames`; a ``max_frames`` cut is also recorded in
    ``truncated`` and ``message``.
    """
    sampling = sampling or FrameSampling()
    info = probe_video(path)
    reader = _SampledFrames(path, sampling)
    frames, times, sources = [], [], []
    for frame in reader:
        frames.append(frame.rgb)
        times.append(frame.timestamp_s)
        sources.append(frame.source_index)
    return DecodedVideo(
        frames=np.stack(frames),
        timestamps_s=np.asarray(times, dtype=np.float64),
        source_indices=np.asarray(sources, dtype=np.int64),
        fps=sampling.sampled_fps(info.fps),
        info=info,
        truncated=reader.truncated,
        message=reader.message,
    )
