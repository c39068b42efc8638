"""Keep the parts of a frame's mask that its mask prior points at (not in the paper).

A SAM 2 trained from random weights on captions (the bundled offline model) paints every object
its dense prompt lights: where the prior hedges between two lookalikes, the mask covers both,
as separate blobs. This step splits a frame's mask into its connected components and clears the
ones whose mean prior probability is below ``ratio`` times that of the best component, so the
mask keeps the object the prior favours (and any part it favours nearly as much). It runs on
SAM 2's low-resolution logits (``[B, 1, h, w]``, before the resize to the frame), on the device
they are on, and changes only the output: SAM 2's memory keeps what the decoder predicted.

``MaskReadoutConfig.component_prior_ratio`` turns it on; 0 (every release preset) leaves the
masks as SAM 2 outputs them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from sam2.modeling.sam2_base import NO_OBJ_SCORE

__all__ = ["connected_components", "keep_prior_components"]


def connected_components(mask: torch.Tensor) -> torch.Tensor:
    """Labels ``[B, h, w]`` (int64) of the 8-connected components of bool ``mask`` ``[B, h, w]``:
    0 off the mask, and every component one positive id (its largest flat pixel index + 1),
    unique across the batch.

    Each pixel takes the largest id of its 3 x 3 neighbourhood until nothing changes: as many
    rounds as the longest path inside a component, a few dozen for the blobs of a mask.
    """
    batch, height, width = mask.shape
    ids = torch.arange(1, batch * height * width + 1, device=mask.device, dtype=torch.float64).view(batch, 1, height, width)
    inside = mask.unsqueeze(1)
    labels = torch.where(inside, ids, 0.0)
    while True:
        # float64 holds every id exactly (max_pool2d has no int64 kernel on every device).
        grown = torch.where(inside, F.max_pool2d(labels, kernel_size=3, stride=1, padding=1), 0.0)
        if torch.equal(grown, labels):
            return labels[:, 0].long()
        labels = grown


def keep_prior_components(
    lowres_logits: torch.Tensor, priors: torch.Tensor, threshold_logit: float, ratio: float
) -> torch.Tensor:
    """``lowres_logits`` ``[B, 1, h, w]`` with the components the prior disfavours cleared.

    ``priors`` ``[B, 1, g, g]`` are the mask priors (probabilities) of the same frames; a pixel is
    on the mask where its logit exceeds ``threshold_logit`` (the pipeline's threshold). A
    component whose mean prior (bilinear to ``h x w``) is below ``ratio`` times the best
    component's in its frame gets SAM 2's no-object logit. ``ratio`` in (0, 1]; a frame with one
    component or none is returned unchanged.
    """
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"ratio must be in (0, 1], got {ratio}")
    logits = lowres_logits.float()
    batch, _, height, width = logits.shape
    labels = connected_components(logits[:, 0] > threshold_logit).view(batch, -1)  # [B, h*w]
    prior = F.interpolate(priors.float(), size=(height, width), mode="bilinear", align_corners=False).view(batch, -1)
    # Mean prior of every component: sums over the pixels sharing a label (ids are unique
    # across the batch, so one flat scatter serves every frame).
    size = batch * height * width + 1
    flat = labels.view(-1)
    total = torch.zeros(size, device=logits.device).scatter_add_(0, flat, prior.reshape(-1))
    count = torch.zeros(size, device=logits.device).scatter_add_(0, flat, torch.ones_like(prior).view(-1))
    mean = torch.where(count > 0, total / count.clamp_min(1), -1.0)
    mean[0] = -1.0  # label 0 is the background, never a component
    pixel_mean = mean[labels]  # [B, h*w]: -1 off the mask
    best = pixel_mean.amax(dim=1, keepdim=True)  # [B, 1]
    drop = (labels > 0) & (pixel_mean < ratio * best)
    return torch.where(drop.view_as(logits), torch.full_like(logits, NO_OBJ_SCORE), logits).to(lowres_logits.dtype)
