"""Validation J&F during training: the inference pipeline on a few expressions of a split.

Each expression is segmented exactly as ``python -m mpg_sam2 segment`` would (frames resized by
PIL, threshold 0.5 at the source resolution) and scored per frame with the davis2017 J and F of
:mod:`mpg_sam2.evaluation.metrics`; J&F is the mean over expressions of (mean J + mean F) / 2.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mpg_sam2.data.types import ReferringDataset, load_masks
from mpg_sam2.evaluation.metrics import boundary_f_measure, region_similarity
from mpg_sam2.model.mpg_sam2 import MPGSAM2
from mpg_sam2.pipeline.segmentation import SegmentationOptions, segment_video
from mpg_sam2.tokenizer import ReferringTokenizer

__all__ = ["VALIDATION_SPLITS", "ValidationResult", "validate"]

# The split with public masks used for validation, per training dataset (None: none exists).
VALIDATION_SPLITS = {"synthetic": "valid", "mevis": "valid_u", "ref-youtube-vos": None, "refcoco": None}


@dataclass
class ValidationResult:
    j: float
    f: float
    num_expressions: int

    @property
    def jf(self) -> float:
        return (self.j + self.f) / 2


def load_validation_set(dataset: str, root: str, split: str | None = None) -> ReferringDataset | None:
    """The validation split of a training dataset, or None when it has none with masks."""
    from mpg_sam2.data.mevis import load_mevis
    from mpg_sam2.data.ref_youtube_vos import load_ref_youtube_vos
    from mpg_sam2.data.synthetic import load_synthetic

    split = split or VALIDATION_SPLITS.get(dataset)
    if split is None:
        return None
    loaders = {"synthetic": load_synthetic, "mevis": load_mevis, "ref-youtube-vos": load_ref_youtube_vos}
    if dataset not in loaders:
        raise ValueError(f"no video validation split for {dataset!r}")
    return loaders[dataset](root, split)


def validate(
    model: MPGSAM2,
    tokenizer: ReferringTokenizer,
    dataset: ReferringDataset,
    max_expressions: int | None = 16,
    precision: str = "fp32",
) -> ValidationResult:
    """Mean J, F over the first ``max_expressions`` expressions with masks (model left in eval mode)."""
    was_training = model.training
    model.eval()
    j_scores: list[float] = []
    f_scores: list[float] = []
    done = 0
    try:
        for video in dataset.videos:
            samples: Sequence = [s for s in video.expressions if s.masks is not None]
            if max_expressions is not None:
                samples = samples[: max_expressions - done]
            if not samples:
                continue
            frames = np.stack([video.read_frame(i) for i in range(len(video.frame_paths))])
            # The pipeline refuses repeated expressions (same words up to case and spacing).
            texts = {" ".join(s.expression.casefold().split()): s.expression for s in samples}
            result = segment_video(frames, list(texts.values()), model, tokenizer,
                                   options=SegmentationOptions(precision=precision))
            by_text = dict(zip(texts, result.expressions))
            for sample in samples:
                segmentation = by_text[" ".join(sample.expression.casefold().split())]
                truth = load_masks(sample.masks)
                j_scores.append(float(np.mean([region_similarity(g, p) for g, p in zip(truth, segmentation.masks)])))
                f_scores.append(float(np.mean([boundary_f_measure(g, p) for g, p in zip(truth, segmentation.masks)])))
            done += len(samples)
            if max_expressions is not None and done >= max_expressions:
                break
    finally:
        model.train(was_training)
    if not j_scores:
        raise ValueError(f"{dataset.name} {dataset.split} has no expressions with masks to validate on")
    return ValidationResult(j=float(np.mean(j_scores)), f=float(np.mean(f_scores)), num_expressions=len(j_scores))
