"""Does the model pick the object the sentence names? Object choice and hit rate per expression.

J&F mixes two failures: segmenting the wrong object, and segmenting the right one badly. On a
benchmark whose label maps hold every object (the synthetic one), the two can be told apart:
the *chosen object* of a prediction is the annotated object its masks overlap most (pixels summed
over all frames), and the prediction *hits* when that is the referred object. The same is done
for the mask prior alone (the generator's pseudo-masks, upsampled and thresholded at 0.5), which
shows whether grounding is lost before or inside SAM 2's propagation.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from mpg_sam2.data.synthetic import read_expression_types, read_phrase_needed
from mpg_sam2.data.types import PaletteMaskSource, ReferringSample
from mpg_sam2.evaluation.aggregate import score_expression
from mpg_sam2.mask_io.png import read_label_png
from mpg_sam2.pipeline.segmentation import ExpressionSegmentation

__all__ = [
    "GroundingScore",
    "GroundingSummary",
    "chosen_object",
    "expression_groups",
    "format_grounding_table",
    "grounding_score",
    "prior_choice",
    "prior_masks",
    "read_label_maps",
    "summarize_grounding",
]


@dataclass(frozen=True)
class GroundingScore:
    """One expression: which object the masks and the prior pick, and the prior's own J&F."""

    video_id: str
    expression_id: str
    target: int  # the referred object's id in the label maps
    model_choice: int | None  # None: the masks overlap no annotated object
    prior_choice: int | None
    prior_jf: float

    @property
    def model_hit(self) -> bool:
        return self.model_choice == self.target

    @property
    def prior_hit(self) -> bool:
        return self.prior_choice == self.target


@dataclass(frozen=True)
class GroundingSummary:
    """Means over ``count`` expressions of one group."""

    count: int
    jf: float  # the model's mean J&F
    hit_rate: float  # share of expressions whose masks pick the referred object
    jf_when_hit: float | None  # mean J&F of those (None: no hit)
    prior_hit_rate: float
    prior_jf: float


def chosen_object(masks: np.ndarray, labels: np.ndarray) -> int | None:
    """The object id (> 0) of ``labels`` uint ``[T, H, W]`` that ``masks`` bool ``[T, H, W]``
    overlaps most over all frames (lowest id on ties); None when it overlaps none."""
    overlap = np.bincount(labels[masks].ravel().astype(np.int64), minlength=int(labels.max()) + 1)
    overlap[0] = 0  # background
    return int(overlap.argmax()) if overlap.max() > 0 else None


def prior_masks(priors: np.ndarray, height: int, width: int) -> np.ndarray:
    """Mask priors float ``[T, g, g]`` in [0, 1] -> bool ``[T, height, width]`` (bilinear, > 0.5)."""
    upsampled = F.interpolate(torch.from_numpy(priors)[:, None].float(), size=(height, width), mode="bilinear", align_corners=False)
    return (upsampled[:, 0] > 0.5).numpy()


def grounding_score(
    sample: ReferringSample, result: ExpressionSegmentation, labels: np.ndarray | None = None
) -> GroundingScore:
    """Object choice of ``result``'s masks and mask priors for ``sample``, whose masks must come
    from label maps of every object (:class:`PaletteMaskSource` with one referred object).
    ``labels`` ``[T, H, W]``: those label maps, when the caller has read them already (they are
    the same for every sentence of a video)."""
    source = sample.masks
    if not isinstance(source, PaletteMaskSource) or len(source.object_ids) != 1:
        raise ValueError(
            f"expression {sample.expression_id!r} of video {sample.video_id!r}: object choice needs label maps of every "
            "object and one referred object (the synthetic benchmark has them)"
        )
    if labels is None:
        labels = read_label_maps(source)
    choice, jf = prior_choice(sample, result.mask_priors, labels)
    return GroundingScore(
        video_id=sample.video_id,
        expression_id=sample.expression_id,
        target=source.object_ids[0],
        model_choice=chosen_object(result.masks, labels),
        prior_choice=choice,
        prior_jf=jf,
    )


def prior_choice(sample: ReferringSample, priors: np.ndarray, labels: np.ndarray) -> tuple[int | None, float]:
    """The object the mask priors ``[T, g, g]`` pick in ``labels`` ``[T, H, W]``, and their J&F
    against ``sample``'s referred object (one id of the label maps)."""
    prior = prior_masks(priors, *labels.shape[1:])
    target = sample.masks.object_ids[0]
    score = score_expression(sample.video_id, sample.expression_id, list(labels == target), list(prior))
    return chosen_object(prior, labels), score.jf


def expression_groups(root: str | Path, split: str) -> dict[tuple[str, str], list[str]]:
    """(video id, expression id) -> the groups the diagnostics report it in: its type and, when
    its description alone fits another object too, "<type>, phrase needed"."""
    types, needed = read_expression_types(root, split), read_phrase_needed(root, split)
    return {key: [kind] + ([f"{kind}, phrase needed"] if needed.get(key) else []) for key, kind in types.items()}


def read_label_maps(source: PaletteMaskSource) -> np.ndarray:
    """The label maps ``[T, H, W]`` of every object, as ``source`` reads its frames."""
    return np.stack([read_label_png(path) for path in source.paths])


def summarize_grounding(
    scores: Iterable[GroundingScore],
    jf: Mapping[tuple[str, str], float],
    groups: Mapping[tuple[str, str], Iterable[str]],
) -> dict[str, GroundingSummary]:
    """``{"overall": ..., group: ...}``; ``jf`` maps (video id, expression id) to the model's J&F,
    ``groups`` to the names of the groups the expression belongs to."""
    grouped: dict[str, list[GroundingScore]] = defaultdict(list)
    for score in scores:
        grouped["overall"].append(score)
        for name in groups.get((score.video_id, score.expression_id), ()):
            grouped[name].append(score)

    def summary(members: list[GroundingScore]) -> GroundingSummary:
        hits = [jf[(s.video_id, s.expression_id)] for s in members if s.model_hit]
        return GroundingSummary(
            count=len(members),
            jf=float(np.mean([jf[(s.video_id, s.expression_id)] for s in members])),
            hit_rate=float(np.mean([s.model_hit for s in members])),
            jf_when_hit=float(np.mean(hits)) if hits else None,
            prior_hit_rate=float(np.mean([s.prior_hit for s in members])),
            prior_jf=float(np.mean([s.prior_jf for s in members])),
        )

    return {name: summary(grouped[name]) for name in sorted(grouped, key=lambda name: (name != "overall", name))}


def format_grounding_table(rows: Mapping[str, GroundingSummary], title: str = "expressions") -> str:
    lines = [f"| {title} | count | J&F | hit rate | J&F when hit | prior hit rate | prior J&F |", "|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        when_hit = "-" if r.jf_when_hit is None else f"{r.jf_when_hit:.3f}"
        lines.append(f"| {name} | {r.count} | {r.jf:.3f} | {r.hit_rate:.3f} | {when_hit} | {r.prior_hit_rate:.3f} | {r.prior_jf:.3f} |")
    return "\n".join(lines)
