"""How much GPU time one app request reserves, and which requests are refused before scheduling.

On a ZeroGPU Space every reserved second counts against the visitor's daily quota (2 min
without an account, 3.5 min for a free account, 25 min PRO in the version of hub-docs
``spaces-zerogpu.md`` read for this; the Hub has changed these numbers before), and
``spaces`` multiplies the requested duration by the pool's ``duration_factor`` (1.5 on the RTX
PRO 6000 pool, 1.0 on H200; ``spaces/zero/configs.json``). So the reservation is computed from
measured per-frame costs instead of a guess, and a request that would need more than
:data:`MAX_GPU_SECONDS` is refused in the main process with what to lower, before a GPU is asked
for.

Per-frame costs, measured on one NVIDIA H200 with ``release-large`` (SAM 2.1 Hiera-L + BEiT-3
large, the released checkpoints' architecture), synthetic weights, fp32, 128 frames of
480x640, one expression (``bench/results/pipeline_bench_release_large_h200.md``):
SAM 2 image encoder 3.3 s, BEiT-3 + mask prior 0.8 s, SAM 2 tracking 9.9 s, postprocessing
0.2 s. The image encoder runs once per frame for all expressions; the rest runs per
expression. The smaller models (``tiny``, the bundled ``nano``) cost less, so these are an upper
bound for them.

A click correction (the app's "Re-run with clicks") replays one expression with all its clicks:
the first pass of that expression, then, per correction, the video tracked once more from the
clicked frame (forward and backward: every frame once) on the image features kept from the first
pass. So its estimate is one expression plus :data:`RETRACK_S_PER_FRAME` per frame and
correction. Re-tracking was not timed on its own: its cost is taken to be the measured tracking
and postprocessing per frame (no image encoder, no BEiT-3), an estimate, not a measurement.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

# Seconds per frame on an H200 (see above).
IMAGE_ENCODER_S_PER_FRAME = 3.3 / 128
EXPRESSION_S_PER_FRAME = (0.8 + 9.9 + 0.2) / 128
# One more tracking pass per click correction: tracking + postprocessing (derived, see above).
RETRACK_S_PER_FRAME = (9.9 + 0.2) / 128
# Not measured: starting the worker, moving the weights into it (3.7 GB for release-large) and
# the first CUDA kernels. An allowance.
WORKER_START_S = 15.0
# Headroom for a busier GPU slice and videos larger than the measured 480x640.
SAFETY_FACTOR = 1.25
# The largest reservation the app asks for. x1.5 on the RTX PRO 6000 pool gives 180 s, which
# still fits a free account's 3.5 daily minutes; ZeroGPU's own default is 60 s.
MAX_GPU_SECONDS = 120


class BudgetExceeded(ValueError):
    """The request needs more GPU time than the app reserves; the message says what to lower."""


@dataclass(frozen=True)
class GpuBudget:
    num_frames: int
    num_expressions: int
    seconds: int  # what is reserved on ZeroGPU
    num_corrections: int = 0

    @property
    def fits(self) -> bool:
        return self.seconds <= MAX_GPU_SECONDS


def estimate_gpu_seconds(num_frames: int, num_expressions: int, num_corrections: int = 0) -> int:
    """Seconds to reserve for ``num_frames`` frames and ``num_expressions`` expressions, plus
    ``num_corrections`` click corrections (one more tracking pass over the video each)::

        ceil((WORKER_START_S + T * (IMAGE + K * EXPRESSION + C * RETRACK)) * SAFETY_FACTOR)
    """
    if num_frames < 1 or num_expressions < 1:
        raise ValueError(f"need at least one frame and one expression, got {num_frames} and {num_expressions}")
    if num_corrections < 0:
        raise ValueError(f"num_corrections must be >= 0, got {num_corrections}")
    per_frame = (IMAGE_ENCODER_S_PER_FRAME + num_expressions * EXPRESSION_S_PER_FRAME
                 + num_corrections * RETRACK_S_PER_FRAME)
    return math.ceil((WORKER_START_S + num_frames * per_frame) * SAFETY_FACTOR)


def max_frames_within_budget(num_expressions: int, limit_s: float | None = None) -> int:
    """The most frames that ``num_expressions`` expressions can have within ``limit_s``
    (default :data:`MAX_GPU_SECONDS`)."""
    limit_s = MAX_GPU_SECONDS if limit_s is None else limit_s
    per_frame = IMAGE_ENCODER_S_PER_FRAME + num_expressions * EXPRESSION_S_PER_FRAME
    frames = math.floor((limit_s / SAFETY_FACTOR - WORKER_START_S) / per_frame)
    while frames > 0 and estimate_gpu_seconds(frames, num_expressions) > limit_s:
        frames -= 1  # ceil() in the estimate can push the last frame over
    return max(0, frames)


def plan_gpu_budget(num_frames: int, num_expressions: int, num_corrections: int = 0) -> GpuBudget:
    """The reservation for a request; raises :class:`BudgetExceeded` if it is over the cap."""
    budget = GpuBudget(num_frames, num_expressions, estimate_gpu_seconds(num_frames, num_expressions, num_corrections),
                       num_corrections)
    if not budget.fits and num_corrections:
        raise BudgetExceeded(
            f"{num_frames} frames with {num_corrections} corrected frames need about {budget.seconds} s of GPU time; "
            f"this Space reserves at most {MAX_GPU_SECONDS} s per run. To fit: click on fewer frames (points on one "
            f"frame count once), or segment again with a lower frame cap."
        )
    if not budget.fits:
        frames_ok = max_frames_within_budget(num_expressions)
        fewer = next((k for k in range(num_expressions - 1, 0, -1) if max_frames_within_budget(k) >= num_frames), None)
        options = [f"lower the frame cap to {frames_ok} or less" if frames_ok else None,
                   "sample fewer frames per second",
                   f"keep {fewer} expression{'s' if fewer > 1 else ''}" if fewer else None]
        raise BudgetExceeded(
            f"{num_frames} frames x {num_expressions} expressions need about {budget.seconds} s of GPU time; "
            f"this Space reserves at most {MAX_GPU_SECONDS} s per run. To fit: "
            + ", or ".join(o for o in options if o) + "."
        )
    return budget
