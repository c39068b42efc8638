"""Caption loss for the prior warm-up on the synthetic benchmark (not in the paper).

The mask prior generator sees the caption only through BEiT-3's class token of each frame (its
gate on the video tokens). Trained from random weights on the prior loss alone, that token
carries the size and colour words and hardly anything after them: replacing "moving left" by
"moving right" moved the gate a thousandth as far as replacing a colour word, so no loss on
the prior could make it follow a motion, relation or time phrase
(bench/results/offline_warmup_experiments.md, session 30). A linear head on the class token,
trained to say what the caption says -- its template and the words describing the target and the
reference -- makes the token carry the whole sentence. The head exists only in training: the
saved model does not contain it.

Per clip::

    BEiT-3 class token of each frame [T, C] -> CaptionHead -> logits [T, K]
    caption (after augmentation) -> parse_caption -> one class per group [G]
    -> mean over the G groups of the cross-entropy, every frame against the same classes
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mpg_sam2.data.synthetic.expressions import TEMPLATES, parse_caption
from mpg_sam2.training.attribute_loss import ATTRIBUTE_GROUPS

__all__ = ["CAPTION_GROUPS", "CaptionHead", "caption_loss", "caption_targets"]

# (name, number of classes) in the head's output order: the template, then each attribute of
# the target and of the reference, each with a last class for "not said".
CAPTION_GROUPS: tuple[tuple[str, int], ...] = (
    ("template", len(TEMPLATES)),
    *((f"{role} {name}", len(classes) + 1) for role in ("target", "reference") for name, classes in ATTRIBUTE_GROUPS),
)


class CaptionHead(nn.Module):
    """``[..., C]`` class tokens -> ``[..., K]``: the logits of every group's classes, concatenated."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, sum(size for _, size in CAPTION_GROUPS))

    def forward(self, cls: torch.Tensor) -> torch.Tensor:
        return self.proj(cls)


def caption_targets(text: str) -> torch.Tensor:
    """The class of each group ``[G]`` int64 for a sentence of the synthetic benchmark
    (ValueError for any other text)."""
    try:
        caption = parse_caption(text)
    except ValueError as e:
        raise ValueError(f"{e}: the caption loss (--caption-loss) reads the synthetic benchmark's sentences only; "
                         "train on other data without it") from None
    classes = [TEMPLATES.index(caption.template)]
    for said in (caption.target, caption.reference):
        classes += [names.index(said[name]) if name in said else len(names) for name, names in ATTRIBUTE_GROUPS]
    return torch.tensor(classes, dtype=torch.long)


def caption_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """logits ``[T, K]``, targets ``[G]`` from :func:`caption_targets`: the mean over the groups of
    the cross-entropy of every frame's logits."""
    logits = logits.float()
    terms, start = [], 0
    for k, (_, size) in enumerate(CAPTION_GROUPS):
        expected = targets[k].to(logits.device).expand(logits.shape[0])
        terms.append(F.cross_entropy(logits[:, start : start + size], expected))
        start += size
    return torch.stack(terms).mean()
