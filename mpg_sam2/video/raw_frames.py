"""Decode a video stream frame by frame, with timestamps, surviving damaged packets.

A damaged packet is skipped (its frame is lost) and decoding goes on; after many damaged packets
in a row, or when the demuxer itself fails, we stop and return what was decoded. Either way a
:class:`PartiallyDecodedWarning` says how much was lost; zero frames is the caller's error.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Iterator

import av
import av.error

from .container import OpenedVideo
from .errors import PartiallyDecodedWarning

# Past this many undecodable packets in a row the rest of the file is noise, not a glitch.
_MAX_CONSECUTIVE_BAD_PACKETS = 32


@dataclass
class RawFrame:
    """One decoded frame in display order, before any pixel conversion."""

    source_index: int
    timestamp_s: float
    frame: av.VideoFrame


def stream_fps(stream: av.video.stream.VideoStream) -> float:
    """Nominal frame rate of ``stream``: average, else guessed, else the container's base rate."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return float(rate)
    # No rate anywhere (rare, raw streams): 25 fps is FFmpeg's own default for such streams.
    return 25.0


def stream_start_s(stream: av.video.stream.VideoStream) -> float:
    """Time of the stream's first frame in seconds; timestamps we report are relative to it."""
    if stream.start_time is None or stream.time_base is None:
        return 0.0
    return float(stream.start_time * stream.time_base)


def raw_frames(video: OpenedVideo, problems: list[str] | None = None) -> Iterator[RawFrame]:
    """Yield the decoded frames of ``video`` in display order, one at a time.

    ``timestamp_s`` is the presentation time relative to the stream start; frames without a
    timestamp get the previous one plus one nominal frame period. When iteration ends, what went
    wrong (if anything) is appended to ``problems`` so a caller that got zero frames can say why.
    """
    stream, decoder = video.stream, video.decoder
    time_base = stream.time_base
    start_s = stream_start_s(stream)
    period_s = 1.0 / stream_fps(stream)
    index = 0
    last_s = -period_s
    bad_packets = 0
    consecutive_bad = 0
    stop_reason: str | None = None

    def wrap(frame: av.VideoFrame) -> RawFrame:
        nonlocal index, last_s
        if frame.pts is not None and time_base is not None:
            t = float(frame.pts * time_base) - start_s
        else:
            t = last_s + period_s
        raw = RawFrame(source_index=index, timestamp_s=t, frame=frame)
        index += 1
        last_s = t
        return raw

    packets = video.container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            break
        except av.error.FFmpegError as e:
            stop_reason = f"the container could not be read past frame {index} ({e.strerror or e})"
            break
        try:
            frames = decoder.decode(packet)
        except av.error.FFmpegError:
            bad_packets += 1
            consecutive_bad += 1
            if consecutive_bad > _MAX_CONSECUTIVE_BAD_PACKETS:
                stop_reason = f"{consecutive_bad} packets in a row could not be decoded"
                break
            continue
        consecutive_bad = 0
        for frame in frames:
            yield wrap(frame)
    try:
        # Frames the decoder still holds (B-frame reordering, frame threads).
        for frame in decoder.decode(None):
            yield wrap(frame)
    except av.error.FFmpegError:
        pass

    listed = stream.frames or 0
    found: list[str] = []
    if stop_reason:
        found.append(stop_reason)
    if bad_packets:
        found.append(f"{bad_packets} damaged packet(s) were skipped")
    if listed > index and not found:
        found.append(f"the header lists {listed} frames but the file ends after {index}")
    if problems is not None:
        problems.extend(found)
    if found and index > 0:
        warnings.warn(
            f"{video.path}: decoded {index} frame(s) but {'; '.join(found)}; the file is probably "
            "truncated or damaged, results cover only the decoded part",
            PartiallyDecodedWarning,
            stacklevel=3,
        )
