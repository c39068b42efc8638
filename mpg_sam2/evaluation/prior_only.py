"""The mask prior alone: which object it picks and its J&F, per expression type, without SAM 2.

The full model picks the object its prior picks (the object-choice diagnostic of
:mod:`.grounding` shows their hit rates within a few points of each other), and the prior needs
only BEiT-3 and the mask prior generator. Scoring it alone is several times faster than running
the whole model, and it is the only meaningful score of a prior warm-up checkpoint, whose SAM 2
is still at its random initialisation. The numbers are those of the diagnostic's prior columns,
computed the same way (:func:`.grounding.prior_choice`) on the same float32 priors.

    python -m mpg_sam2.evaluation.synthetic_report --model runs/prior_warmup/step-001900 --data data/synthetic \\
        --split valid --prior-only
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np
import torch

from mpg_sam2.data.synthetic import load_synthetic
from mpg_sam2.evaluation.grounding import expression_groups, prior_choice, read_label_maps
from mpg_sam2.frames import encoder_input
from mpg_sam2.model.mpg_sam2 import MPGSAM2
from mpg_sam2.pipeline.expressions import prepare_distinct
from mpg_sam2.tokenizer import ReferringTokenizer

__all__ = ["PriorSummary", "evaluate_priors", "format_prior_table"]


@dataclass(frozen=True)
class PriorSummary:
    """Means over ``count`` expressions of one group."""

    count: int
    hit_rate: float  # share of expressions whose prior picks the referred object
    jf: float  # the prior's own J&F (upsampled, > 0.5)


def evaluate_priors(
    model: MPGSAM2,
    tokenizer: ReferringTokenizer,
    root: str | Path,
    split: str = "valid",
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, PriorSummary]:
    """``{"overall": ..., "<type>": ..., "<type>, phrase needed": ...}`` for every expression of
    ``split`` of the synthetic benchmark at ``root``, in float32 on the model's device."""
    dataset = load_synthetic(root, split)
    groups = expression_groups(root, split)
    members: dict[str, list[tuple[bool, float]]] = defaultdict(list)
    total = sum(len(v.expressions) for v in dataset.videos)
    device, was_training, done = model.device, model.training, 0
    model.eval()
    try:
        with torch.inference_mode():
            for video in dataset.videos:
                frames = np.stack([video.read_frame(i) for i in range(len(video.frame_paths))])
                beit_pixels = encoder_input(frames, model.config.beit3.image_size).to(device)  # [T, 3, B, B]
                labels = read_label_maps(video.expressions[0].masks)  # [T, H, W], the same for every sentence
                prepared = prepare_distinct([s.expression.strip() for s in video.expressions], tokenizer,
                                            max_tokens=model.config.beit3.max_text_tokens)
                for sample, expression in zip(video.expressions, prepared):
                    _, prior = model.encode_expression(beit_pixels, expression.input_ids.to(device),
                                                       expression.attention_mask.to(device))
                    choice, jf = prior_choice(sample, prior.prior[:, 0].float().cpu().numpy(), labels)
                    hit = choice == sample.masks.object_ids[0]
                    for name in ("overall", *groups[(sample.video_id, sample.expression_id)]):
                        members[name].append((hit, jf))
                    done += 1
                    if progress is not None:
                        progress(done, total)
    finally:
        model.train(was_training)
    return {
        name: PriorSummary(len(rows), float(np.mean([h for h, _ in rows])), float(np.mean([j for _, j in rows])))
        for name, rows in sorted(members.items(), key=lambda item: (item[0] != "overall", item[0]))
    }


def format_prior_table(rows: Mapping[str, PriorSummary], title: str = "expressions") -> str:
    lines = [f"| {title} | count | prior hit rate | prior J&F |", "|---|---|---|---|"]
    lines += [f"| {name} | {r.count} | {r.hit_rate:.3f} | {r.jf:.3f} |" for name, r in rows.items()]
    return "\n".join(lines)
