"""Per-patch attribute loss for the prior warm-up on the synthetic benchmark (not in the paper).

Trained from random weights on captions alone, BEiT-3's patches learn colour but hardly shape,
size or texture, so the prior cannot pick "the star" from "the circle" (prior hit rate about
0.44 on the validation split). A linear head on each BEiT-3 patch output, trained to name the
attributes of the object under the patch, makes the patches carry them (with a convolution over
the patch grid, hit rate 0.59; bench/results/offline_warmup_experiments.md). The head exists only
in training: the saved model does not contain it.

Per clip::

    BEiT-3 patches [T, N, C] -> AttributeHead -> logits [T, N, K + 1]
    object ids under each patch [T, g, g] (ClipDataset label_grid) + the objects' attributes
    -> objectness BCE over every patch + one cross-entropy per attribute over object patches

Size is not learned from cropped clips: the crop's resize changes an object's apparent size.
"""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from mpg_sam2.data.synthetic.attributes import COLOURS, SHAPES, SIZES, TEXTURES

__all__ = ["ATTRIBUTE_GROUPS", "AttributeHead", "attribute_loss", "attribute_targets"]

# Each attribute and its classes, in the head's output order; objectness is the last output.
ATTRIBUTE_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("colour", tuple(COLOURS)),
    ("shape", SHAPES),
    ("size", tuple(SIZES)),
    ("texture", TEXTURES),
)
_IGNORE = -100  # F.cross_entropy's ignore_index


class AttributeHead(nn.Module):
    """``[..., C]`` patch tokens -> ``[..., K + 1]``: the logits of every attribute class, then objectness."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, sum(len(classes) for _, classes in ATTRIBUTE_GROUPS) + 1)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.proj(patches)


def attribute_targets(
    object_labels: torch.Tensor, objects: Mapping[int, Mapping[str, str]], size_known: bool = True
) -> torch.Tensor:
    """Class index per patch and attribute ``[T, g, g, len(ATTRIBUTE_GROUPS)]``; -100 (ignored) on
    background patches, and for size where ``size_known`` is False."""
    table = torch.full((int(object_labels.max()) + 1, len(ATTRIBUTE_GROUPS)), _IGNORE, dtype=torch.long)
    for object_id, attributes in objects.items():
        if object_id < table.shape[0]:
            table[object_id] = torch.tensor([classes.index(attributes[name]) for name, classes in ATTRIBUTE_GROUPS])
    table[0] = _IGNORE
    if not size_known:
        table[:, [name for name, _ in ATTRIBUTE_GROUPS].index("size")] = _IGNORE
    return table.to(object_labels.device)[object_labels]


def attribute_loss(logits: torch.Tensor, object_labels: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """logits ``[T, N, K + 1]``, object_labels ``[T, g, g]`` (N = g²), targets from
    :func:`attribute_targets`: objectness BCE plus the sum of the attributes' cross-entropies."""
    logits = logits.reshape(-1, logits.shape[-1]).float()
    foreground = (object_labels.reshape(-1) > 0).float()
    loss = F.binary_cross_entropy_with_logits(logits[:, -1], foreground)
    targets = targets.reshape(-1, targets.shape[-1])
    start = 0
    for k, (_, classes) in enumerate(ATTRIBUTE_GROUPS):
        if (targets[:, k] != _IGNORE).any():  # cross_entropy of nothing is NaN
            loss = loss + F.cross_entropy(logits[:, start : start + len(classes)], targets[:, k], ignore_index=_IGNORE)
        start += len(classes)
    return loss
