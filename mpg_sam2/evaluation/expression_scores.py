"""J and F of every expression of a split that has public masks, through the inference pipeline.

Each video is segmented once for all of its expressions, exactly as ``python -m mpg_sam2 segment``
would (frames resized by PIL, threshold 0.5 at the source resolution), and each expression is
scored with :func:`mpg_sam2.evaluation.aggregate.score_expression` (davis2017 J and F per frame,
mean over frames). The training validation, the synthetic-benchmark report and the offline
model's regression test all use it; :func:`score_expressions_with_clicks` adds the
simulated-click protocol (:mod:`.simulated_clicks`) on the same segmentation and scoring.
"""
from __future__ import annotations

import contextlib
import functools
from collections import defaultdict
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np

from mpg_sam2.data.types import ReferringDataset, ReferringSample, ReferringVideo, load_masks
from mpg_sam2.evaluation.aggregate import ExpressionScore, MeanScores, score_expression, summarize
from mpg_sam2.evaluation.simulated_clicks import ClickedExpression, click_expression
from mpg_sam2.model.mpg_sam2 import MPGSAM2
from mpg_sam2.pipeline.expressions import PreparedExpression, prepare_distinct
from mpg_sam2.pipeline.segmentation import ExpressionSegmentation, SegmentationOptions, SegmentationRun, segment_video
from mpg_sam2.tokenizer import ReferringTokenizer

__all__ = ["score_expressions", "score_expressions_with_clicks", "summarize_by_group"]


def score_expressions(
    model: MPGSAM2,
    tokenizer: ReferringTokenizer,
    dataset: ReferringDataset,
    max_expressions: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_result: Callable[[ReferringSample, ExpressionSegmentation], None] | None = None,
) -> list[ExpressionScore]:
    """Scores of the first ``max_expressions`` expressions with masks (all when None).

    The model is put in eval mode and left in the mode it was in. ``progress(done, total)`` is
    called after each video; ``on_result(sample, result)`` after each expression is segmented
    (e.g. for the object-choice diagnostic of :mod:`.grounding`).
    """
    videos = _videos_to_score(dataset, max_expressions)
    total = sum(len(samples) for _, samples in videos)
    scores: list[ExpressionScore] = []
    with _eval_mode(model):
        for video, samples in videos:
            frames, texts, prepared = _video_inputs(video, samples, model, tokenizer)
            result = segment_video(frames, prepared, model, options=SegmentationOptions())
            by_text = dict(zip(texts, result.expressions))
            for sample in samples:
                segmented = by_text[sample.expression.strip()]
                scores.append(score_expression(video.video_id, sample.expression_id, load_masks(sample.masks), segmented.masks))
                if on_result is not None:
                    on_result(sample, segmented)
            if progress is not None:
                progress(len(scores), total)
    return scores


def score_expressions_with_clicks(
    model: MPGSAM2,
    tokenizer: ReferringTokenizer,
    dataset: ReferringDataset,
    clicks: int,
    max_expressions: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_result: Callable[[ReferringSample, ExpressionSegmentation], None] | None = None,
) -> list[ClickedExpression]:
    """:func:`score_expressions` followed by the simulated-click protocol (:mod:`.simulated_clicks`):
    per expression, its scores after 0, 1, ..., ``clicks`` clicks (after 0: the plain scores).

    Each expression is its own tracker here, also where a video repeats a sentence, since two
    expressions of one sentence may refer to different objects and get different clicks; the
    masks before any click are the same as :func:`score_expressions` gives. ``on_result`` sees
    the result before any click.
    """
    videos = _videos_to_score(dataset, max_expressions)
    total = sum(len(samples) for _, samples in videos)
    clicked: list[ClickedExpression] = []
    with _eval_mode(model):
        for video, samples in videos:
            frames, texts, distinct = _video_inputs(video, samples, model, tokenizer)
            prepared = dict(zip(texts, distinct))
            run = SegmentationRun(
                frames, [prepared[s.expression.strip()] for s in samples], model,
                options=SegmentationOptions(), correctable=True,
            )
            for _ in run.segment():
                pass
            for k, sample in enumerate(samples):
                truth = load_masks(sample.masks)
                if on_result is not None:
                    on_result(sample, run.result().expressions[k])
                score = functools.partial(score_expression, video.video_id, sample.expression_id, truth)
                clicked.append(click_expression(run, k, truth, clicks, score))
            if progress is not None:
                progress(len(clicked), total)
    return clicked


def _video_inputs(
    video: ReferringVideo, samples: Sequence[ReferringSample], model: MPGSAM2, tokenizer: ReferringTokenizer
) -> tuple[np.ndarray, list[str], list[PreparedExpression]]:
    """The video's frames ``[T, H, W, 3]``, its distinct sentences (stripped, first-seen order)
    and each one prepared once."""
    frames = np.stack([video.read_frame(i) for i in range(len(video.frame_paths))])
    texts = list(dict.fromkeys(s.expression.strip() for s in samples))
    return frames, texts, prepare_distinct(texts, tokenizer, max_tokens=model.config.beit3.max_text_tokens)


def _videos_to_score(
    dataset: ReferringDataset, max_expressions: int | None
) -> list[tuple[ReferringVideo, list[ReferringSample]]]:
    """Videos with their expressions that have masks, up to the first ``max_expressions`` of them."""
    videos: list[tuple[ReferringVideo, list[ReferringSample]]] = []
    taken = 0
    for video in dataset.videos:
        samples = [s for s in video.expressions if s.masks is not None]
        if max_expressions is not None:
            samples = samples[: max(0, max_expressions - taken)]
        if samples:
            videos.append((video, samples))
            taken += len(samples)
    if not videos:
        raise ValueError(f"{dataset.name} {dataset.split} has no expressions with masks to score")
    return videos


@contextlib.contextmanager
def _eval_mode(model: MPGSAM2) -> Iterator[None]:
    """The model in eval mode, then back in the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def summarize_by_group(
    scores: Sequence[ExpressionScore], groups: Mapping[tuple[str, str], str]
) -> dict[str, MeanScores]:
    """``{"overall": ..., group: ...}``; ``groups`` maps (video id, expression id) to a group name."""
    grouped: dict[str, list[ExpressionScore]] = defaultdict(list)
    for score in scores:
        grouped[groups[(score.video_id, score.expression_id)]].append(score)
    return {"overall": summarize(scores).overall, **{name: summarize(grouped[name]).overall for name in sorted(grouped)}}
