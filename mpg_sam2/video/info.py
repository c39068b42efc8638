"""What a video is before we decode it all: size, rate, length, rotation, audio."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .container import open_video
from .errors import NoDecodableFramesError
from .pixels import has_alpha, rotation_of, upright_size
from .raw_frames import raw_frames, stream_fps, stream_start_s


@dataclass(frozen=True)
class VideoInfo:
    """Facts about a video file, as its container states them (plus its first frame).

    Attributes:
        path: the file.
        width, height: size of the *upright* frame, i.e. after the rotation metadata is applied.
        fps: nominal frame rate (the average rate for variable-frame-rate files).
        duration_s: length of the video stream in seconds.
        num_frames: frame count; read from the container where it says, else
            ``round(duration_s * fps)`` (``num_frames_exact`` tells which).
        rotation_degrees: counter-clockwise display rotation (0, 90, 180, 270).
        has_audio: whether the file has an audio stream (kept by the video exports).
        has_alpha: whether the decoded pixel format has an alpha channel (always so for gif);
            transparent pixels are composited on black when decoded.
        codec: video codec name as FFmpeg calls it ("h264", "vp9", "gif", ...).
        pixel_format: decoded pixel format ("yuv420p", "gray16le", "rgba", ...).
        container: demuxer name ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", ...).
    """

    path: Path
    width: int
    height: int
    fps: float
    duration_s: float
    num_frames: int
    num_frames_exact: bool
    rotation_degrees: int
    has_audio: bool
    has_alpha: bool
    codec: str
    pixel_format: str
    container: str


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Read the header of ``path`` and decode its first frame (to learn rotation and pixel format).

    Raises:
        VideoError: (a subclass of ``ValueError``) when the file is missing, not a video, damaged
            beyond opening, or has no decodable frame.
    """
    with open_video(path) as video:
        stream = video.stream
        problems: list[str] = []
        first = next(raw_frames(video, problems), None)
        if first is None:
            why = f" ({'; '.join(problems)})" if problems else ""
            raise NoDecodableFramesError(
                f"{video.path} has 0 decodable frames{why}; the file is empty or damaged, "
                "try re-exporting it as mp4 (H.264)"
            )
        fps = stream_fps(stream)
        if stream.duration is not None and stream.time_base is not None:
            duration_s = float(stream.duration * stream.time_base)
        elif video.container.duration is not None:
            # Container duration is in AV_TIME_BASE units (microseconds).
            duration_s = video.container.duration / 1_000_000 - stream_start_s(stream)
        else:
            duration_s = (stream.frames or 1) / fps
        exact = bool(stream.frames)
        num_frames = int(stream.frames) if exact else max(1, round(duration_s * fps))
        rotation = rotation_of(first.frame)
        width, height = upright_size(first.frame.width, first.frame.height, rotation)
        return VideoInfo(
            path=video.path,
            width=width,
            height=height,
            fps=fps,
            duration_s=duration_s,
            num_frames=num_frames,
            num_frames_exact=exact,
            rotation_degrees=rotation,
            has_audio=len(video.container.streams.audio) > 0,
            has_alpha=has_alpha(first.frame),
            codec=stream.codec_context.name,
            pixel_format=first.frame.format.name,
            container=video.container.format.name,
        )
