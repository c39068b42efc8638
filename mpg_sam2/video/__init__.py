"""Video in: open any mp4/webm/mov/avi/mkv/gif with PyAV and read upright RGB uint8 frames lazily."""
from .decode import DecodedVideo, VideoFrame, iter_frames, load_video
from .errors import (
    CorruptVideoError,
    DownscaledWarning,
    InvalidSamplingError,
    NoDecodableFramesError,
    NotAVideoError,
    PartiallyDecodedWarning,
    StillImageWarning,
    TruncatedVideoWarning,
    VideoError,
    VideoNotFoundError,
    VideoWarning,
)
from .info import VideoInfo, probe_video
from .sampling import FrameSampling

__all__ = [
    "CorruptVideoError",
    "DecodedVideo",
    "DownscaledWarning",
    "FrameSampling",
    "InvalidSamplingError",
    "NoDecodableFramesError",
    "NotAVideoError",
    "PartiallyDecodedWarning",
    "StillImageWarning",
    "TruncatedVideoWarning",
    "VideoError",
    "VideoFrame",
    "VideoInfo",
    "VideoNotFoundError",
    "VideoWarning",
    "iter_frames",
    "load_video",
    "probe_video",
]
