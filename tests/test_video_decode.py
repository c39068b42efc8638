"""mpg_sam2.video: decode round trips on generated videos, sampling, and every bad input."""
from __future__ import annotations

import warnings
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from mpg_sam2.video import (
    CorruptVideoError,
    DownscaledWarning,
    FrameSampling,
    InvalidSamplingError,
    NoDecodableFramesError,
    NotAVideoError,
    PartiallyDecodedWarning,
    StillImageWarning,
    TruncatedVideoWarning,
    VideoError,
    VideoNotFoundError,
    iter_frames,
    load_video,
    probe_video,
)
from mpg_sam2.video import decode as decode_module
from video_factory import RED, grey_level, pattern_frames, write_audio_only, write_empty_video, write_video

W, H, T = 97, 61, 10  # odd on purpose

# (file name, encoder settings, mean absolute error allowed against the source pixels)
FORMATS = {
    "mp4-h264": ("v.mp4", dict(codec="libx264", pix_fmt="yuv444p"), 3),  # 4:2:0 needs even sizes
    "webm-vp9": ("v.webm", dict(codec="libvpx-vp9", pix_fmt="yuv420p"), 4),
    "mov-h264": ("v.mov", dict(codec="libx264", pix_fmt="yuv444p"), 3),
    "avi-mjpeg": ("v.avi", dict(codec="mjpeg", pix_fmt="yuvj420p"), 5),
    "mkv-ffv1": ("v.mkv", dict(codec="ffv1", pix_fmt="yuv444p"), 1),
    "gif": ("v.gif", dict(codec="gif", pix_fmt="rgb8", fps=10), 30),  # 3-3-2 bit palette
}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_round_trip_each_format(tmp_path: Path, fmt: str) -> None:
    name, kwargs, tol = FORMATS[fmt]
    fps = kwargs.get("fps", 25)
    src = pattern_frames(T, W, H)
    path = write_video(tmp_path / name, src, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean file decodes without any warning
        video = load_video(path)
    assert video.frames.shape == (T, H, W, 3) and video.frames.dtype == np.uint8
    assert np.abs(video.frames.astype(int) - src).mean() < tol
    np.testing.assert_allclose(video.timestamps_s, np.arange(T) / fps, atol=1e-3)
    np.testing.assert_array_equal(video.source_indices, np.arange(T))
    assert video.fps == pytest.approx(fps)
    assert not video.truncated and video.message is None
    info = video.info
    assert (info.width, info.height, info.num_frames, info.rotation_degrees) == (W, H, T, 0)
    assert info.duration_s == pytest.approx(T / fps, abs=1.5 / fps)
    assert not info.has_audio
    # Frame order kept: the grey background brightens by 18 levels per frame (gif's 3-3-2 bit
    # palette merges neighbours, hence >= 0 step by step and the total rise).
    greys = video.frames[:, -5, -5].astype(int).mean(axis=1)
    assert np.all(np.diff(greys) >= 0) and greys[-1] - greys[0] > 140


def test_probe_reports_codec_audio_and_estimates(tmp_path: Path) -> None:
    src = pattern_frames(T, 96, 60)
    with_audio = probe_video(write_video(tmp_path / "a.mp4", src, audio_hz=440))
    assert with_audio.has_audio and with_audio.codec == "h264" and with_audio.pixel_format == "yuv420p"
    assert with_audio.num_frames == T and with_audio.num_frames_exact
    webm = probe_video(write_video(tmp_path / "a.webm", src, codec="libvpx-vp9", audio_hz=440))
    assert webm.has_audio and webm.codec == "vp9"
    # Matroska does not store a frame count: it is estimated from duration x fps.
    assert not webm.num_frames_exact and webm.num_frames == T
    assert webm.fps == pytest.approx(25)


def test_rotation_metadata_gives_upright_frames(tmp_path: Path) -> None:
    src = pattern_frames(4, 96, 60)
    path = write_video(tmp_path / "phone.mp4", src, rotation=90)
    info = probe_video(path)
    assert (info.rotation_degrees, info.width, info.height) == (90, 60, 96)
    video = load_video(path)
    assert video.frames.shape == (4, 96, 60, 3)
    # Displayed 90 degrees counter-clockwise: the red top-left block ends up bottom-left.
    np.testing.assert_allclose(video.frames[0, -5, 5], RED, atol=12)
    np.testing.assert_allclose(video.frames[0, 5, 5], [grey_level(0)] * 3, atol=12)
    np.testing.assert_allclose(video.frames[0, -5, -5], [grey_level(0)] * 3, atol=12)


VFR_TIMES = [0.0, 0.04, 0.2, 0.21, 0.5, 0.52, 1.0]


def test_variable_frame_rate_uses_timestamps(tmp_path: Path) -> None:
    path = write_video(tmp_path / "vfr.mp4", pattern_frames(7, 96, 60), timestamps=VFR_TIMES)
    full = load_video(path)
    np.testing.assert_allclose(full.timestamps_s, VFR_TIMES, atol=1e-6)
    # 5 fps = a grid point every 0.2 s: first frame at or after 0, 0.2, 0.4 (-> 0.5), 0.6 (-> 1.0).
    by_time = load_video(path, FrameSampling(target_fps=5))
    np.testing.assert_array_equal(by_time.source_indices, [0, 2, 4, 6])
    np.testing.assert_allclose(by_time.timestamps_s, [0.0, 0.2, 0.5, 1.0], atol=1e-6)
    assert by_time.fps == 5.0
    # The frames are the right ones, not just the right timestamps.
    greys = by_time.frames[:, -5, -5, 0].astype(int)
    np.testing.assert_allclose(greys, [grey_level(i) for i in (0, 2, 4, 6)], atol=6)
    assert [f.source_index for f in iter_frames(path, FrameSampling(every_k=3))] == [0, 3, 6]


def test_target_fps_on_constant_rate_and_above_source(tmp_path: Path) -> None:
    path = write_video(tmp_path / "c.mkv", pattern_frames(12), codec="ffv1", pix_fmt="yuv444p", fps=24)
    np.testing.assert_array_equal(load_video(path, FrameSampling(target_fps=6)).source_indices, [0, 4, 8])
    np.testing.assert_array_equal(load_video(path, FrameSampling(target_fps=10)).source_indices, [0, 3, 5, 8, 10])
    higher = load_video(path, FrameSampling(target_fps=100))  # never duplicates frames
    assert len(higher.frames) == 12 and higher.fps == 24


def test_grayscale_16bit_becomes_rgb_uint8(tmp_path: Path) -> None:
    levels = np.array([0, 30000, 65535], dtype=np.uint16)
    gray = np.broadcast_to(levels[:, None, None], (3, H, W)).copy()
    path = write_video(tmp_path / "g16.mkv", gray, codec="ffv1", pix_fmt="gray16le", in_format="gray16le")
    assert probe_video(path).pixel_format == "gray16le"
    video = load_video(path)
    assert video.frames.dtype == np.uint8 and video.frames.shape == (3, H, W, 3)
    for i, level in enumerate(levels):
        assert np.all(np.abs(video.frames[i].astype(int) - round(level / 257)) <= 1)


def test_gray8_becomes_rgb(tmp_path: Path) -> None:
    gray = np.full((3, H, W), 77, dtype=np.uint8)
    path = write_video(tmp_path / "g8.mkv", gray, codec="ffv1", pix_fmt="gray", in_format="gray")
    frames = load_video(path).frames
    assert frames.shape == (3, H, W, 3) and np.all(frames == 77)


def _alpha_frames(n: int, width: int, height: int) -> np.ndarray:
    """RGBA: colour (200, 100, 50) everywhere; alpha 255 left third, 128 middle, 0 right third."""
    rgba = np.zeros((n, height, width, 4), dtype=np.uint8)
    rgba[..., :3] = (200, 100, 50)
    rgba[:, :, : width // 3, 3] = 255
    rgba[:, :, width // 3 : 2 * width // 3, 3] = 128
    return rgba


@pytest.mark.parametrize(
    "name,kwargs,tol",
    [
        ("alpha.mov", dict(codec="png", pix_fmt="rgba"), 1),
        ("alpha.webm", dict(codec="libvpx-vp9", pix_fmt="yuva420p"), 8),  # needs the libvpx decoder
    ],
)
def test_alpha_is_composited_on_black(tmp_path: Path, name: str, kwargs: dict, tol: int) -> None:
    width, height = 96, 60
    path = write_video(tmp_path / name, _alpha_frames(3, width, height), in_format="rgba", **kwargs)
    assert probe_video(path).has_alpha
    f = load_video(path).frames[0].astype(int)
    np.testing.assert_allclose(f[30, 10], [200, 100, 50], atol=tol)
    np.testing.assert_allclose(f[30, 48], np.round(np.array([200, 100, 50]) * 128 / 255), atol=tol)
    np.testing.assert_allclose(f[30, 85], [0, 0, 0], atol=tol)


def test_max_frames_truncates_with_message(tmp_path: Path) -> None:
    path = write_video(tmp_path / "long.mkv", pattern_frames(12), codec="ffv1", pix_fmt="yuv444p")
    with pytest.warns(TruncatedVideoWarning, match="max_frames=5"):
        video = load_video(path, FrameSampling(max_frames=5))
    assert video.truncated and len(video.frames) == 5 and "max_frames=5" in video.message
    # Exactly as many frames as the cap: nothing was cut, so no message.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exact = load_video(path, FrameSampling(max_frames=12))
    assert not exact.truncated and exact.message is None and len(exact.frames) == 12
    with pytest.warns(TruncatedVideoWarning):
        assert len(list(iter_frames(path, FrameSampling(every_k=2, max_frames=3)))) == 3


def test_max_side_downsizes_with_warning(tmp_path: Path) -> None:
    path = write_video(tmp_path / "big.mkv", pattern_frames(3), codec="ffv1", pix_fmt="yuv444p")
    with pytest.warns(DownscaledWarning, match="masks come at that size"):
        video = load_video(path, FrameSampling(max_side=48))
    assert video.frames.shape == (3, 30, 48, 3)  # 97x61 -> 48x30, aspect kept
    assert (video.info.width, video.info.height) == (W, H)  # info keeps the source size
    np.testing.assert_allclose(video.frames[0, 3, 3], RED, atol=10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_video(path, FrameSampling(max_side=97)).frames.shape == (3, H, W, 3)


def test_frames_are_decoded_one_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_video(tmp_path / "lazy.mkv", pattern_frames(T), codec="ffv1", pix_fmt="yuv444p")
    converted = []
    real = decode_module.frame_to_rgb
    monkeypatch.setattr(decode_module, "frame_to_rgb", lambda *a: converted.append(1) or real(*a))
    frames = iter_frames(path)
    assert converted == []  # nothing is decoded before the first next()
    first = next(frames)
    assert len(converted) == 1 and first.rgb.shape == (H, W, 3) and first.index == 0
    second = next(frames)
    assert len(converted) == 2 and second.source_index == 1 and second.timestamp_s == pytest.approx(0.04)


def test_one_frame_video_warns_no_motion(tmp_path: Path) -> None:
    path = write_video(tmp_path / "still.mkv", pattern_frames(1), codec="ffv1", pix_fmt="yuv444p")
    with pytest.warns(StillImageWarning, match="single frame"):
        video = load_video(path)
    assert video.frames.shape == (1, H, W, 3)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(target_fps=0),
        dict(target_fps=-1.0),
        dict(target_fps=float("nan")),
        dict(target_fps=float("inf")),
        dict(target_fps="5"),
        dict(every_k=0),
        dict(every_k=1.5),
        dict(every_k=True),
        dict(max_frames=0),
        dict(max_side=8),
        dict(target_fps=5, every_k=2),
    ],
)
def test_invalid_sampling(kwargs: dict) -> None:
    with pytest.raises(InvalidSamplingError) as e:
        FrameSampling(**kwargs)
    assert isinstance(e.value, ValueError)
    assert str(next(iter(kwargs))) in str(e.value)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(VideoNotFoundError, match="does not exist"):
        probe_video(tmp_path / "nope.mp4")
    with pytest.raises(VideoNotFoundError, match="not a file"):
        load_video(tmp_path)


def _assert_not_a_video(path: Path, detail: str) -> None:
    with pytest.raises(NotAVideoError) as e:
        load_video(path)
    msg = str(e.value)
    assert f"could not open {path} as a video" in msg and "mp4/webm/mov/avi/mkv/gif" in msg and detail in msg


def test_not_a_video(tmp_path: Path) -> None:
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    _assert_not_a_video(text, "FFmpeg")
    png = tmp_path / "picture.mp4"
    Image.fromarray(pattern_frames(1)[0]).save(png, format="PNG")
    _assert_not_a_video(png, "still image (png)")
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(NotAVideoError):
        load_video(noise)
    _assert_not_a_video(write_audio_only(tmp_path / "song.m4a"), "audio but no video stream")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(NotAVideoError, match="empty"):
        probe_video(empty)


def test_truncated_mp4_without_index_is_corrupt(tmp_path: Path) -> None:
    path = write_video(tmp_path / "cut.mp4", pattern_frames(T, 96, 60))  # moov atom at the end
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptVideoError, match="truncated or damaged"):
        load_video(path)


def test_truncated_faststart_mp4_decodes_what_it_can(tmp_path: Path) -> None:
    src = pattern_frames(T, 96, 60)
    path = tmp_path / "cut_fs.mp4"
    container = av.open(str(path), "w", container_options={"movflags": "+faststart"})
    stream = container.add_stream("mjpeg", rate=25)  # intra-only: each frame stands alone
    stream.width, stream.height, stream.pix_fmt = 96, 60, "yuvj420p"
    for i, f in enumerate(src):
        for p in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
            container.mux(p)
    for p in stream.encode():
        container.mux(p)
    container.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.warns(PartiallyDecodedWarning, match="truncated or damaged"):
        video = load_video(path)
    assert 1 <= len(video.frames) < T
    greys = video.frames[:, -5, -5, 0].astype(int)
    np.testing.assert_allclose(greys, [grey_level(i) for i in range(len(greys))], atol=6)


def test_zero_frames(tmp_path: Path) -> None:
    for name in ("zero.mkv", "zero.mp4", "zero.avi"):
        path = write_empty_video(tmp_path / name)
        with pytest.raises(NoDecodableFramesError, match="0 decodable frames"):
            load_video(path)


def test_errors_are_value_errors() -> None:
    for cls in (VideoNotFoundError, NotAVideoError, CorruptVideoError, NoDecodableFramesError, InvalidSamplingError):
        assert issubclass(cls, VideoError) and issubclass(cls, ValueError)
