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


def run_gpu_job(job: GpuJob, pretrained: Pretrained, progress: ProgressCallback | None = None) -> VideoSegmentation:
    """Masks, priors, object scores and attention of every expression of ``job``.

    ``progress(fraction, message)`` gets the encode and track stages mapped onto [0, 1].
    """
    result = None
    for event in iter_segment_video(
        job.frames, list(job.expressions), pretrained.model, fps=job.fps, timestamps_s=job.timestamps_s,
        options=job.options,
    ):
        if event.result is not None:
            result = event.result
        elif progress is not None:
            progress(_fraction(event), event.message)
    assert result is not None  # iter_segment_video always ends with the result
    return result


def _fraction(event: Progress) -> float:
    """Encoding is about a fifth of the GPU work, tracking the rest (H200 measurements)."""
    done = event.done / max(1, event.total)
    return 0.2 * done if event.stage == "encode" else 0.2 + 0.8 * done
