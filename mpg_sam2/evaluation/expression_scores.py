"""J and F of every expression of a split that has public masks, through the inference pipeline.

Each video is segmented once for all of its expressions, exactly as ``python -m mpg_sam2 segment``
would (frames resized by PIL, threshold 0.5 at the source resolution), and each expression is
scored with :func:`mpg_sam2.evaluation.aggregate.score_expression` (davis2017 J and F per frame,
mean over frames). The training validation, the synthetic-benchmark report and the offline
model's regression test all use it.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Callable, Mapping, Sequence

import numpy as np

from mpg_sam2.data.types import ReferringDataset, ReferringSample, load_masks
from mpg_sam2.evaluation.aggregate import ExpressionScore, MeanScores, score_expression, summarize
from mpg_sam2.model.mpg_sam2 import MPGSAM2
from mpg_sam2.pipeline.expressions import prepare_distinct
from mpg_sam2.pipeline.segmentation import ExpressionSegmentation, SegmentationOptions, segment_video
from mpg_sam2.tokenizer import ReferringTokenizer

__all__ = ["score_expressions", "summarize_by_group"]


def score_expressions(
    model: MPGSAM2,
    tokenizer: ReferringTokenizer,
    dataset: ReferringDataset,
    max_expressions: int | None = None,
    precision: str = "fp32",
    progress: Callable[[int, int], None] | None = None,
    on_result: Callable[[ReferringSample, ExpressionSegmentation], None] | None = None,
) -> list[ExpressionScore]:
    """Scores of the first ``max_expressions`` expressions with masks (all when None).

    The model is put in eval mode and left in the mode it was in. ``progress(done, total)`` is
    called after each video; ``on_result(sample, result)`` after each expression is segmented
    (e.g. for the object-choice diagnostic of :mod:`.grounding`).
    """
    samples_by_video = [(v, [s for s in v.expressions if s.masks is not None]) for v in dataset.videos]
    total = sum(len(s) for _, s in samples_by_video)
    if max_expressions is not None:
        total = min(total, max_expressions)
    if total == 0:
        raise ValueError(f"{dataset.name} {dataset.split} has no expressions with masks to score")
    was_training = model.training
    model.eval()
    scores: list[ExpressionScore] = []
    try:
        for video, samples in samples_by_video:
            samples = samples[: total - len(scores)]
            if not samples:
                continue
            frames = np.stack([video.read_frame(i) for i in range(len(video.frame_paths))])
            texts = list(dict.fromkeys(s.expression.strip() for s in samples))
            prepared = prepare_distinct(texts, tokenizer, max_tokens=model.config.beit3.max_text_tokens)
            result = segment_video(frames, prepared, model, options=SegmentationOptions(precision=precision))
            by_text = dict(zip(texts, result.expressions))
            for sample in samples:
                segmented = by_text[sample.expression.strip()]
                scores.append(score_expression(video.video_id, sample.expression_id, load_masks(sample.masks), segmented.masks))
                if on_result is not None:
                    on_result(sample, segmented)
            if progress is not None:
                progress(len(scores), total)
            if len(scores) >= total:
                break
    finally:
        model.train(was_training)
    return scores


def summarize_by_group(
    scores: Sequence[ExpressionScore], groups: Mapping[tuple[str, str], str]
) -> dict[str, MeanScores]:
    """``{"overall": ..., group: ...}``; ``groups`` maps (video id, expression id) to a group name."""
    grouped: dict[str, list[ExpressionScore]] = defaultdict(list)
    for score in scores:
        grouped[groups[(score.video_id, score.expression_id)]].append(score)
    return {"overall": summarize(scores).overall, **{name: summarize(grouped[name]).overall for name in sorted(grouped)}}
