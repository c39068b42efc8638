"""Make small test videos with PyAV: any container/codec, exact timestamps, rotation, audio.

Frame ``i`` of :func:`pattern_frames` has a background grey level that grows with ``i`` and a
red block in its top-left corner, so tests can tell frames apart and check orientation.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Sequence

import av
import numpy as np

RED = (220, 30, 30)


def grey_level(i: int) -> int:
    return 30 + 18 * i


def pattern_frames(n: int, width: int = 97, height: int = 61) -> np.ndarray:
    """uint8 ``[n, height, width, 3]``: grey level ``grey_level(i)``, red block at top-left."""
    frames = np.empty((n, height, width, 3), dtype=np.uint8)
    for i in range(n):
        frames[i] = grey_level(i)
        frames[i, : height // 3, : width // 3] = RED
    return frames


def write_video(
    path: Path,
    frames: np.ndarray,
    fps: float = 25,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    in_format: str = "rgb24",
    timestamps: Sequence[float] | None = None,
    rotation: int = 0,
    audio_hz: float | None = None,
    options: dict[str, str] | None = None,
) -> Path:
    """Encode ``frames`` (``[T, H, W, C]`` in ``in_format``) to ``path``; container from the suffix.

    ``timestamps`` (seconds) make a variable-frame-rate stream; ``audio_hz`` adds a sine tone as
    long as the video (AAC in mp4/mov/mkv, Opus in webm).
    """
    container = av.open(str(path), mode="w")
    stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
    stream.height, stream.width = frames.shape[1], frames.shape[2]
    stream.pix_fmt = pix_fmt
    if options:
        stream.options = options
    if rotation:
        stream.set_display_rotation(rotation)
    time_base = Fraction(1, 1000) if timestamps is not None else None
    if time_base is not None:
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
    audio = None
    if audio_hz is not None:
        audio = container.add_stream("libopus" if path.suffix == ".webm" else "aac", rate=48000, layout="mono")
    for i, f in enumerate(frames):
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format=in_format)
        if timestamps is not None:
            vf.pts = round(timestamps[i] * 1000)
            vf.time_base = time_base
        else:
            vf.pts = i
        for packet in stream.encode(vf):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    if audio is not None:
        duration = (timestamps[-1] + 1 / fps) if timestamps is not None else len(frames) / fps
        _encode_tone(container, audio, duration, audio_hz)
    container.close()
    return path


def _encode_tone(container, audio, seconds: float, hz: float) -> None:
    """A 48 kHz mono sine tone of ``seconds`` into ``audio`` (960-sample frames suit AAC and Opus)."""
    n = int(seconds * 48000)
    tone = (0.3 * np.sin(2 * np.pi * hz * np.arange(n) / 48000)).astype(np.float32)
    for start in range(0, n, 960):
        af = av.AudioFrame.from_ndarray(tone[None, start : start + 960].copy(), format="flt", layout="mono")
        af.sample_rate = 48000
        af.pts = start
        af.time_base = Fraction(1, 48000)
        for packet in audio.encode(af):
            container.mux(packet)
    for packet in audio.encode():
        container.mux(packet)


def write_audio_only(path: Path, seconds: float = 0.5) -> Path:
    """An .m4a with a sine tone and no video stream."""
    container = av.open(str(path), mode="w", format="mp4")
    audio = container.add_stream("aac", rate=48000, layout="mono")
    _encode_tone(container, audio, seconds, 440.0)
    container.close()
    return path


def write_empty_video(path: Path) -> Path:
    """A container with a declared video stream and not a single frame in it."""
    container = av.open(str(path), mode="w")
    stream = container.add_stream("ffv1", rate=25)
    stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
    container.start_encoding()
    container.close()
    return path
