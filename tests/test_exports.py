"""mpg_sam2.exports: every export read back and checked, atomic writes, input errors."""
from __future__ import annotations

import json
import re
import subprocess
import zipfile
from pathlib import Path

import av
import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_util

from mpg_sam2.exports import (
    EXPORTS,
    EXPRESSION_PALETTE,
    ExportError,
    H264Writer,
    colorize,
    export_all,
    expression_color,
    viridis_lut,
    write_coco_rle,
    write_mask_video,
    write_overlay_video,
    write_palette_pngs,
    write_png_masks,
    write_side_by_side_video,
)
from mpg_sam2.exports import archive as archive_module
from mpg_sam2.exports import coco_rle as coco_module
from mpg_sam2.exports import overlay_video as overlay_module
from mpg_sam2.exports import side_by_side as sbs_module
from video_factory import pattern_frames, write_video

T, H, W, FPS = 9, 61, 97, 12.0
# pycocotools 2.0.x calls np.array(copy=False) on numpy 2; harmless for these tests.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
EXPRESSIONS = ("the man in red", "a dog", "ein Fahrrad, grün")


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return pattern_frames(T, W, H)


@pytest.fixture(scope="module")
def masks() -> dict[str, np.ndarray]:
    m = {e: np.zeros((T, H, W), dtype=bool) for e in EXPRESSIONS}
    for i in range(T):
        m[EXPRESSIONS[0]][i, 10:40, 5 + i : 30 + i] = True
        m[EXPRESSIONS[1]][i, 30:55, 20:70] = True  # overlaps expression 0
    m[EXPRESSIONS[2]][:, 0, 0] = True  # a corner pixel: the first RLE run is empty
    m[EXPRESSIONS[2]][4] = True  # a full frame
    return m


@pytest.fixture(scope="module")
def heatmaps() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {e: rng.random((T, 14, 14), dtype=np.float32) for e in EXPRESSIONS[:2]}


@pytest.fixture(scope="module")
def audio_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1 s source video with a 440 Hz tone, as the original upload would be."""
    path = tmp_path_factory.mktemp("src") / "source.mp4"
    return write_video(path, pattern_frames(12, 96, 60), fps=FPS, audio_hz=440)


def ffprobe(path: Path) -> dict:
    """Stream facts from the `ffmpeg -i` banner of imageio-ffmpeg's own binary (not PyAV)."""
    out = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    text = out.stderr
    video = re.search(r"Video: (\w+).*?, (\w+)\(.*?, (\d+)x(\d+)", text)
    audio = re.search(r"Audio: (\w+)", text)
    duration = re.search(r"Duration: (\d+):(\d+):([\d.]+)", text)
    h, m, s = duration.groups()
    return {
        "vcodec": video.group(1),
        "pix_fmt": video.group(2),
        "size": (int(video.group(3)), int(video.group(4))),
        "acodec": audio.group(1) if audio else None,
        "duration_s": int(h) * 3600 + int(m) * 60 + float(s),
    }


def decoded(path: Path) -> tuple[np.ndarray, float | None]:
    """All frames as RGB and the audio stream's duration in seconds (None without audio)."""
    with av.open(str(path)) as c:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    with av.open(str(path)) as c:
        audio = None
        if c.streams.audio:
            samples = sum(f.samples for f in c.decode(audio=0))
            audio = samples / c.streams.audio[0].rate
    return frames, audio


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*"))


def assert_browser_mp4(path: Path, size: tuple[int, int], with_audio: bool) -> dict:
    probe = ffprobe(path)
    assert probe["vcodec"] == "h264" and probe["pix_fmt"] == "yuv420p" and probe["size"] == size
    assert size[0] % 2 == 0 and size[1] % 2 == 0
    assert probe["acodec"] == ("aac" if with_audio else None)
    assert probe["duration_s"] == pytest.approx(T / FPS, abs=0.05)
    data = path.read_bytes()
    assert 0 <= data.find(b"moov") < data.find(b"mdat")  # +faststart: the index comes first
    return probe


# ---------------------------------------------------------------- videos


