"""Write every export of one segmented video into one folder, then zip it all.

Layout of ``out_dir`` (``<v>`` is the video name)::

    <v>_overlay.mp4          frames with coloured masks, source audio
    <v>_masks.mp4            masks on black
    <v>_side_by_side.mp4     original | mask prior | final mask | attention
    Annotations/<v>/<expression_id>/<frame>.png   binary, Ref-YouTube-VOS layout
    Palette/<v>/<frame>.png                       all expressions in one palette PNG
    <v>_rle.json             COCO RLE, one record per (expression, frame)
    <v>.zip                  all of the above + manifest.json

Every input is checked before anything is written, and if a writer fails the files this call
already wrote are removed, so a failed export leaves nothing behind.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Collection, Mapping, Sequence

import numpy as np

from .archive import write_archive
from .coco_rle import write_coco_rle
from .colors import color_hex, expression_color
from .errors import ExportError
from .inputs import (
    check_fps,
    check_frame_indices,
    check_frames,
    check_heatmaps,
    check_masks,
    check_name,
    check_timestamps,
)
from .mask_video import write_mask_video
from .overlay_video import write_overlay_video
from .palette_png import write_palette_pngs
from .png_masks import write_png_masks
from .side_by_side import write_side_by_side_video

EXPORTS = ("overlay", "mask_video", "side_by_side", "png", "palette", "coco", "zip")


@dataclass(frozen=True)
class ExportResult:
    """Paths of what :func:`export_all` wrote; None for exports not asked for."""

    overlay_video: Path | None = None
    mask_video: Path | None = None
    side_by_side_video: Path | None = None
    png_dir: Path | None = None
    palette_dir: Path | None = None
    coco_json: Path | None = None
    archive: Path | None = None

    def paths(self) -> list[Path]:
        return [p for p in (getattr(self, f.name) for f in fields(self)) if p is not None]


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


def export_all(
    out_dir: str | os.PathLike[str],
    video_name: str,
    frames: np.ndarray | Sequence[np.ndarray],
    fps: float,
    masks: Mapping[str, np.ndarray],
    priors: Mapping[str, np.ndarray] | None = None,
    attention: Mapping[str, np.ndarray] | None = None,
    timestamps: Sequence[float] | np.ndarray | None = None,
    audio_source: str | os.PathLike[str] | None = None,
    frame_indices: Sequence[int] | np.ndarray | None = None,
    which: Collection[str] = EXPORTS,
    corrections: Mapping[str, Sequence[Mapping]] | None = None,
) -> ExportResult:
    """Write the exports named in ``which`` (see ``EXPORTS``) and return their paths.

    Args:
        frames: uint8 ``[T, H, W, 3]`` (the frames the masks were computed on).
        fps: rate of ``frames`` (for sampled videos, the sampled rate).
        masks: ``{expression: bool [T, H, W]}``; dict order = expression id = colour.
        priors, attention: ``{expression: float [T, h, w]}`` in [0, 1], or None.
        timestamps: seconds of each frame in the source (default ``i / fps``); the videos' audio
            starts at ``timestamps[0]``.
        audio_source: the original video, whose audio is copied into the videos.
        frame_indices: source index of each frame (names the PNGs), default 0..T-1.
        which: subset of ``EXPORTS``; "zip" archives whatever else is written.
        corrections: ``{expression: [correction JSON, ...]}``, the click corrections applied to
            its masks in order (``{"expression", "frame", "points"}``, frame = index into
            ``frames``, points in their pixels); recorded in the zip's manifest when given.
    """
    unknown = set(which) - set(EXPORTS)
    if unknown or not which:
        raise ExportError(f"which must be a non-empty subset of {EXPORTS}, got {sorted(which)}")
    check_name("video_name", video_name)
    frames = check_frames(frames)
    t, h, w, _ = frames.shape
    masks = check_masks(masks, (t, h, w))
    priors = check_heatmaps("priors", priors, t)
    attention = check_heatmaps("attention", attention, t)
    fps = check_fps(fps)
    ts = check_timestamps(timestamps, t, fps)
    idx = check_frame_indices(frame_indices, t)
    if corrections is not None and set(corrections) - set(masks):
        raise ExportError(f"corrections name expressions without masks: {sorted(set(corrections) - set(masks))}")
    if audio_source is not None and not Path(audio_source).is_file():
        raise ExportError(f"audio_source {audio_source} does not exist; pass the original video or None")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # Parent folders of the PNG exports that this call creates, removed again if it fails.
    new_parents = [p for p in (out / "Annotations", out / "Palette") if not p.exists()]
    written: dict[str, Path] = {}
    av = dict(audio_source=audio_source, audio_start_s=ts[0])
    try:
        if "overlay" in which:
            written["overlay_video"] = write_overlay_video(out / f"{video_name}_overlay.mp4", frames, fps, masks, **av)
        if "mask_video" in which:
            written["mask_video"] = write_mask_video(out / f"{video_name}_masks.mp4", masks, fps, **av)
        if "side_by_side" in which:
            written["side_by_side_video"] = write_side_by_side_video(
                out / f"{video_name}_side_by_side.mp4", frames, fps, masks, priors or None, attention or None, **av
            )
        if "png" in which:
            written["png_dir"] = write_png_masks(out / "Annotations", video_name, masks, idx)
        if "palette" in which:
            written["palette_dir"] = write_palette_pngs(out / "Palette", video_name, masks, idx)
        if "coco" in which:
            written["coco_json"] = write_coco_rle(out / f"{video_name}_rle.json", masks, fps, ts, idx, video_name)
        if "zip" in which:
            expressions = [{"id": k, "text": text, "color": color_hex(expression_color(k))} for k, text in enumerate(masks)]
            if corrections is not None:
                for entry in expressions:
                    entry["corrections"] = [dict(c) for c in corrections.get(entry["text"], ())]
            manifest = {
                "video": video_name,
                "fps": fps,
                "num_frames": t,
                "frame_size": [h, w],
                "frame_indices": idx,
                "timestamps_s": ts,
                "expressions": expressions,
            }
            written["archive"] = write_archive(out / f"{video_name}.zip", out, list(written.values()), manifest)
    except BaseException:
        for path in written.values():
            _remove(path)
        for parent in new_parents:
            if parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
        raise
    return ExportResult(**written)
