"""Errors and warnings raised while reading a video.

Every error is a ``ValueError`` (the file the user gave is the bad argument) and names the file,
what was wrong with it and what to try instead. Warnings have their own categories so a caller
(the app, the CLI) can turn each into a message for the user or silence it on purpose.
"""
from __future__ import annotations

# Named in every "not a video" message so the user knows what we can read.
SUPPORTED_FORMATS = "mp4/webm/mov/avi/mkv/gif"


class VideoError(ValueError):
    """Base class of everything that makes a video file unusable."""


class VideoNotFoundError(VideoError):
    """The path does not exist or is not a file."""


class NotAVideoError(VideoError):
    """The file opens as something else (text, a still image, audio only) or not at all."""


class CorruptVideoError(VideoError):
    """The file looks like a video container but cannot be opened or decoded."""


class NoDecodableFramesError(CorruptVideoError):
    """The container opened but not a single frame could be decoded."""


class InvalidSamplingError(VideoError):
    """A :class:`~mpg_sam2.video.sampling.FrameSampling` value is out of range."""


class VideoWarning(UserWarning):
    """Base class of the warnings issued while reading a video."""


class StillImageWarning(VideoWarning):
    """The video has a single frame, so there is no motion context to use."""


class DownscaledWarning(VideoWarning):
    """Frames were larger than ``max_side`` and were resized; masks come at the smaller size."""


class TruncatedVideoWarning(VideoWarning):
    """``max_frames`` stopped reading before the end of the video."""


class PartiallyDecodedWarning(VideoWarning):
    """Decoding stopped at a damaged or missing part; the frames before it are returned."""