def test_overlay_video_with_audio(tmp_path: Path, frames, masks, audio_video) -> None:
    path = write_overlay_video(tmp_path / "o.mp4", frames, FPS, masks, audio_source=audio_video)
    assert_browser_mp4(path, (98, 62), with_audio=True)  # 97x61 padded by one pixel
    got, audio_s = decoded(path)
    assert got.shape == (T, 62, 98, 3)
    assert audio_s == pytest.approx(T / FPS, abs=0.03)  # cut to the video, not the 1 s source
    # The padding row/column is black (a little chroma bleeds in from the 2x2 4:2:0 blocks).
    assert got[:, -1].mean() < 6 and got[:, :, -1].mean() < 6 and got[:, -2].mean() > 25
    f = got[0, :61, :97].astype(int)
    # Outside every mask the frame is untouched (up to H.264 loss); inside, tinted by the colour.
    assert np.abs(f[58, 90] - frames[0, 58, 90]).max() <= 10
    tint = 0.55 * frames[0, 45, 45] + 0.45 * np.array(expression_color(1))
    assert np.abs(f[45, 45] - tint).max() <= 12
    assert leftovers(tmp_path) == ["o.mp4"]


def test_opus_audio_from_webm_becomes_aac(tmp_path: Path, frames, masks) -> None:
    src = write_video(tmp_path / "src.webm", pattern_frames(12, 96, 60), fps=FPS, codec="libvpx-vp9", audio_hz=440)
    path = write_overlay_video(tmp_path / "o.mp4", frames, FPS, masks, audio_source=src)
    assert ffprobe(path)["acodec"] == "aac"
    assert decoded(path)[1] == pytest.approx(T / FPS, abs=0.03)


def test_overlay_audio_follows_start_offset(tmp_path: Path, frames, masks, audio_video) -> None:
    # Frames starting 0.5 s into the source: only 0.5 s of audio remains for 0.75 s of video.
    path = write_overlay_video(tmp_path / "o.mp4", frames, FPS, masks, audio_source=audio_video, audio_start_s=0.5)
    _, audio_s = decoded(path)
    assert audio_s == pytest.approx(0.5, abs=0.03)


def test_overlay_without_audio_source_has_no_audio(tmp_path: Path, frames, masks) -> None:
    silent = write_video(tmp_path / "silent.mp4", pattern_frames(4, 96, 60))
    for src in (None, silent):
        path = write_overlay_video(tmp_path / "o.mp4", frames, FPS, masks, audio_source=src)
        assert_browser_mp4(path, (98, 62), with_audio=False)


def test_even_size_is_kept(tmp_path: Path, masks) -> None:
    even = pattern_frames(T, 96, 60)
    m = {k: v[:, :60, :96] for k, v in masks.items()}
    path = write_overlay_video(tmp_path / "e.mp4", even, FPS, m)
    assert ffprobe(path)["size"] == (96, 60)


def test_mask_video(tmp_path: Path, masks) -> None:
    path = write_mask_video(tmp_path / "m.mp4", masks, FPS)
    assert_browser_mp4(path, (98, 62), with_audio=False)
    got, _ = decoded(path)
    assert got.shape[0] == T
    f = got[1].astype(int)
    assert np.abs(f[20, 10] - expression_color(0)).max() <= 20  # only expression 0 here
    assert np.abs(f[50, 60] - expression_color(1)).max() <= 20  # only expression 1
    assert np.abs(f[35, 22] - expression_color(1)).max() <= 20  # both: the later one is on top
    assert f[58, 90].max() <= 16  # background black


