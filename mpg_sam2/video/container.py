"""Open a file as a video with PyAV and pick the stream and decoder to read it with.

All the "is this file usable at all" decisions live here, so that :func:`probe_video` and the
frame iterators fail the same way with the same message.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import av
import av.error

from .errors import SUPPORTED_FORMATS, CorruptVideoError, NoDecodableFramesError, NotAVideoError, VideoNotFoundError

# FFmpeg opens a single still image as a one-frame "video" with these demuxers. A PNG renamed to
# .mp4 is a user mistake we want to name, not a valid video.
_IMAGE_DEMUXERS = ("image2",)
_IMAGE_DEMUXER_SUFFIX = "_pipe"


@dataclass
class OpenedVideo:
    """A demuxer positioned at the start, the video stream to read and the decoder for it."""

    path: Path
    container: av.container.InputContainer
    stream: av.video.stream.VideoStream
    decoder: av.CodecContext

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> "OpenedVideo":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _container_kind(head: bytes) -> str | None:
    """Name of the video container the first bytes announce, or None if they announce none."""
    if len(head) >= 8 and head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "mp4/mov"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "mkv/webm"
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    return None


def _not_a_video(path: Path, why: str) -> NotAVideoError:
    return NotAVideoError(f"could not open {path} as a video ({why}); is it an {SUPPORTED_FORMATS}?")


def _pick_stream(path: Path, container: av.container.InputContainer) -> av.video.stream.VideoStream:
    # An mp3 or m4a with cover art carries the picture as a one-frame "video" stream.
    streams = [s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
    if not streams and not container.streams:
        raise NoDecodableFramesError(
            f"{path} is a {container.format.name} container with no tracks that hold data: 0 decodable frames; "
            "record or export it again"
        )
    if not streams:
        what = "it has audio but no video stream" if container.streams.audio else "it has no video stream"
        raise _not_a_video(path, what)
    return streams[0]


def _pick_decoder(stream: av.video.stream.VideoStream) -> av.CodecContext:
    # WebM stores VP8/VP9 alpha as a second bitstream that FFmpeg's native decoders ignore; only
    # libvpx decodes it. Matroska tags come upper- or lower-case depending on the writer.
    alpha_mode = {k.lower(): v for k, v in stream.metadata.items()}.get("alpha_mode")
    libvpx = {"vp9": "libvpx-vp9", "vp8": "libvpx"}.get(stream.codec_context.name)
    if alpha_mode == "1" and libvpx is not None and libvpx in av.codecs_available:
        return av.CodecContext.create(libvpx, "r")
    decoder = stream.codec_context
    decoder.thread_type = "AUTO"
    return decoder


def open_video(path: str | os.PathLike[str]) -> OpenedVideo:
    """Open ``path`` for decoding, or raise a :class:`~mpg_sam2.video.errors.VideoError` that says why not.

    Raises:
        VideoNotFoundError: the path does not exist or is a folder.
        NotAVideoError: text, a still image, audio only, or bytes no demuxer recognises.
        CorruptVideoError: the header announces a video container but FFmpeg cannot open it
            (typically an mp4 cut short before its index, the "moov atom").
    """
    path = Path(path)
    if not path.exists():
        raise VideoNotFoundError(f"video file {path} does not exist; check the path")
    if not path.is_file():
        raise VideoNotFoundError(f"{path} is not a file (a folder?); pass the path of a video file")
    if path.stat().st_size == 0:
        raise NotAVideoError(f"{path} is empty (0 bytes); is the upload or copy complete?")
    with open(path, "rb") as f:
        head = f.read(16)
    try:
        container = av.open(str(path), mode="r")
    except av.error.FFmpegError as e:
        kind = _container_kind(head)
        if kind is not None and isinstance(e, av.error.EOFError):
            raise NoDecodableFramesError(
                f"{path} is an {kind} file that ends right after its header: 0 decodable frames; "
                "the recording or export produced no frames, record or export it again"
            ) from e
        if kind is not None:
            raise CorruptVideoError(
                f"{path} starts like an {kind} file but FFmpeg cannot open it ({e.strerror or e}); "
                "the file is probably truncated or damaged, try re-downloading or re-exporting it"
            ) from e
        raise _not_a_video(path, f"FFmpeg: {e.strerror or e}") from e
    try:
        name = container.format.name
        if name in _IMAGE_DEMUXERS or name.endswith(_IMAGE_DEMUXER_SUFFIX):
            raise _not_a_video(path, f"it is a still image ({name.removesuffix(_IMAGE_DEMUXER_SUFFIX)})")
        stream = _pick_stream(path, container)
        return OpenedVideo(path=path, container=container, stream=stream, decoder=_pick_decoder(stream))
    except BaseException:
        container.close()
        raise
