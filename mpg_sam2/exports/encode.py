"""Write RGB frames as a browser-playable H.264 mp4, optionally with the source's audio.

What browsers need, and what we do: H.264 (libx264) in yuv420p, even width and height (4:2:0
chroma halves both), and the index ("moov atom") at the start of the file (``+faststart``) so
playback starts before the download ends. Odd sizes are **padded** by one black row/column at the
bottom/right rather than cropped, so no mask pixel is lost. Constant frame rate at ``fps``.
"""
from __future__ import annotations

import os
from contextlib import ExitStack
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import av.error
import numpy as np

from mpg_sam2.atomic import atomic_file

from .audio import AudioCopier, has_audio
from .errors import EncodeError, ExportError

# Visually lossless for overlays; "veryfast" keeps CPU encoding well under decode+model time.
_CRF = "18"
_PRESET = "veryfast"


def even_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) rounded up to even numbers, the size the mp4 will have."""
    return width + width % 2, height + height % 2


def _fps_fraction(fps: float) -> Fraction:
    # NTSC rates (29.97 = 30000/1001) stay exact; other rates become a small rational.
    ntsc = Fraction(round(fps * 1001), 1001)
    if abs(float(ntsc) - fps) < 1e-6 and ntsc.denominator == 1001:
        return ntsc
    return Fraction(fps).limit_denominator(1000)


class H264Writer:
    """Context manager: ``write()`` uint8 ``[H, W, 3]`` frames, the mp4 appears at ``path`` on exit.

    The file is written under a temporary name beside ``path`` and renamed when complete; if
    anything fails (or the ``with`` body raises) the temporary file is removed.

    Args:
        path: the .mp4 to write.
        fps: frame rate of the output.
        width, height: size of the frames that will be written (odd sizes are padded).
        audio_source: a video/audio file whose first audio stream is copied as AAC, cut to the
            video's length; ignored when it has no audio stream.
        audio_start_s: where in the source (relative to its video stream start) the audio begins,
            i.e. the timestamp of the first exported frame.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: float,
        width: int,
        height: int,
        audio_source: str | os.PathLike[str] | None = None,
        audio_start_s: float = 0.0,
    ) -> None:
        self.path = Path(path)
        self.fps = fps
        self.size = (width, height)
        self.out_size = even_size(width, height)
        self.audio_source = Path(audio_source) if audio_source is not None else None
        if self.audio_source is not None and not self.audio_source.is_file():
            raise ExportError(f"audio_source {self.audio_source} does not exist; pass the original video or None")
        self.audio_start_s = audio_start_s
        self.frames_written = 0
        self._stack = ExitStack()
        self._container: av.container.OutputContainer | None = None
        self._audio: AudioCopier | None = None

    def __enter__(self) -> "H264Writer":
        tmp = self._stack.enter_context(atomic_file(self.path))
        try:
            self._container = av.open(str(tmp), mode="w", format="mp4", container_options={"movflags": "+faststart"})
            stream = self._container.add_stream("libx264", rate=_fps_fraction(self.fps))
            stream.width, stream.height = self.out_size
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": _CRF, "preset": _PRESET}
            self._video = stream
            if self.audio_source is not None and has_audio(self.audio_source):
                self._audio = AudioCopier(self.audio_source, self.audio_start_s, self._container)
        except BaseException as e:
            self._abort()
            if isinstance(e, av.error.FFmpegError):
                raise EncodeError(f"could not start writing {self.path}: {e}") from e
            raise
        return self

    def write(self, frame: np.ndarray) -> None:
        """Append one uint8 ``[H, W, 3]`` RGB frame of the size given at construction."""
        if self._container is None:
            raise RuntimeError("H264Writer.write() called outside its 'with' block")
        if frame.dtype != np.uint8 or frame.shape != (self.size[1], self.size[0], 3):
            raise ExportError(
                f"frame {self.frames_written} must be uint8 [{self.size[1]}, {self.size[0]}, 3], "
                f"got {frame.dtype} {frame.shape}"
            )
        if self.out_size != self.size:
            padded = np.zeros((self.out_size[1], self.out_size[0], 3), dtype=np.uint8)
            padded[: frame.shape[0], : frame.shape[1]] = frame
            frame = padded
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24").reformat(format="yuv420p")
        vf.pts = self.frames_written
        try:
            for packet in self._video.encode(vf):
                self._container.mux(packet)
            self.frames_written += 1
            if self._audio is not None:
                self._audio.mux_until(self._container, self.frames_written / self.fps)
        except av.error.FFmpegError as e:
            raise EncodeError(f"FFmpeg failed writing frame {self.frames_written} of {self.path}: {e}") from e

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self._abort(exc_type, exc, tb)
            return
        try:
            if self.frames_written == 0:
                raise ExportError(f"no frames were written to {self.path}; an mp4 needs at least one")
            for packet in self._video.encode(None):
                self._container.mux(packet)
            if self._audio is not None:
                self._audio.finish(self._container, self.frames_written / self.fps)
            self._container.close()
            self._container = None
        except BaseException as e:
            self._abort(type(e), e, e.__traceback__)
            if isinstance(e, av.error.FFmpegError):
                raise EncodeError(f"FFmpeg failed finishing {self.path}: {e}") from e
            raise
        self._stack.close()  # renames the temporary file into place

    def _abort(self, *exc_info: object) -> None:
        """Close everything without finishing; the temporary file is deleted."""
        if self._audio is not None:
            self._audio.close()
        if self._container is not None:
            try:
                self._container.close()
            except av.error.FFmpegError:
                pass
            self._container = None
        # Passing the exception into atomic_file makes it delete, not rename.
        self._stack.__exit__(*(exc_info or (RuntimeError, RuntimeError("aborted"), None)))
