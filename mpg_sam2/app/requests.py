"""One app request in the main process: check and decode before the GPU call, export after it.

    prepare_request (validate, decode, tokenise, GPU budget)  -> GpuJob
    run_gpu_job (mpg_sam2.app.gpu_job; on ZeroGPU in a GPU worker) -> VideoSegmentation
    finish_request (exports, inspector, summary into a private folder) -> RequestResult

Raises :class:`UserInputError` (shown as ``gr.Error``) for anything the user can fix, before
any GPU is reserved, and collects notices (shown as ``gr.Warning``) when input was trimmed.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from mpg_sam2.app.gpu_budget import BudgetExceeded, estimate_gpu_seconds, plan_gpu_budget
from mpg_sam2.app.gpu_job import GpuJob
from mpg_sam2.app.request_record import save_record
from mpg_sam2.app.results import save_inspector, score_table, summary_rows
from mpg_sam2.atomic import atomic_dir
from mpg_sam2.exports import ExportResult
from mpg_sam2.pipeline.expressions import ExpressionError, prepare_expressions
from mpg_sam2.pipeline.segmentation import SegmentationOptions, VideoSegmentation
from mpg_sam2.pipeline.video_file import decode_for_segmentation, export_segmentation, safe_name
from mpg_sam2.checkpoint.pretrained import Pretrained
from mpg_sam2.video import DecodedVideo, FrameSampling, VideoError

OUTPUT_ROOT = Path(tempfile.gettempdir()) / "mpg_sam2_app"
KEEP_OUTPUTS_S = 3600  # request folders older than this are removed
MAX_UPLOAD = "200mb"
MAX_FRAMES = 300  # upper end of the frame-cap slider
MAX_EXPRESSIONS = 8
MAX_SIDE = 1280  # larger frames are downscaled (masks at the smaller size, with a notice)
OVERLAYS = ("mask prior", "attention")


class UserInputError(ValueError):
    """Something the user can fix; the message is shown as is."""


@dataclass
class PreparedRequest:
    """A request checked and decoded in the main process, ready for the GPU."""

    job: GpuJob
    video: DecodedVideo
    video_name: str
    notices: list[str]
    decode_seconds: float


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


def prepare_request(
    video_path: str | None,
    expressions_text: str,
    model_source: str,
    pretrained: Pretrained,
    max_frames: int,
    fps: float | None,
    threshold: float,
    overlays: list[str] | None,
    enforce_gpu_budget: bool,
) -> PreparedRequest:
    """Validate every input, tokenise the expressions and decode the video (no GPU, no model run).

    ``enforce_gpu_budget``: refuse a request whose GPU reservation would exceed the cap
    (on ZeroGPU, where it counts against the visitor's quota).
    """
    if not video_path:
        raise UserInputError("Upload a video (mp4, webm, mov, avi, mkv or gif) or record one with the webcam.")
    texts = parse_expressions(expressions_text)
    if not 1 <= int(max_frames) <= MAX_FRAMES:
        raise UserInputError(f"The frame cap must be between 1 and {MAX_FRAMES}.")
    if fps is not None and fps < 0:
        raise UserInputError("The sampling rate must be positive (0 keeps the source rate).")
    try:
        pretrained.text_tokenizer()
    except RuntimeError as error:
        raise UserInputError(f"The model {model_source} cannot be used: {error}.") from None
    try:
        options = SegmentationOptions(threshold=float(threshold), record_attention="attention" in (overlays or []))
    except ValueError as error:
        raise UserInputError(f"Mask threshold: {error}") from None
    notices: list[str] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            prepared = prepare_expressions(texts, pretrained.tokenizer,
                                           max_tokens=pretrained.model.config.beit3.max_text_tokens)
        notices += [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
        start = time.perf_counter()
        video, decode_notes = decode_for_segmentation(
            video_path, FrameSampling(target_fps=fps or None, max_frames=int(max_frames), max_side=MAX_SIDE)
        )
        decode_seconds = time.perf_counter() - start
    except (VideoError, ExpressionError) as error:
        raise UserInputError(str(error)) from error
    notices += decode_notes
    num_frames = len(video.frames)
    if enforce_gpu_budget:
        try:
            seconds = plan_gpu_budget(num_frames, len(prepared)).seconds
        except BudgetExceeded as error:
            raise UserInputError(str(error)) from None
    else:
        seconds = estimate_gpu_seconds(num_frames, len(prepared))
    job = GpuJob(
        model_source=model_source, frames=video.frames, fps=video.fps, timestamps_s=video.timestamps_s,
        expressions=tuple(prepared), options=options, gpu_seconds=seconds,
    )
    return PreparedRequest(job, video, safe_name(Path(video_path).stem), notices, decode_seconds)


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


def finish_request(
    request: PreparedRequest, segmentation: VideoSegmentation, device: str, folder: Path | None = None,
    open_frame: int = 0,
) -> RequestResult:
    """Exports, inspector files, the record for click corrections and the summary of a
    segmented request.

    ``folder``: where the result goes (replaced whole if it exists); by default a new private
    folder under :data:`OUTPUT_ROOT`, removed after :data:`KEEP_OUTPUTS_S`. Written atomically:
    a failure leaves nothing behind. ``open_frame``: the frame the inspector opens on.
    """
    if folder is None:
        clean_old_outputs()
        folder = OUTPUT_ROOT / uuid.uuid4().hex
    start = time.perf_counter()
    with atomic_dir(folder) as partial:
        exports = export_segmentation(partial, request.video_name, request.video, segmentation)
        save_inspector(partial, request.video.frames, segmentation, open_frame)
        save_record(partial, request.job.model_source, request.job.options, request.video, request.video_name,
                    segmentation)
        clicks = _write_clicks(partial, request.video_name, segmentation)
    segmentation.stage_seconds["export"] = time.perf_counter() - start
    segmentation.stage_seconds["decode"] = request.decode_seconds
    exports = _moved(exports, partial, folder)
    downloads = [p for p in (exports.archive, exports.overlay_video, exports.mask_video, exports.side_by_side_video,
                             exports.coco_json) if p]
    if clicks is not None:
        downloads.append(folder / clicks.relative_to(partial))
    return RequestResult(
        folder=folder, side_by_side=exports.side_by_side_video, overlay=exports.overlay_video, zip=exports.archive,
        downloads=downloads, inspector=folder / "inspector", num_frames=segmentation.num_frames,
        summary=summary_rows(segmentation), scores=score_table(segmentation),
        stage_text=_stage_text(request, segmentation, device), notices=list(request.notices),
    )


def _write_clicks(folder: Path, video_name: str, segmentation: VideoSegmentation) -> Path | None:
    """The corrections applied, in the JSON that ``pipeline.clicks.read_corrections`` reads; None without any."""
    corrections = [c.to_json() for r in segmentation.expressions for c in r.corrections]
    if not corrections:
        return None
    path = folder / f"{video_name}_clicks.json"
    path.write_text(json.dumps(corrections, indent=1), encoding="utf-8")
    return path


def _stage_text(request: PreparedRequest, segmentation: VideoSegmentation, device: str) -> str:
    seconds = segmentation.stage_seconds
    total = sum(seconds.values())
    stages = " · ".join(f"{k.replace('_', ' ')} {v:.1f} s" for k, v in seconds.items())
    name = Path(request.job.model_source).name or request.job.model_source
    return (f"Model {name} on {device}. {segmentation.num_frames} frames, {total:.1f} s in all "
            f"({total / max(1, segmentation.num_frames):.2f} s per frame): {stages}")


def _moved(exports: ExportResult, old: Path, new: Path) -> ExportResult:
    """``exports`` with its paths under ``old`` (the partial folder) moved to ``new``."""
    return dataclasses.replace(exports, **{
        f.name: new / path.relative_to(old)
        for f in dataclasses.fields(exports) if (path := getattr(exports, f.name)) is not None
    })
