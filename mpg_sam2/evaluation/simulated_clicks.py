"""The simulated-click protocol: J&F of an expression after 0, 1, ..., N corrective clicks.

After the current result of an expression, a simulated user

1. picks the worst frame: the lowest J (:func:`~mpg_sam2.evaluation.metrics.region_similarity`,
   so a frame where target and prediction are both empty has J 1); ties go to the earliest frame;
2. splits that frame's error into false negatives (target, not predicted) and false positives
   (predicted, not target), each into 4-connected components, and takes the LARGEST component
   (a tie goes to a false negative, then to the component met first in row-major order);
3. clicks its centre, the pixel farthest from the component's boundary (exact Euclidean
   distance transform, ``scipy.ndimage.distance_transform_edt``; the frame's edge counts as
   boundary; ties go to the first pixel in row-major order): label 1 on a false negative (the
   target is there), 0 on a false positive;
4. the expression is tracked again with that click (:meth:`SegmentationRun.correct`, on the
   image features kept from the first pass; a frame clicked before is decoded with all of its
   points, old and new, as SAM 2 does).

An expression without error pixels gets no more clicks; its score carries over. Each result is
scored with :func:`~mpg_sam2.evaluation.aggregate.score_expression`, the plain report's J&F.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy import ndimage

from mpg_sam2.pipeline.clicks import NEGATIVE, POSITIVE, Correction, add_clicks
from mpg_sam2.pipeline.segmentation import SegmentationRun

from .aggregate import ExpressionScore
from .metrics import region_similarity

__all__ = ["ClickedExpression", "SimulatedClick", "click_expression", "frame_j", "next_click", "region_centre", "worst_frame"]


@dataclass(frozen=True)
class SimulatedClick:
    """One click: pixel ``(x, y)`` = (column, row) of frame ``frame``; label 1 / 0."""

    frame: int
    x: int
    y: int
    label: int  # POSITIVE on a false-negative region, NEGATIVE on a false-positive one
    region_pixels: int  # size of the error component clicked


@dataclass(frozen=True)
class ClickedExpression:
    """Scores of one expression after 0, 1, ..., N clicks (``scores[k]``: after k clicks)."""

    scores: tuple[ExpressionScore, ...]  # N + 1 entries; repeats once the masks are perfect
    clicks: tuple[SimulatedClick, ...]  # the clicks made (fewer than N when it became perfect)


def frame_j(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """float64 ``[T]``: J of each frame of bool ``[T, H, W]`` masks (1 where both are empty)."""
    if truth.shape != pred.shape or truth.ndim != 3:
        raise ValueError(f"truth {truth.shape} and prediction {pred.shape} must both be [T, H, W]")
    return np.array([region_similarity(g, p) for g, p in zip(truth, pred)], dtype=np.float64)


def worst_frame(truth: np.ndarray, pred: np.ndarray) -> int | None:
    """The frame with the lowest J (the earliest of equals), None if every frame has J 1."""
    js = frame_j(truth, pred)
    t = int(np.argmin(js))  # argmin returns the first of equal minima
    return None if js[t] == 1.0 else t


def region_centre(region: np.ndarray) -> tuple[int, int]:
    """``(x, y)`` of the pixel of bool ``[H, W]`` ``region`` farthest from its boundary."""
    # Padding with background makes the frame's edge a boundary too: a click lands inside.
    distance = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(distance)), distance.shape)
    return int(x), int(y)


def next_click(truth: np.ndarray, pred: np.ndarray) -> SimulatedClick | None:
    """The protocol's next click on bool ``[T, H, W]`` masks, None when there is no error."""
    t = worst_frame(truth, pred)
    if t is None:
        return None
    best: tuple[int, int, np.ndarray] | None = None  # (size, label, component mask)
    for label, error in ((POSITIVE, truth[t] & ~pred[t]), (NEGATIVE, pred[t] & ~truth[t])):
        components, count = ndimage.label(error)  # 4-connected
        if count == 0:
            continue
        sizes = np.bincount(components.ravel())[1:]
        largest = int(np.argmax(sizes))  # the first of equal sizes, in row-major order
        # Strictly larger only: on a tie the false negative, looked at first, stays.
        if best is None or sizes[largest] > best[0]:
            best = (int(sizes[largest]), label, components == largest + 1)
    assert best is not None  # J < 1 means some pixel is wrong
    size, label, region = best
    x, y = region_centre(region)
    return SimulatedClick(t, x, y, label, size)


def click_expression(
    run: SegmentationRun,
    expression: int,
    truth: np.ndarray,
    num_clicks: int,
    score: Callable[[np.ndarray], ExpressionScore],
) -> ClickedExpression:
    """Run the protocol on expression ``expression`` of a segmented, correctable ``run``.

    Args:
        truth: bool ``[T, H, W]`` target masks at the run's frame size.
        num_clicks: clicks to simulate at most (N).
        score: J and F of bool ``[T, H, W]`` masks against ``truth`` (called N + 1 times).
    """
    if num_clicks < 0:
        raise ValueError(f"num_clicks must be >= 0, got {num_clicks}")
    truth = np.asarray(truth, dtype=bool)
    masks = run.result().expressions[expression].masks  # updated in place by run.correct
    if truth.shape != masks.shape:
        raise ValueError(f"truth {truth.shape} does not match the run's masks {masks.shape}")
    scores = [score(masks)]
    clicks: list[SimulatedClick] = []
    corrections: list[Correction] = []  # each holds every click on its frame so far (add_clicks)
    while len(clicks) < num_clicks:
        click = next_click(truth, masks)
        if click is None:
            break
        corrections = add_clicks(corrections, expression, click.frame, [(click.x, click.y, click.label)])
        for _ in run.correct(corrections[-1]):
            pass
        clicks.append(click)
        scores.append(score(masks))
    scores += [scores[-1]] * (num_clicks + 1 - len(scores))
    return ClickedExpression(tuple(scores), tuple(clicks))
