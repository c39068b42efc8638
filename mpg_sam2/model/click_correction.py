"""Correct one expression's result with clicks on a frame, then propagate again both ways.

The sentence sets the target on every frame; a click (positive: on the object, negative: not on
it) makes its frame a conditioning frame of SAM 2's memory, decoded with the points added to
the sparse prompt (the text token and the mask prior stay as on every frame). From there the
video is tracked again forward to the last frame and backward to frame 0, as SAM 2's video
predictor does after ``add_new_points_or_box`` with ``propagate_in_video`` in both directions:
frames that are conditioning frames (frame 0, earlier clicked frames) keep their result, every
other frame is tracked again reading the new memory. Only this expression runs; the image
features come from the same :class:`~mpg_sam2.model.frame_features.FrameFeatureSource` as the
first pass (kept, not recomputed).

Without clicks nothing here runs, so the paper's path is unchanged.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Callable, ContextManager, Iterator

from mpg_sam2.model.frame_features import FrameFeatureSource
from mpg_sam2.model.point_prompt import PointPrompt
from mpg_sam2.model.video_propagation import ExpressionTracker, FrameOutput


@dataclass(frozen=True)
class FrameClicks:
    """Every click on one frame (SAM 2 re-decodes a frame with all of its points at once)."""

    frame: int
    points: PointPrompt  # coords [1, P, 2] in SAM 2 input pixels, labels [1, P]


def repropagate(
    tracker: ExpressionTracker,
    clicks: FrameClicks,
    features: FrameFeatureSource,
    *,
    frame_context: Callable[[], ContextManager] | None = None,
    step_context: Callable[[], ContextManager] | None = None,
    seconds: dict[str, float] | None = None,
) -> Iterator[FrameOutput]:
    """Yield the clicked frame's new output, then frames after it (forward), then frames
    before it (backward, nearest first); conditioning frames other than the clicked one are
    skipped (their result stands).

    The tracker must have tracked every frame already with ``keep_history=True``: the clicked
    frame reads the memories around it, as SAM 2 re-runs a tracked frame in the direction it
    was tracked (``is_init_cond_frame`` only when no other conditioning frame is left).

    Adapted from ``SAM2VideoPredictor.add_new_points_or_box`` and
    ``SAM2VideoPredictor.propagate_in_video`` (sam2 1.1.0, ``sam2/sam2_video_predictor.py``).
    What differs: one expression (SAM 2: each object); the dense prompt of the clicked frame is
    the mask prior (SAM 2: the frame's previous mask logits); a clicked frame always becomes a
    conditioning frame (SAM 2's ``add_all_frames_to_correct_as_cond=False`` keeps a corrected,
    already tracked frame among the non-conditioning ones; issue #15 asks for conditioning
    frames); the memory of a clicked frame is encoded from the sigmoid of its logits, as on
    every frame (the video predictor's build sets ``binarize_mask_from_pts_for_mem_enc``, our
    models keep their checkpoint's False); both directions run in one call starting at the
    clicked frame (SAM 2: a call per direction from a chosen frame).
    """
    if not tracker.keep_history:
        raise ValueError("the tracker dropped old memories; build it with keep_history=True to correct it")
    if tracker.next_frame != tracker.num_frames:
        raise RuntimeError(f"track all {tracker.num_frames} frames before correcting ({tracker.next_frame} done)")
    if not 0 <= clicks.frame < tracker.num_frames:
        raise ValueError(f"clicked frame {clicks.frame} is outside the video's {tracker.num_frames} frames")
    if clicks.points.num_points == 0:
        raise ValueError(f"no points on frame {clicks.frame}")
    frame_context = frame_context or contextlib.nullcontext
    step_context = step_context or contextlib.nullcontext
    timings = seconds if seconds is not None else {}
    clicked = clicks.frame

    def run(t: int, **how) -> FrameOutput:
        with frame_context():
            frame_features = features(t)
            start = time.perf_counter()
            with step_context():
                out = tracker.track(t, frame_features, **how)
            timings["sam2_tracking"] = timings.get("sam2_tracking", 0.0) + time.perf_counter() - start
        return out

    yield run(clicked, conditioning=True, points=clicks.points, reverse=tracker.tracked_in_reverse.get(clicked, False))
    conditioning = set(tracker.conditioning_frames)
    # As propagate_in_video from the clicked frame, forward and then in reverse (none from frame
    # 0): every frame passed, conditioning frames included, is marked with the pass's direction,
    # which is the direction a later click on it re-runs in.
    passes = [(False, range(clicked, tracker.num_frames))]
    if clicked > 0:
        passes.append((True, range(clicked, -1, -1)))
    for reverse, frames in passes:
        for t in frames:
            if t in conditioning:
                tracker.tracked_in_reverse[t] = reverse
            else:
                yield run(t, reverse=reverse)
