"""The training objective of the authors' code (SPEC §11, paper eq. 6): focal + dice + "sim".

For one video with ``T`` frames the prediction is the ``[T, H, W]`` logit map at the SAM 2 input
size (1024 for the released models) and the target the binary ``[T, H, W]`` mask resized to it.
``N`` is the number of valid frames (frames whose target is not empty) in the whole batch,
clamped to at least 1, as in ReferFormer's criterion the authors build on:

* focal: ``BCE(x, y) * (1 - p_t)^2 * alpha_t`` with alpha 0.25 for positives and 0.75 for
  negatives, averaged over the ``T*H*W`` pixels of a video, summed over videos, divided by ``N``;
* dice: ``1 - (2 sum(sigma(x) y) + 1) / (sum sigma(x) + sum y + 1)`` over the ``T*H*W`` pixels of a
  video, summed over videos, divided by ``N``;
* sim: per frame ``(cos(sigma(x), s) - cos(y, s))^2`` with ``s`` the frame's scalar
  ``text_similarity_head(text feature of <s>)`` broadcast to an ``H x W`` map; averaged over all
  frames of the batch.

The "sim" term is implemented as coded so that training behaves like the authors'. Note what it
computes: ``s`` is a constant map, so ``cos(z, s) = sign(s) * sum(z) / (|z| sqrt(HW))`` and the
sign cancels in the square. The loss matches the mean/RMS ratio of the predicted probability map
to the target's (for a binary target the square root of its foreground fraction; 0 for an empty
target) and does not depend on the text at all: ``text_similarity_head`` receives a gradient
that is zero up to rounding, so it never learns anything useful.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "ClipPrediction",
    "LossOutput",
    "LossWeights",
    "dice_loss",
    "iou_head_errors",
    "lowest_loss_index",
    "mask_prior_loss",
    "num_valid_frames",
    "referring_loss",
    "sigmoid_focal_loss",
    "similarity_loss",
]

FOCAL_ALPHA = 0.25
FOCAL_GAMMA = 2.0


@dataclass(frozen=True)
class LossWeights:
    """The paper's weights (eq. 6, §4.2): focal 2, dice 5, sim 2.

    ``object_score`` weights a binary cross-entropy on SAM 2's object-score logit (target: the
    frame's mask is not empty). The authors have no such term (0): they start from SAM 2's
    trained object-score head and never train it. A model whose SAM 2 starts from random
    weights needs it, because the hard no-object gate (-1024 where the score is <= 0) would
    otherwise block every gradient on frames the untrained head calls empty. With a weight > 0
    the mask losses read the logits before the gate (as SAM 2's own training does).
    """

    focal: float = 2.0
    dice: float = 5.0
    sim: float = 2.0
    object_score: float = 0.0
    # Focal + dice on the mask prior itself (see :func:`mask_prior_loss`); the authors have no
    # such term (0): their prior learns only through SAM 2's prompt encoder, which works when
    # SAM 2 is trained already but is far too weak a signal for a model trained from scratch.
    prior: float = 0.0
    # L1 of the IoU head against each multimask output's true IoU (see :func:`iou_head_errors`);
    # > 0 also makes the mask losses read each frame's lowest-loss output
    # (:func:`lowest_loss_index`). SAM 2's training does both; the authors have no such term (0):
    # their IoU head comes trained from SAM 2, while a model trained from random weights has an
    # IoU head that chooses arbitrarily (the bundled model keeps multimask output 1 on 97% of the
    # frames, so outputs 2 and 3 never get a loss). The single-mask output used after two or
    # more clicks is not among the candidates; only training with such clicks reaches it.
    mask_choice: float = 0.0


@dataclass
class ClipPrediction:
    """What the training forward of one clip gives the loss (``T`` frames at ``H x W``)."""

    logits: torch.Tensor  # [T, H, W] float32 mask logits (after the no-object gate unless object_score > 0)
    object_score_logits: torch.Tensor  # [T] float32
    sentence_scores: torch.Tensor  # [T] float32: text_similarity_head of each frame's <s> feature
    prior_logits: torch.Tensor | None = None  # [T, g, g] float32: the mask prior before its sigmoid
    # With LossWeights.mask_choice > 0: per frame, every decoder output [M, h, w] (before gating;
    # M = 3 multimask outputs, 1 after two or more clicks) and its predicted IoUs [M].
    mask_candidates: list[torch.Tensor] | None = None
    predicted_ious: list[torch.Tensor] | None = None


@dataclass
class LossOutput:
    """The weighted total and each term before weighting (scalars)."""

    total: torch.Tensor
    focal: torch.Tensor
    dice: torch.Tensor
    sim: torch.Tensor
    object_score: torch.Tensor
    prior: torch.Tensor
    mask_choice: torch.Tensor

    def as_dict(self) -> dict[str, torch.Tensor]:
        return {"loss": self.total, "focal": self.focal, "dice": self.dice, "sim": self.sim,
                "object_score": self.object_score, "prior": self.prior, "mask_choice": self.mask_choice}


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = FOCAL_ALPHA, gamma: float = FOCAL_GAMMA) -> torch.Tensor:
    """Focal loss of one video, averaged over all its pixels: logits / targets ``[T, H, W]`` -> scalar."""
    targets = targets.to(logits.dtype)
    prob = logits.sigmoid()
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = prob * targets + (1 - prob) * (1 - targets)
    alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
    return (alpha_t * bce * (1 - p_t) ** gamma).mean()


def dice_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Dice loss of one video over all its ``T*H*W`` pixels (smoothing 1): ``[T, H, W]`` -> scalar."""
    prob = logits.sigmoid().flatten()
    targets = targets.to(prob.dtype).flatten()
    return 1 - (2 * (prob * targets).sum() + 1) / (prob.sum() + targets.sum() + 1)


def similarity_loss(logits: torch.Tensor, targets: torch.Tensor, sentence_scores: torch.Tensor) -> torch.Tensor:
    """The authors' "sim" term per frame: ``[T, H, W]``, ``[T, H, W]``, ``[T]`` -> ``[T]``.

    See the module docstring: the result does not depend on ``sentence_scores`` (beyond rounding).
    """
    num_frames = logits.shape[0]
    prob = logits.sigmoid().reshape(num_frames, -1)
    targets = targets.to(prob.dtype).reshape(num_frames, -1)
    sentence_map = sentence_scores.to(prob.dtype)[:, None].expand_as(prob)
    a = F.cosine_similarity(prob, sentence_map, dim=1)
    b = F.cosine_similarity(targets, sentence_map, dim=1)
    return (a - b) ** 2


def mask_prior_loss(prior_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Focal + dice of one video's prior ``[T, g, g]`` against its target ``[T, H, W]``.

    The target is area-averaged to the prior's grid, so a cell's target is the fraction of it
    the object covers (soft labels: the prior is a coarse probability map, not a mask).
    """
    soft = F.interpolate(targets[:, None].to(prior_logits.dtype), size=prior_logits.shape[-2:], mode="area")[:, 0]
    return sigmoid_focal_loss(prior_logits, soft) + dice_loss(prior_logits, soft)


def _target_at(target: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """A ``[S, S]`` binary target area-averaged to the decoder's ``[h, w]`` grid (soft, in [0, 1])."""
    return F.interpolate(target[None, None].float(), size=size, mode="area")[0, 0]


def lowest_loss_index(candidates: torch.Tensor, target: torch.Tensor, weights: LossWeights) -> int:
    """Which of a frame's decoder outputs ``[M, h, w]`` the mask losses read for its ``[S, S]``
    target: the one with the lowest weighted focal + dice at the decoder's resolution (SAM 2's
    training rule for multimask outputs; 0 when ``M`` is 1)."""
    if candidates.shape[0] == 1:
        return 0
    with torch.no_grad():
        soft = _target_at(target, candidates.shape[-2:])[None]
        losses = [weights.focal * sigmoid_focal_loss(c[None].float(), soft) + weights.dice * dice_loss(c[None].float(), soft)
                  for c in candidates]
    return int(torch.stack(losses).argmin())


def iou_head_errors(candidates: Sequence[torch.Tensor], predicted_ious: Sequence[torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
    """Per frame whose target is present, the mean L1 between the predicted and the true IoU of
    its decoder outputs (``[F]``, F <= T), as SAM 2 supervises its IoU head.

    ``candidates[t]``: frame ``t``'s ``[M, h, w]`` logits; ``predicted_ious[t]``: its ``[M]``
    IoU-head outputs (after the sigmoid); ``targets``: ``[T, S, S]`` in {0, 1}. The true IoU is
    taken at the decoder's resolution, against the target area-averaged to it (> 0.5).
    """
    errors = []
    for masks, predicted, target in zip(candidates, predicted_ious, targets):
        if not target.any():
            continue
        with torch.no_grad():
            truth = _target_at(target, masks.shape[-2:]) > 0.5
            pred = masks > 0
            inter = (pred & truth).flatten(1).sum(1).float()
            union = (pred | truth).flatten(1).sum(1).float().clamp(min=1)
        errors.append((predicted.float() - inter / union).abs().mean())
    return torch.stack(errors) if errors else targets.new_zeros((0,), dtype=torch.float32)


def num_valid_frames(targets: Sequence[torch.Tensor]) -> torch.Tensor:
    """Frames whose target is not empty, over all videos of a batch (float scalar, not clamped)."""
    return sum(t.flatten(1).any(dim=1).sum() for t in targets).float()


def referring_loss(
    predictions: Sequence[ClipPrediction],
    targets: Sequence[torch.Tensor],
    weights: LossWeights = LossWeights(),
    num_valid: torch.Tensor | float | None = None,
) -> LossOutput:
    """Loss of a batch of videos; ``targets[i]`` is video ``i``'s ``[T, H, W]`` binary mask.

    ``num_valid`` is ``N`` before clamping (default: counted here; pass the all-reduced mean of
    the processes' counts under DDP, as ReferFormer does).
    """
    if len(predictions) != len(targets) or not predictions:
        raise ValueError(f"need one target per prediction and at least one video, got {len(predictions)} and {len(targets)}")
    if num_valid is None:
        num_valid = num_valid_frames(targets)
    n = torch.as_tensor(num_valid, dtype=torch.float32).clamp(min=1)
    focal = sum(sigmoid_focal_loss(p.logits, y) for p, y in zip(predictions, targets)) / n
    dice = sum(dice_loss(p.logits, y) for p, y in zip(predictions, targets)) / n
    sim = torch.cat([similarity_loss(p.logits, y, p.sentence_scores) for p, y in zip(predictions, targets)]).mean()
    total = weights.focal * focal + weights.dice * dice + weights.sim * sim
    if weights.object_score > 0:
        scores = torch.cat([p.object_score_logits for p in predictions])
        present = torch.cat([y.flatten(1).any(dim=1) for y in targets]).to(scores.dtype)
        object_score = F.binary_cross_entropy_with_logits(scores, present)
        total = total + weights.object_score * object_score
    else:
        object_score = total.new_zeros(())
    prior = total.new_zeros(())
    if weights.prior > 0:
        if any(p.prior_logits is None for p in predictions):
            raise ValueError("LossWeights.prior > 0 needs ClipPrediction.prior_logits")
        prior = sum(mask_prior_loss(p.prior_logits, y) for p, y in zip(predictions, targets)) / n
        total = total + weights.prior * prior
    mask_choice = total.new_zeros(())
    if weights.mask_choice > 0:
        if any(p.mask_candidates is None or p.predicted_ious is None for p in predictions):
            raise ValueError("LossWeights.mask_choice > 0 needs ClipPrediction.mask_candidates and predicted_ious")
        # Averaged over every frame of the batch with a target, as the other terms count frames.
        errors = torch.cat([iou_head_errors(p.mask_candidates, p.predicted_ious, y) for p, y in zip(predictions, targets)])
        if errors.numel():
            mask_choice = errors.mean()
            total = total + weights.mask_choice * mask_choice
    return LossOutput(total=total, focal=focal, dice=dice, sim=sim, object_score=object_score, prior=prior,
                      mask_choice=mask_choice)
