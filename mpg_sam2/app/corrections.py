"""Re-run one expression of a finished request with click corrections, on the same split as a run:

    prepare_correction (read the record, tokenise, GPU budget)      -> PreparedCorrection (a GpuJob)
    run_gpu_job (mpg_sam2.app.gpu_job; on ZeroGPU its own short GPU call) -> VideoSegmentation
    finish_correction (merge, exports, inspector, summary into a NEW folder) -> RequestResult

The job replays the chosen expression alone (index 0 of the sub-request) from the request's
decoded frames with every correction it has had so far plus the new clicks, so its masks equal
``segment_video(frames, [text], ..., corrections=...)``; the other expressions are copied from
the record untouched. The corrected result goes to a new private folder (written atomically):
the corrected folder may be a cached example that every visitor shares.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from mpg_sam2.app.clicks import PendingClick, to_corrections
from mpg_sam2.app.gpu_budget import BudgetExceeded, estimate_gpu_seconds, plan_gpu_budget
from mpg_sam2.app.gpu_job import GpuJob
from mpg_sam2.app.request_record import RecordMissing, RequestRecord, load_record
from mpg_sam2.app.requests import PreparedRequest, RequestResult, UserInputError, finish_request
from mpg_sam2.checkpoint.pretrained import Pretrained
from mpg_sam2.pipeline.clicks import ClickError, Correction, add_clicks, check_corrections
from mpg_sam2.pipeline.expressions import ExpressionError, prepare_expressions
from mpg_sam2.pipeline.segmentation import VideoSegmentation


@dataclass
class PreparedCorrection:
    """A correction checked in the main process, ready for the GPU."""

    request: PreparedRequest  # its job holds the one expression and all its corrections
    record: RequestRecord
    expression: int  # index of the corrected expression in the request
    corrections: tuple[Correction, ...]  # all of that expression's corrections, request indices


def prepare_correction(
    folder: Path,
    expression: int | None,
    clicks: Sequence[PendingClick],
    pretrained_for: Callable[[str], Pretrained],
    enforce_gpu_budget: bool,
) -> PreparedCorrection:
    """Check the clicks against the result in ``folder`` and build the GPU job.

    ``pretrained_for(model_source)`` gives the loaded model the request ran with. Raises
    :class:`UserInputError` for anything the visitor can fix.
    """
    if not clicks:
        raise UserInputError("Click on the Original or Final masks picture first: there are no points to apply.")
    try:
        record = load_record(folder)
    except RecordMissing as error:
        raise UserInputError(str(error)) from None
    texts = [r.text for r in record.segmentation.expressions]
    if expression is None or not 0 <= int(expression) < len(texts):
        raise UserInputError(f"Choose which expression to correct (one of {len(texts)}).")
    expression = int(expression)
    corrections = tuple(record.segmentation.expressions[expression].corrections)
    for new in to_corrections(clicks, expression):
        corrections = tuple(add_clicks(corrections, expression, new.frame, new.points))
    num_frames = record.segmentation.num_frames
    try:
        check_corrections(corrections, len(texts), num_frames, record.segmentation.frame_size)
    except ClickError as error:
        raise UserInputError(f"These clicks cannot be used: {error}.") from None
    pretrained = pretrained_for(record.model_source)
    try:
        prepared = prepare_expressions([texts[expression]], pretrained.text_tokenizer(),
                                       max_tokens=pretrained.model.config.beit3.max_text_tokens)
    except (ExpressionError, RuntimeError) as error:
        raise UserInputError(f"The model {record.model_source} cannot be used: {error}.") from None
    if enforce_gpu_budget:
        try:
            seconds = plan_gpu_budget(num_frames, 1, len(corrections)).seconds
        except BudgetExceeded as error:
            raise UserInputError(str(error)) from None
    else:
        seconds = estimate_gpu_seconds(num_frames, 1, len(corrections))
    video = record.video
    job = GpuJob(
        model_source=record.model_source, frames=video.frames, fps=video.fps, timestamps_s=video.timestamps_s,
        expressions=tuple(prepared), options=record.options, gpu_seconds=seconds,
        corrections=tuple(dataclasses.replace(c, expression=0) for c in corrections),
    )
    request = PreparedRequest(job, video, record.video_name, list(record.notices), decode_seconds=0.0)
    return PreparedCorrection(request, record, expression, corrections)


def merge_correction(prepared: PreparedCorrection, corrected: VideoSegmentation) -> VideoSegmentation:
    """The record's result with the corrected expression replaced by ``corrected``'s only one."""
    if len(corrected.expressions) != 1:
        raise ValueError(f"a correction re-runs one expression, got {len(corrected.expressions)}")
    new = dataclasses.replace(corrected.expressions[0], corrections=prepared.corrections)
    stored = prepared.record.segmentation
    expressions = list(stored.expressions)
    expressions[prepared.expression] = new
    return dataclasses.replace(stored, expressions=expressions, stage_seconds=dict(corrected.stage_seconds))


def finish_correction(prepared: PreparedCorrection, corrected: VideoSegmentation, device: str) -> RequestResult:
    """Exports, inspector and summary of the merged result in a new folder; the inspector opens
    on the last clicked frame."""
    merged = merge_correction(prepared, corrected)
    return finish_request(prepared.request, merged, device, folder=None, open_frame=prepared.corrections[-1].frame)
