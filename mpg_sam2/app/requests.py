"""One app request: validate, segment, export into a private folder, summarise.

Raises :class:`UserInputError` (shown as ``gr.Error``) for anything the user can fix, and
collects notices (shown as ``gr.Warning``) when input was trimmed or cut.
"""
from __future__ import annotations

import shutil
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from mpg_sam2.app.models import get_model
from mpg_sam2.app.results import save_inspector, score_table, summary_rows
from mpg_sam2.pipeline.devices import select_device
from mpg_sam2.pipeline.expressions import ExpressionError
from mpg_sam2.pipeline.segmentation import Progress, SegmentationOptions
from mpg_sam2.pipeline.video_file import VideoFileResult, iter_segment_video_file, safe_name
from mpg_sam2.video import FrameSampling, VideoError, probe_video

OUTPUT_ROOT = Path(tempfile.gettempdir()) / "mpg_sam2_app"
KEEP_OUTPUTS_S = 3600  # request folders older than this are removed
MAX_UPLOAD = "200mb"
MAX_FRAMES = 300  # upper end of the frame-cap slider
MAX_EXPRESSIONS = 8
OVERLAYS = ("mask prior", "attention")


class UserInputError(ValueError):
    """Something the user can fix; the message is shown as is."""


@dataclass
class RequestResult:
    folder: Path
    side_by_side: Path | None
    overlay: Path | None
    zip: Path | None
    downloads: list[Path]
    inspector: Path
    num_frames: int
    summary: list[list[object]]
    scores: object  # pandas DataFrame for the plot
    stage_text: str
    notices: list[str] = field(default_factory=list)


def parse_expressions(text: str | None) -> list[str]:
    lines = [line.strip() for line in (text or "").splitlines()]
    expressions = [line for line in lines if line]
    if not expressions:
        raise UserInputError("Type at least one referring expression (one per line), e.g. 'the dog on the left'.")
    if len(expressions) > MAX_EXPRESSIONS:
        raise UserInputError(f"At most {MAX_EXPRESSIONS} expressions per run; you gave {len(expressions)}.")
    return expressions


def gpu_seconds(video_path: str | None, max_frames: int, num_expressions: int, device_is_gpu: bool = True) -> int:
    """Time to reserve on a ZeroGPU Space: frames x expressions, from the video's header."""
    frames = max_frames
    try:
        info = probe_video(video_path) if video_path else None
        if info is not None and info.num_frames:
            frames = min(frames, info.num_frames)
    except Exception:
        pass  # a bad file is reported by the run itself
    # Hiera-L + BEiT-3 large: roughly 0.1 s per frame per expression on an H100/H200 (fp32),
    # plus model loading and exports.
    return int(min(300, max(60, 40 + frames * (0.06 + 0.12 * num_expressions))))


def clean_old_outputs(now: float | None = None) -> None:
    now = time.time() if now is None else now
    if not OUTPUT_ROOT.exists():
        return
    for folder in OUTPUT_ROOT.iterdir():
        try:
            if folder.is_dir() and now - folder.stat().st_mtime > KEEP_OUTPUTS_S:
                shutil.rmtree(folder, ignore_errors=True)
        except FileNotFoundError:
            pass


def run_request(
    video_path: str | None,
    expressions_text: str,
    model_source: str,
    max_frames: int,
    fps: float | None,
    threshold: float,
    overlays: list[str] | None,
    progress: Callable[[float, str], None] = lambda fraction, message: None,
    device: str = "auto",
) -> RequestResult:
    if not video_path:
        raise UserInputError("Upload a video (mp4, webm, mov, avi, mkv or gif) or record one with the webcam.")
    expressions = parse_expressions(expressions_text)
    if not 1 <= int(max_frames) <= MAX_FRAMES:
        raise UserInputError(f"The frame cap must be between 1 and {MAX_FRAMES}.")
    if fps is not None and fps < 0:
        raise UserInputError("The sampling rate must be positive (0 keeps the source rate).")
    overlays = list(overlays or [])
    clean_old_outputs()
    folder = OUTPUT_ROOT / uuid.uuid4().hex  # private to this request
    folder.mkdir(parents=True)
    try:
        return _run(folder, video_path, expressions, model_source, int(max_frames), fps or None,
                    float(threshold), overlays, progress, select_device(device))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # nothing half-written is left behind
        raise


def _run(folder, video_path, expressions, model_source, max_frames, fps, threshold, overlays, progress, device) -> RequestResult:
    progress(0.0, "loading the model")
    pretrained = get_model(model_source, device)
    if pretrained.tokenizer is None:
        raise UserInputError(f"The model {model_source} has no tokenizer files, so it cannot read text.")
    options = SegmentationOptions(threshold=threshold, record_attention="attention" in overlays)
    sampling = FrameSampling(target_fps=fps, max_frames=max_frames, max_side=1280)
    notices: list[str] = []
    result = None
    name = safe_name(Path(video_path).stem)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for event in iter_segment_video_file(
                video_path, expressions, pretrained.model, pretrained.tokenizer, out_dir=folder,
                sampling=sampling, options=options, video_name=name,
            ):
                if isinstance(event, VideoFileResult):
                    result = event
                elif isinstance(event, Progress):
                    progress(_overall(event), event.message)
        notices += [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    except (VideoError, ExpressionError) as error:
        raise UserInputError(str(error)) from error
    except torch.cuda.OutOfMemoryError as error:
        raise UserInputError("The GPU ran out of memory; lower the frame cap or the number of expressions.") from error
    assert result is not None
    notices += [n for n in result.notes if n not in notices]
    seg = result.segmentation
    inspector = save_inspector(folder, result.video.frames, seg)
    exports = result.exports
    downloads = [p for p in (exports.archive, exports.overlay_video, exports.mask_video, exports.side_by_side_video, exports.coco_json) if p]
    total = sum(seg.stage_seconds.values())
    stage_text = " · ".join(f"{k.replace('_', ' ')} {v:.1f} s" for k, v in seg.stage_seconds.items())
    stage_text = f"Model {Path(model_source).name or model_source} on {device}. {seg.num_frames} frames, {total:.1f} s in all ({total / max(1, seg.num_frames):.2f} s per frame): {stage_text}"
    return RequestResult(
        folder=folder, side_by_side=exports.side_by_side_video, overlay=exports.overlay_video, zip=exports.archive,
        downloads=downloads, inspector=inspector, num_frames=seg.num_frames, summary=summary_rows(seg),
        scores=score_table(seg), stage_text=stage_text, notices=notices,
    )


def _overall(event: Progress) -> float:
    """Map stage progress onto one bar: decode 5%, encode 15%, track 70%, export 10%."""
    spans = {"decode": (0.0, 0.05), "encode": (0.05, 0.2), "track": (0.2, 0.9), "export": (0.9, 1.0)}
    lo, hi = spans.get(event.stage, (0.0, 1.0))
    return lo + (hi - lo) * (event.done / max(1, event.total))