def test_side_by_side_layout_and_legend(tmp_path: Path, frames, masks, heatmaps, audio_video, monkeypatch) -> None:
    monkeypatch.setattr(sbs_module, "MIN_PANEL_WIDTH", 0)  # keep the panels at frame size here
    path = write_side_by_side_video(tmp_path / "s.mp4", frames, FPS, masks, heatmaps, heatmaps, audio_source=audio_video)
    probe = assert_browser_mp4(path, ffprobe(path)["size"], with_audio=True)
    width, height = probe["size"]
    assert width == 4 * W + 3 * 2 + (4 * W + 6) % 2  # four full-size panels with 2-pixel gaps
    assert height > 3 * H  # one row per expression plus the header
    header_h = sbs_module._layout(("original", "mask prior", "final mask", "attention"), EXPRESSIONS, W, H).header.shape[0]
    assert height == header_h + 3 * (H + 2) + (header_h + 3 * (H + 2)) % 2
    first = decoded(path)[0][0].astype(int)
    header = first[:header_h]
    for k in range(len(EXPRESSIONS)):  # each legend swatch is in the header
        assert (np.abs(header - expression_color(k)).max(axis=2) <= 24).sum() >= 30
    assert (header.max(axis=2) > 200).sum() > 100  # light title and legend text
    row = lambda k: header_h + k * (H + 2) + 2 + H // 2  # noqa: E731  (centre line of row k)
    # Expression 2 has no heatmaps: its prior panel is the grey "n/a" panel; expression 0 has one.
    assert np.abs(first[row(2), W + 2 + W // 2] - 64).max() <= 10
    assert np.abs(first[row(0), W + 2 : 2 * W + 2] - 64).max() > 40
    # Final-mask column of row 1 shows expression 1 only (tinted inside its box).
    tint = 0.55 * frames[0, 45, 45] + 0.45 * np.array(expression_color(1))
    assert np.abs(first[header_h + 1 * (H + 2) + 2 + 45, 2 * (W + 2) + 45] - tint).max() <= 14


def test_side_by_side_scales_small_videos_up(tmp_path: Path) -> None:
    small = np.zeros((2, 40, 60, 3), dtype=np.uint8)
    m = {"x": np.zeros((2, 40, 60), dtype=bool)}
    path = write_side_by_side_video(tmp_path / "small.mp4", small, FPS, m)
    layout = sbs_module._layout(("original", "final mask"), ["x"], 60, 40)
    assert layout.panel_w == sbs_module.MIN_PANEL_WIDTH and layout.panel_h == 160
    width, _ = ffprobe(path)["size"]
    assert width >= 2 * sbs_module.MIN_PANEL_WIDTH


def test_side_by_side_stays_within_1920(tmp_path: Path) -> None:
    wide = np.zeros((2, 50, 1001, 3), dtype=np.uint8)
    m = {"x": np.zeros((2, 50, 1001), dtype=bool)}
    att = {"x": np.zeros((2, 8, 8), dtype=np.float32)}
    path = write_side_by_side_video(tmp_path / "w.mp4", wide, FPS, m, att, att)
    width, height = ffprobe(path)["size"]
    assert 1900 <= width <= 1920 and width % 2 == 0 and height % 2 == 0


def test_h264_writer_rejects_wrong_frames_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(ExportError, match=r"uint8 \[61, 97, 3\]"):
        with H264Writer(tmp_path / "x.mp4", FPS, 97, 61) as w:
            w.write(np.zeros((61, 97, 3), np.uint8))
            w.write(np.zeros((60, 97, 3), np.uint8))
    with pytest.raises(ExportError, match="no frames"):
        with H264Writer(tmp_path / "y.mp4", FPS, 97, 61):
            pass
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------- PNGs


def test_png_masks_ref_youtube_vos_layout(tmp_path: Path, masks) -> None:
    source_idx = [5 * i for i in range(T)]
    root = write_png_masks(tmp_path / "Annotations", "vid_01", masks, source_idx)
    assert root == tmp_path / "Annotations" / "vid_01"
    assert sorted(p.name for p in root.iterdir()) == ["0", "1", "2"]
    names = sorted(p.name for p in (root / "0").iterdir())
    assert names == [f"{5 * i:05d}.png" for i in range(T)] and names[2] == "00010.png"
    for k, mask in enumerate(masks.values()):
        for i, s in enumerate(source_idx):
            img = Image.open(root / str(k) / f"{s:05d}.png")
            a = np.asarray(img)
            assert img.mode == "L" and set(np.unique(a)) <= {0, 255}
            np.testing.assert_array_equal(a == 255, mask[i])


def test_palette_pngs(tmp_path: Path, masks) -> None:
    root = write_palette_pngs(tmp_path, "vid", masks)
    assert sorted(p.name for p in root.iterdir()) == [f"{i:05d}.png" for i in range(T)]
    m = list(masks.values())
    for i in range(T):
        img = Image.open(root / f"{i:05d}.png")
        assert img.mode == "P"
        idx = np.asarray(img)
        expected = np.zeros((H, W), np.uint8)
        for k in range(3):
            expected[m[k][i]] = k + 1  # later expression wins on overlap
        np.testing.assert_array_equal(idx, expected)
    overlap = m[0][0] & m[1][0]
    assert overlap.any() and np.all(np.asarray(Image.open(root / "00000.png"))[overlap] == 2)
    palette = Image.open(root / "00000.png").getpalette()[:12]
    assert palette == [0, 0, 0, *expression_color(0), *expression_color(1), *expression_color(2)]


# ---------------------------------------------------------------- COCO RLE


def test_coco_json_decodes_to_the_masks(tmp_path: Path, masks) -> None:
    ts = np.arange(T) * 0.25 + 1.0
    path = write_coco_rle(tmp_path / "r.json", masks, FPS, timestamps=ts, frame_indices=range(3, 3 + T), video_name="v")
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["fps"] == FPS and [e["text"] for e in doc["expressions"]] == list(EXPRESSIONS)
    records = doc["annotations"]
    assert len(records) == len(EXPRESSIONS) * T
    for rec in records:
        k, i = rec["expression_id"], rec["frame_index"] - 3
        m = masks[EXPRESSIONS[k]][i]
        assert rec["expression"] == EXPRESSIONS[k] and rec["timestamp_s"] == pytest.approx(ts[i])
        rle = {"size": rec["segmentation"]["size"], "counts": rec["segmentation"]["counts"].encode()}
        np.testing.assert_array_equal(mask_util.decode(rle), m)
        assert rec["segmentation"]["size"] == [H, W]
        assert rec["area"] == int(m.sum()) == int(mask_util.area(rle))
        assert rec["bbox"] == [int(v) for v in mask_util.toBbox(rle)]


def test_coco_json_uncompressed_counts(tmp_path: Path, masks) -> None:
    path = write_coco_rle(tmp_path / "u.json", masks, FPS, compressed=False)
    rec = json.loads(path.read_text())["annotations"][T + 2]
    assert isinstance(rec["segmentation"]["counts"], list)
    rle = mask_util.frPyObjects(rec["segmentation"], H, W)
    np.testing.assert_array_equal(mask_util.decode(rle), masks[EXPRESSIONS[1]][2])


# ---------------------------------------------------------------- zip and export_all


def test_export_all_and_archive(tmp_path: Path, frames, masks, heatmaps, audio_video) -> None:
    out = tmp_path / "out"
    result = export_all(
        out, "clip", frames, FPS, masks, heatmaps, heatmaps, timestamps=np.arange(T) / FPS,
        audio_source=audio_video, frame_indices=range(T),
    )
    assert len(result.paths()) == len(EXPORTS)
    assert all(p.exists() for p in result.paths())
    assert ffprobe(result.overlay_video)["acodec"] == "aac"
    with zipfile.ZipFile(result.archive) as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read("manifest.json"))
        assert manifest["num_frames"] == T and manifest["fps"] == FPS and manifest["video"] == "clip"
        assert [e["text"] for e in manifest["expressions"]] == list(EXPRESSIONS)
        assert [e["color"] for e in manifest["expressions"]][0] == "#e69f00"
        listed = {f["name"] for f in manifest["files"]}
        assert names == listed | {"manifest.json"}
        expected = {"clip_overlay.mp4", "clip_masks.mp4", "clip_side_by_side.mp4", "clip_rle.json"}
        expected |= {f"Annotations/clip/{k}/{i:05d}.png" for k in range(3) for i in range(T)}
        expected |= {f"Palette/clip/{i:05d}.png" for i in range(T)}
        assert listed == expected
        for name in ("clip_overlay.mp4", "clip_rle.json", "Annotations/clip/1/00003.png"):
            assert zf.read(name) == (out / name).read_bytes()
    assert not any(p.name.startswith(".") for p in out.rglob("*"))


def test_export_all_subset(tmp_path: Path, frames, masks) -> None:
    result = export_all(tmp_path, "v", frames, FPS, masks, which=("png", "coco"))
    assert result.overlay_video is None and result.archive is None
    assert leftovers(tmp_path) == sorted(["Annotations", "v", "0", "1", "2", "v_rle.json"] + [f"{i:05d}.png" for i in range(T)] * 3)


def test_manifest_records_click_corrections(tmp_path: Path, frames, masks) -> None:
    correction = {"expression": 1, "frame": 2, "points": [[3.0, 4.0, 1], [5.0, 1.0, 0]]}
    result = export_all(tmp_path / "out", "v", frames, FPS, masks, which=("png", "zip"),
                        corrections={EXPRESSIONS[1]: [correction]})
    with zipfile.ZipFile(result.archive) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    assert [e["corrections"] for e in manifest["expressions"]] == [[], [correction], []]
    with pytest.raises(ExportError, match="corrections name expressions without masks"):
        export_all(tmp_path / "bad", "v", frames, FPS, masks, which=("zip",), corrections={"a cat": [correction]})


# ---------------------------------------------------------------- nothing half-written


class Boom(RuntimeError):
    pass


def _fail_on_call(n: int, real):
    calls = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise Boom("injected failure")
        return real(*args, **kwargs)

    return wrapper


def test_video_failure_mid_write_leaves_nothing(tmp_path: Path, frames, masks, monkeypatch) -> None:
    old = tmp_path / "o.mp4"
    old.write_bytes(b"previous export")
    monkeypatch.setattr(overlay_module, "overlay", _fail_on_call(4, overlay_module.overlay))
    with pytest.raises(Boom):
        write_overlay_video(old, frames, FPS, masks)
    assert leftovers(tmp_path) == ["o.mp4"] and old.read_bytes() == b"previous export"
    monkeypatch.setattr(sbs_module, "heatmap_rgb", _fail_on_call(3, sbs_module.heatmap_rgb))
    with pytest.raises(Boom):
        write_side_by_side_video(tmp_path / "s.mp4", frames, FPS, masks, {EXPRESSIONS[0]: np.zeros((T, 4, 4))})
    assert leftovers(tmp_path) == ["o.mp4"]


def test_png_failure_mid_write_leaves_nothing(tmp_path: Path, masks, monkeypatch) -> None:
    real_save = Image.Image.save
    monkeypatch.setattr(Image.Image, "save", _fail_on_call(5, real_save))
    with pytest.raises(Boom):
        write_png_masks(tmp_path, "vid", masks)
    monkeypatch.setattr(Image.Image, "save", _fail_on_call(5, real_save))
    with pytest.raises(Boom):
        write_palette_pngs(tmp_path, "pal", masks)
    assert leftovers(tmp_path) == []


def test_json_and_zip_failure_leave_nothing(tmp_path: Path, masks, monkeypatch) -> None:
    monkeypatch.setattr(coco_module.json, "dump", _fail_on_call(1, json.dump))
    with pytest.raises(Boom):
        write_coco_rle(tmp_path / "r.json", masks, FPS)
    assert leftovers(tmp_path) == []
    (tmp_path / "a.txt").write_text("x")
    (tmp_path / "b.txt").write_text("y")
    monkeypatch.setattr(archive_module.zipfile.ZipFile, "write", _fail_on_call(2, zipfile.ZipFile.write))
    with pytest.raises(Boom):
        archive_module.write_archive(tmp_path / "all.zip", tmp_path, [tmp_path / "a.txt", tmp_path / "b.txt"], {})
    assert leftovers(tmp_path) == ["a.txt", "b.txt"]


def test_export_all_failure_removes_what_it_wrote(tmp_path: Path, frames, masks, monkeypatch) -> None:
    monkeypatch.setattr(Image.Image, "save", _fail_on_call(7, Image.Image.save))
    with pytest.raises(Boom):
        export_all(tmp_path / "out", "clip", frames, FPS, masks)
    assert leftovers(tmp_path / "out") == []


# ---------------------------------------------------------------- inputs and colours


@pytest.mark.parametrize(
    "change,match",
    [
        (dict(frames=np.zeros((T, H, W, 3), np.float32)), "uint8"),
        (dict(frames=np.zeros((0, H, W, 3), np.uint8)), "T = 0"),
        (dict(masks={"a": np.zeros((T, H, W + 1), bool)}), "shape"),
        (dict(masks={"a": np.full((T, H, W), 0.5)}), "bool"),
        (dict(masks={"  ": np.zeros((T, H, W), bool)}), "non-empty"),
        (dict(masks={}), "non-empty dict"),
        (dict(fps=0), "fps"),
        (dict(fps=float("nan")), "fps"),
        (dict(video_name="../etc"), "plain file name"),
        (dict(video_name=".hidden"), "plain file name"),
        (dict(which=("overlay", "gif")), "subset"),
        (dict(priors={"a": np.zeros((T - 1, 4, 4))}), "priors"),
        (dict(timestamps=[0.0]), "timestamps"),
        (dict(frame_indices=[0] * T), "distinct"),
        (dict(audio_source="/nonexistent.mp4"), "does not exist"),
    ],
)
def test_export_all_rejects_bad_input_before_writing(tmp_path: Path, frames, change, match) -> None:
    kwargs = dict(
        out_dir=tmp_path / "out", video_name="v", frames=frames, fps=FPS, masks={"a": np.zeros((T, H, W), bool)}
    )
    kwargs.update(change)
    with pytest.raises(ExportError, match=match) as e:
        export_all(**kwargs)
    assert isinstance(e.value, ValueError)
    assert not (tmp_path / "out").exists() or leftovers(tmp_path / "out") == []


def test_palette_and_colormap() -> None:
    assert len(set(EXPRESSION_PALETTE)) == len(EXPRESSION_PALETTE) and (0, 0, 0) not in EXPRESSION_PALETTE
    assert expression_color(7) == expression_color(0)
    lut = viridis_lut()
    assert lut.shape == (256, 3) and tuple(lut[0]) == (68, 1, 84) and tuple(lut[255]) == (253, 231, 37)
    luma = lut.astype(float) @ [0.299, 0.587, 0.114]
    # Perceptual maps brighten monotonically (8-bit rounding makes a few steps flat).
    assert np.all(np.diff(luma) >= 0) and (np.diff(luma) == 0).sum() < 8
    heat = colorize(np.array([[0.0, 0.5, 1.0, 2.0, np.nan]]))
    np.testing.assert_array_equal(heat[0, [0, 2, 3, 4]], lut[[0, 255, 255, 0]])
