"""Ref-DAVIS17 scoring: davis2017-evaluation's *unsupervised* task, once per annotator.

The papers' Ref-DAVIS17 numbers come from ReferFormer's pipeline: per annotator, the masks of a
video's expressions (one per object) are merged into one label map per frame, and
davis2017-evaluation scores the label maps with ``task="unsupervised"``:

- ground-truth objects are the ids ``1..max`` of the *first* annotation frame; pixels of value
  255 are void (ignored by J and F);
- predicted objects are the ids ``1..max`` over all predicted frames, padded with empty objects
  up to the number of ground-truth objects (more than 20 is an error there, and here);
- J and F are computed for every (prediction, ground truth) pair on every frame, and
  ``scipy.optimize.linear_sum_assignment`` matches them on the mean over frames of (J + F) / 2;
- each matched ground-truth object contributes its mean J and mean F; the annotator's J and F are
  the means over all objects of all videos.

The four annotators' J, F and J&F are then averaged (:func:`mpg_sam2.evaluation.summarize` does
that for scores carrying an ``annotator``).

Merging. ReferFormer merges per pixel by the argmax of the expressions' probabilities (below 0.5
counts as background). The pipeline hands over binary masks only, so where two expressions claim
a pixel the **later** expression (higher object index) wins (:func:`mpg_sam2.mask_io.label_map.label_map`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from mpg_sam2.mask_io.png import read_label_png

from .aggregate import ExpressionScore
from .metrics import boundary_f_measure, region_similarity

__all__ = [
    "MAX_PROPOSALS",
    "ObjectMatch",
    "match_objects",
    "read_label_maps",
    "score_annotator",
]

MAX_PROPOSALS = 20  # davis2017-evaluation's limit on predicted objects per video
VOID = 255


def read_label_maps(paths: Sequence[Path]) -> np.ndarray:
    """uint8 ``[T, H, W]`` label values of palette (or grey) PNGs (:func:`~mpg_sam2.mask_io.png.read_label_png`)."""
    frames = [read_label_png(path, missing_hint="predict (or merge) every frame first") for path in paths]
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise ValueError(f"label maps {paths[0].parent} must be of one size, got shapes {sorted(shapes)}")
    return np.stack(frames)


@dataclass(frozen=True)
class ObjectMatch:
    """One ground-truth object and the predicted object matched to it (None: an empty padding object)."""

    gt_id: int
    pred_id: int | None
    j: np.ndarray  # float64 [T]
    f: np.ndarray  # float64 [T]


def match_objects(gt_labels: np.ndarray, pred_labels: np.ndarray, bound_th: float = 0.008) -> list[ObjectMatch]:
    """Match predicted to ground-truth objects of one video as davis2017's unsupervised task does.

    Args:
        gt_labels: uint8 ``[T, H, W]`` ground-truth ids (255 = void).
        pred_labels: uint8 ``[T, H, W]`` predicted ids.
    Returns one match per ground-truth object, in ground-truth id order.
    """
    if gt_labels.shape != pred_labels.shape:
        raise ValueError(f"ground truth {gt_labels.shape} and predictions {pred_labels.shape} differ in shape")
    from scipy.optimize import linear_sum_assignment  # the solver davis2017-evaluation uses

    void = gt_labels == VOID
    gt = np.where(void, 0, gt_labels)
    num_gt = int(gt[0].max())
    num_pred = int(pred_labels.max())
    if num_pred > MAX_PROPOSALS:
        raise ValueError(f"{num_pred} predicted objects; davis2017-evaluation accepts at most {MAX_PROPOSALS}")
    num_rows = max(num_pred, num_gt)  # empty objects pad the predictions up to the ground truth
    num_frames = gt.shape[0]
    j = np.zeros((num_rows, num_gt, num_frames))
    f = np.zeros((num_rows, num_gt, num_frames))
    for ii in range(num_gt):
        gt_obj = gt == ii + 1
        for jj in range(num_rows):
            pred_obj = pred_labels == jj + 1  # all False for padding rows
            for t in range(num_frames):
                j[jj, ii, t] = region_similarity(gt_obj[t], pred_obj[t], void=void[t])
                f[jj, ii, t] = boundary_f_measure(gt_obj[t], pred_obj[t], bound_th, void=void[t])
    if num_gt == 0:
        return []
    rows, cols = linear_sum_assignment(-(j.mean(axis=2) + f.mean(axis=2)) / 2)
    matches = [
        ObjectMatch(int(c) + 1, int(r) + 1 if r < num_pred else None, j[r, c], f[r, c]) for r, c in zip(rows, cols)
    ]
    return sorted(matches, key=lambda m: m.gt_id)


def score_annotator(
    video_id: str,
    annotator: int,
    gt_paths: Sequence[Path],
    pred_paths: Sequence[Path],
    expression_ids: Sequence[str],
    bound_th: float = 0.008,
) -> list[ExpressionScore]:
    """One score per ground-truth object of ``video_id`` for one annotator's label maps.

    ``expression_ids[k]`` is the expression whose masks carry label ``k + 1``; a score's
    ``expression_id`` names the matched expression, or ``"none (object N)"`` when no predicted
    object was left for ground-truth object N (it then scores J = 0 and F = 0, as in the reference).
    """
    matches = match_objects(read_label_maps(gt_paths), read_label_maps(pred_paths), bound_th)
    scores = []
    for m in matches:
        if m.pred_id is not None and m.pred_id <= len(expression_ids):
            name = expression_ids[m.pred_id - 1]
        else:
            name = f"none (object {m.gt_id})"
        scores.append(ExpressionScore(video_id, name, float(np.mean(m.j)), float(np.mean(m.f)), len(m.j), annotator))
    return scores
