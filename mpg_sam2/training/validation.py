"""Validation J&F during training: the inference pipeline on a few expressions of a split.

Scored by :func:`mpg_sam2.evaluation.expression_scores.score_expressions` (the ``segment``
pipeline, davis2017 J and F); J&F is the mean over expressions of (mean J + mean F) / 2.
"""
from __future__ import annotations

from mpg_sam2.data.types import ReferringDataset
from mpg_sam2.evaluation.aggregate import MeanScores, summarize
from mpg_sam2.evaluation.expression_scores import score_expressions
from mpg_sam2.model.mpg_sam2 import MPGSAM2
from mpg_sam2.tokenizer import ReferringTokenizer

__all__ = ["VALIDATION_SPLITS", "validate"]

# The split with public masks used for validation, per training dataset (None: none exists).
VALIDATION_SPLITS = {"synthetic": "valid", "mevis": "valid_u", "ref-youtube-vos": None, "refcoco": None}


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
) -> MeanScores:
    """Mean J, F over the first ``max_expressions`` expressions with masks (model left in its mode)."""
    return summarize(score_expressions(model, tokenizer, dataset, max_expressions)).overall
