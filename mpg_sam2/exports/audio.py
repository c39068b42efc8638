"""Copy the audio of the source video into an export, re-encoded as AAC and cut to the video.

AAC is what every browser plays in mp4; the source may carry Opus, Vorbis, PCM or AAC, so we
always decode and re-encode (one code path, and it lets us cut the audio sample-exactly to the
exported frames). Time 0 of the export is ``start_s`` after the start of the source's *video*
stream, the same origin as the timestamps :mod:`mpg_sam2.video` reports.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import av.error
import numpy as np

# Sample rates the AAC encoder accepts; anything else is resampled to 48 kHz.
_AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)
_AAC_FRAME = 1024  # samples per AAC frame


class AudioCopier:
    """Source audio as AAC packets for one output container, handed out as the video advances."""

    def __init__(self, source: Path, start_s: float, container: av.container.OutputContainer) -> None:
        self._input = av.open(str(source), mode="r")
        try:
            in_audio = self._input.streams.audio[0]
            videos = self._input.streams.video
            origin_s = 0.0
            if videos and videos[0].start_time is not None and videos[0].time_base is not None:
                origin_s = float(videos[0].start_time * videos[0].time_base)
            self.rate = in_audio.rate if in_audio.rate in _AAC_RATES else 48000
            self.layout = "mono" if in_audio.layout.nb_channels == 1 else "stereo"
            self.stream = container.add_stream("aac", rate=self.rate, layout=self.layout)
            self.stream.time_base = Fraction(1, self.rate)
            self._window_start = round((origin_s + start_s) * self.rate)  # in samples, source clock
            self._source = self._source_samples(in_audio)
            self._buffer = np.zeros((1 if self.layout == "mono" else 2, 0), dtype=np.float32)
            self._emitted = 0  # samples already encoded, export clock
            self._exhausted = False
        except BaseException:
            self._input.close()
            raise

    def _source_samples(self, in_audio: av.audio.stream.AudioStream) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (first sample position on the source clock, float32 [C, n]) as decoded."""
        resampler = av.AudioResampler(format="fltp", layout=self.layout, rate=self.rate)
        position: int | None = None
        try:
            for frame in self._input.decode(in_audio):
                if position is None:
                    position = round(float(frame.pts * frame.time_base) * self.rate) if frame.pts is not None else 0
                for out in resampler.resample(frame):
                    data = out.to_ndarray()
                    yield position, data
                    position += data.shape[1]
        except av.error.FFmpegError:
            # A damaged audio tail ends the audio early; the video is still worth writing.
            return

    def _fill(self, until: int) -> None:
        """Buffer export-clock samples up to ``until`` (or until the source runs out)."""
        while self._emitted + self._buffer.shape[1] < until and not self._exhausted:
            item = next(self._source, None)
            if item is None:
                self._exhausted = True
                break
            position, data = item
            # Export-clock position of this chunk; samples before the window are dropped, a gap
            # between the window start (or the previous chunk) and this chunk becomes silence.
            at = position - self._window_start
            have = self._emitted + self._buffer.shape[1]
            if at + data.shape[1] <= have:
                continue
            if at > have:
                self._buffer = np.concatenate([self._buffer, np.zeros((self._buffer.shape[0], at - have), np.float32)], 1)
            elif at < have:
                data = data[:, have - at :]
            self._buffer = np.concatenate([self._buffer, data.astype(np.float32)], axis=1)

    def _encode(self, container: av.container.OutputContainer, until: int, final: bool) -> None:
        while True:
            ready = min(self._buffer.shape[1], until - self._emitted)
            if ready <= 0 or (ready < _AAC_FRAME and not final):
                return
            n = min(_AAC_FRAME, ready)
            chunk = np.ascontiguousarray(self._buffer[:, :n])
            self._buffer = self._buffer[:, n:]
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=self.layout)
            frame.sample_rate = self.rate
            frame.pts = self._emitted
            frame.time_base = Fraction(1, self.rate)
            self._emitted += n
            for packet in self.stream.encode(frame):
                container.mux(packet)

    def mux_until(self, container: av.container.OutputContainer, time_s: float) -> None:
        """Encode and mux the audio of export time [.., time_s) in whole AAC frames."""
        until = round(time_s * self.rate)
        self._fill(until)
        self._encode(container, until, final=False)

    def finish(self, container: av.container.OutputContainer, end_s: float) -> None:
        """Mux the rest of the audio up to ``end_s`` (the video's end) and flush the encoder."""
        until = round(end_s * self.rate)
        self._fill(until)
        self._encode(container, until, final=True)
        for packet in self.stream.encode(None):
            container.mux(packet)
        self.close()

    def close(self) -> None:
        self._input.close()


def has_audio(source: Path) -> bool:
    """Whether ``source`` opens and has an audio stream."""
    try:
        with av.open(str(source), mode="r") as c:
            return len(c.streams.audio) > 0
    except av.error.FFmpegError:
        return False
