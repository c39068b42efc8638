"""What the app's GPU function gets and does: decoded frames and token ids in, arrays out.

Everything a user can get wrong is checked before a :class:`GpuJob` exists, and files are read
before and written after :func:`run_gpu_job`, so the GPU time is spent on the model alone. Both
the job and its result are plain data (numpy arrays, token tensors, dataclasses), because on
ZeroGPU they are pickled between the main process and the GPU worker.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from mpg_sam2.pipeline.clicks import Correction
from mpg_sam2.pipeline.expressions import PreparedExpression
from mpg_sam2.pipeline.segmentation import Progress, SegmentationOptions, VideoSegmentation, iter_segment_video
from mpg_sam2.checkpoint.pretrained import Pretrained

ProgressCallback = Callable[[float, str], None]


@dataclass(frozen=True)
class GpuJob:
    """One request's work for the GPU (T frames of H x W, K expressions)."""

    model_source: str  # a model of the app's pool, loaded in the main process
    frames: np.ndarray  # uint8 [T, H, W, 3]
    fps: float
    timestamps_s: np.ndarray  # float64 [T]
    expressions: tuple[PreparedExpression, ...]  # token ids [1, L] each
    options: SegmentationOptions
    gpu_seconds: int  # the reservation on ZeroGPU (mpg_sam2.app.gpu_budget)
    # Click corrections (frozen dataclasses of ints and floats), applied in order after the first
    # pass; a correction job of the app has one expression and these are all its clicks.
    corrections: tuple[Correction, ...] = ()


def run_gpu_job(job: GpuJob, pretrained: Pretrained, progress: ProgressCallback | None = None) -> VideoSegmentation:
    """Masks, priors, object scores and attention of every expression of ``job``.

    ``progress(fraction, message)`` gets the encode, track and correct stages mapped onto [0, 1].
    """
    result = None
    corrections_started = 0
    for event in iter_segment_video(
        job.frames, list(job.expressions), pretrained.model, fps=job.fps, timestamps_s=job.timestamps_s,
        options=job.options, corrections=job.corrections,
    ):
        if event.result is not None:
            result = event.result
        elif progress is not None:
            if event.stage == "correct" and event.done == 1:
                corrections_started += 1  # each correction counts its re-tracked frames from 1
            progress(_fraction(event, corrections_started, len(job.corrections)), event.message)
    assert result is not None  # iter_segment_video always ends with the result
    return result


def _fraction(event: Progress, correction: int = 0, num_corrections: int = 0) -> float:
    """Encoding is about a fifth of the GPU work, tracking the rest (H200 measurements); each
    correction re-tracks the video once more, so the tracking share is split into
    ``1 + num_corrections`` equal passes (``correction``: the pass of a "correct" event, from 1)."""
    done = event.done / max(1, event.total)
    if event.stage == "encode":
        return 0.2 * done
    passes = 1 + num_corrections
    index = correction if event.stage == "correct" else 0
    return 0.2 + 0.8 * (index + done) / passes
