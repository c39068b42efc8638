"""One request end to end: a video file and sentences in, masks and every export out."""
from __future__ import annotations

import inspect
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Collection, Iterator, Sequence

from mpg_sam2.exports import EXPORTS, ExportResult, export_all
from mpg_sam2.model.mpg_sam2 import MPGSAM2
from mpg_sam2.pipeline.clicks import Correction, check_corrections
from mpg_sam2.pipeline.expressions import prepare_expressions
from mpg_sam2.pipeline.segmentation import Progress, SegmentationOptions, VideoSegmentation, iter_segment_video
from mpg_sam2.tokenizer import ReferringTokenizer
from mpg_sam2.video import DecodedVideo, FrameSampling, load_video

# Caps for interactive use: a long or huge video is trimmed / downscaled with a message
# instead of exhausting memory. Pass another FrameSampling to change them.
DEFAULT_SAMPLING = FrameSampling(max_frames=600, max_side=1920)


@dataclass
class VideoFileResult:
    segmentation: VideoSegmentation
    video: DecodedVideo
    exports: ExportResult | None
    notes: list[str]  # what was changed about the input (trimmed, downscaled, truncated text)


def decode_for_segmentation(video_path: str | Path, sampling: FrameSampling = DEFAULT_SAMPLING) -> tuple[DecodedVideo, list[str]]:
    """Decode ``video_path`` with ``sampling``; also returns notes on what was changed about it
    (trimmed, downscaled, a single frame). Raises :class:`mpg_sam2.video.VideoError`."""
    video = load_video(video_path, sampling)
    notes = [video.message] if video.message else []
    if video.frames.shape[1:3] != (video.info.height, video.info.width):
        notes.append(
            f"frames were downscaled from {video.info.width}x{video.info.height} to "
            f"{video.frames.shape[2]}x{video.frames.shape[1]}; masks are at the smaller size"
        )
    if len(video.frames) == 1:
        notes.append("the video has a single frame: segmented as a still image")
    return video, notes


def export_segmentation(
    out_dir: str | Path,
    video_name: str,
    video: DecodedVideo,
    segmentation: VideoSegmentation,
    exports: Collection[str] = EXPORTS,
) -> ExportResult:
    """Every export of ``segmentation`` (masks on ``video``'s frames, with its audio) into ``out_dir``;
    the zip's manifest records the click corrections of each expression if there were any."""
    results = segmentation.expressions
    with_attention = all(r.text_attention is not None for r in results)
    corrected = any(r.corrections for r in results)
    return export_all(
        out_dir,
        video_name,
        video.frames,
        video.fps,
        masks={r.text: r.masks for r in results},
        priors={r.text: r.mask_priors for r in results},
        attention={r.text: r.text_attention for r in results} if with_attention else None,
        timestamps=video.timestamps_s,
        audio_source=video.info.path if video.info.has_audio else None,
        frame_indices=video.source_indices,
        which=exports,
        corrections={r.text: [c.to_json() for c in r.corrections] for r in results} if corrected else None,
    )


def iter_segment_video_file(
    video_path: str | Path,
    expressions: Sequence[str],
    model: MPGSAM2,
    tokenizer: ReferringTokenizer,
    *,
    out_dir: str | Path | None = None,
    exports: Collection[str] = EXPORTS,
    sampling: FrameSampling = DEFAULT_SAMPLING,
    options: SegmentationOptions = SegmentationOptions(),
    video_name: str | None = None,
    corrections: Sequence[Correction] = (),
) -> Iterator[Progress | VideoFileResult]:
    """Yields :class:`Progress` events (``decode``, ``encode``, ``track``, [``correct``],
    ``export``), then the :class:`VideoFileResult`. Expressions are checked before the video is
    decoded, and nothing is written unless everything before the export succeeded.

    ``corrections`` (:mod:`.clicks`) apply after the first pass, in the decoded frames' terms:
    ``frame`` indexes the frames after ``sampling`` (its rate, every-k and max-frames), points
    are pixels of the frames as decoded (after ``sampling.max_side`` downscaling), the frames
    the exports show. Their expressions are checked before decoding, frames and points before
    the model runs.
    """
    prepared = prepare_expressions(expressions, tokenizer, max_tokens=model.config.beit3.max_text_tokens)
    corrections = list(corrections)
    check_corrections(corrections, len(prepared), None, None)
    notes = [f"expression {i + 1} was cut to the model's text limit" for i, p in enumerate(prepared) if p.truncated]
    start = time.perf_counter()
    yield Progress("decode", 0, 1, f"decoding {Path(video_path).name}")
    video, decode_notes = decode_for_segmentation(video_path, sampling)
    notes += decode_notes
    decode_s = time.perf_counter() - start
    yield Progress("decode", 1, 1, f"decoded {len(video.frames)} frames")

    segmentation = None
    for event in iter_segment_video(
        video.frames, prepared, model, fps=video.fps, timestamps_s=video.timestamps_s, options=options,
        corrections=corrections,
    ):
        if event.result is not None:
            segmentation = event.result
        else:
            yield event
    assert segmentation is not None
    segmentation.stage_seconds["decode"] = decode_s

    written = None
    if out_dir is not None and exports:
        start = time.perf_counter()
        yield Progress("export", 0, 1, "writing exports")
        written = export_segmentation(out_dir, video_name or safe_name(Path(video_path).stem), video, segmentation, exports)
        segmentation.stage_seconds["export"] = time.perf_counter() - start
        yield Progress("export", 1, 1, "exports written")
    yield VideoFileResult(segmentation=segmentation, video=video, exports=written, notes=notes)


def segment_video_file(*args, **kwargs) -> VideoFileResult:
    """:func:`iter_segment_video_file` run to completion."""
    result = None
    for event in iter_segment_video_file(*args, **kwargs):
        if isinstance(event, VideoFileResult):
            result = event
    assert result is not None
    return result


# help() and editors show the generator's parameters.
segment_video_file.__signature__ = inspect.signature(iter_segment_video_file).replace(return_annotation="VideoFileResult")


def safe_name(stem: str) -> str:
    """A file-system-safe video name (letters, digits, '-', '_', '.')."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "video"
    return cleaned[:80]
