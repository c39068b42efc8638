"""Per-patch motion loss for the prior warm-up on the synthetic benchmark (not in the paper).

The caption loss (:mod:`.caption_loss`) makes BEiT-3's class token carry "moving left", but the
prior can follow that only where the video tokens say which object moves left. A linear head on
each output token of the mask prior generator's space-time layer, trained to name the motion of
the object under the patch, makes them say it. Without the generator's patch motion features
(``MaskPriorConfig.motion_features``) this loss stays at chance: the layer has no frame order.
With them, the development split's prior hit rate after 3,000 steps rose from 0.589 to 0.716
(bench/results/offline_warmup_experiments.md, session 32). The head exists only in training: the
saved model does not contain it.

Per clip::

    space-time tokens [T, N, C] -> MotionHead -> logits [T, N, len(MOTIONS)]
    object ids under each patch [T, g, g] (ClipDataset label_grid) + the objects' motions
    (left and right exchanged on a flipped clip) -> cross-entropy over the object patches
"""
from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from mpg_sam2.data.synthetic.attributes import MOTIONS

__all__ = ["MotionHead", "has_objects", "motion_loss", "motion_targets"]

_IGNORE = -100  # F.cross_entropy's ignore_index
_MIRRORED = {"left": "right", "right": "left"}


class MotionHead(nn.Module):
    """``[..., C]`` space-time tokens -> ``[..., len(MOTIONS)]`` motion logits."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, len(MOTIONS))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.proj(tokens)


def motion_targets(object_labels: torch.Tensor, objects: Mapping[int, Mapping[str, str]], flipped: bool) -> torch.Tensor:
    """Motion class per patch ``[T, g, g]`` int64 from the object ids under each patch; -100
    (ignored) on background. ``flipped``: the clip was mirrored, so an object recorded as moving
    left is seen moving right."""
    table = torch.full((int(object_labels.max()) + 1,), _IGNORE, dtype=torch.long)
    for object_id, attributes in objects.items():
        if 0 < object_id < table.shape[0]:
            if "motion" not in attributes:
                raise ValueError("the motion loss (--motion-loss) needs each object's motion, which the synthetic "
                                 "benchmark records in meta_expressions.json 'objects'; regenerate the dataset")
            motion = attributes["motion"]
            table[object_id] = MOTIONS.index(_MIRRORED.get(motion, motion) if flipped else motion)
    return table.to(object_labels.device)[object_labels]


def has_objects(targets: torch.Tensor) -> bool:
    """Whether ``targets`` from :func:`motion_targets` name any patch's motion."""
    return bool((targets != _IGNORE).any())


def motion_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """logits ``[T, N, K]``, targets ``[T, g, g]`` (N = g²) from :func:`motion_targets`: the
    cross-entropy over object patches (0 for a clip without any: check :func:`has_objects`)."""
    logits = logits.reshape(-1, logits.shape[-1]).float()
    targets = targets.reshape(-1)
    if not has_objects(targets):  # cross_entropy of nothing is NaN
        return logits.sum() * 0.0
    return F.cross_entropy(logits, targets, ignore_index=_IGNORE)
