"""Patch motion from soft correspondence between neighbouring frames (not in the paper).

The mask prior generator's space-time layer has no temporal encoding (SPEC §4): it attends over
the set of all frames' patches, so a video and its reversal give every frame the same prior, and
"moving left" cannot be told from "moving right". Trained from random weights, a loss asking its
output to name each object's motion stayed at chance (bench/results/offline_warmup_experiments.md,
session 32). This module measures the motion instead and hands it to the layer as a feature.

For frame ``t`` and each neighbour ``t' = t + 1`` (forward) and ``t' = t - 1`` (backward), every
patch ``i`` matches the neighbour's patches ``j`` softly::

    A_ij = softmax_j( cos(z_ti, z_t'j) / tau - lam * |p_i - p_j|^2 )    p: patch centre in cells
    displacement_i = sum_j A_ij p_j - p_i          (cells; x then y)
    confidence_i   = sum_j A_ij cos(z_ti, z_t'j)

with learned ``tau`` (init 0.1) and ``lam`` (init 0.5; favours near matches, since objects move a
few cells per frame). Per patch that is 8 numbers -- forward dx, dy, confidence, 1 and backward
dx, dy, confidence, 1; all 0 where the neighbour does not exist (the first and last frame), so the
constant says which sides were measured -- and a zero-initialised Linear maps them to the BEiT-3
width and adds them to the patches. At initialisation the generator therefore computes exactly
what it computes without this module, and building it draws no random numbers, so a model with
it starts from the same weights as one without.

The bundled model's warm-up trains on 2-frame clips, where each frame has one neighbour; on a
longer video an inner frame gets both sides' embeddings added (measured on 8-frame videos:
bench/results/offline_warmup_experiments.md).

The matching runs in float32 whatever the model's precision or autocast: the temperature
amplifies rounding.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CorrespondenceMotion"]

# Per patch: (dx, dy, confidence, present) forward, then the same backward.
NUM_MOTION_FEATURES = 8


class CorrespondenceMotion(nn.Module):
    """``[T, N, C]`` patches (N = g², row-major grid) -> ``[T, N, C]`` motion embedding to add to them."""

    def __init__(self, dim: int, grid_size: int, temperature: float = 0.1, distance_weight: float = 0.5) -> None:
        super().__init__()
        self.grid_size = grid_size
        # Logs keep both positive under any step.
        self.log_inverse_temperature = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))
        self.log_distance_weight = nn.Parameter(torch.tensor(math.log(distance_weight)))
        # skip_init: no draw from the global generator (the zeros replace it anyway).
        self.proj = torch.nn.utils.skip_init(nn.Linear, NUM_MOTION_FEATURES, dim)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def _positions(self, device: torch.device) -> torch.Tensor:
        """``[N, 2]`` (x, y) of each patch in cells; computed, not a buffer, so the state dict holds weights only."""
        g = self.grid_size
        ys, xs = torch.meshgrid(torch.arange(g, device=device), torch.arange(g, device=device), indexing="ij")
        return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1).float()

    def _match(self, similarity: torch.Tensor, positions: torch.Tensor, distance: torch.Tensor) -> torch.Tensor:
        """similarity ``[P, N, N]`` cosines of P frame pairs (source patch, target patch) ->
        ``[P, N, 3]`` (dx, dy, confidence) of each source patch."""
        logits = similarity * self.log_inverse_temperature.exp() - self.log_distance_weight.exp() * distance
        weights = logits.softmax(dim=-1)
        displacement = weights @ positions - positions  # [P, N, 2]
        confidence = (weights * similarity).sum(-1, keepdim=True)  # [P, N, 1]
        return torch.cat([displacement, confidence], dim=-1)

    def features(self, patches: torch.Tensor) -> torch.Tensor:
        """patches ``[T, N, C]`` -> the 8 raw motion features ``[T, N, 8]`` (float32)."""
        num_frames, num_patches, _ = patches.shape
        if num_patches != self.grid_size**2:
            raise ValueError(f"expected {self.grid_size ** 2} patches per frame ({self.grid_size} x {self.grid_size}), got {num_patches}")
        unit = F.normalize(patches.float(), dim=-1)
        positions = self._positions(patches.device)  # [N, 2]
        distance = torch.cdist(positions, positions).square()  # [N, N]
        out = patches.new_zeros(num_frames, num_patches, NUM_MOTION_FEATURES, dtype=torch.float32)
        if num_frames > 1:
            with torch.autocast(patches.device.type, enabled=False):
                similarity = unit[:-1] @ unit[1:].transpose(1, 2)  # [T-1, N, N]: frame t's patches against t+1's
                forward = self._match(similarity, positions, distance)  # frames 0..T-2
                backward = self._match(similarity.transpose(1, 2), positions, distance)  # frames 1..T-1 against t-1
            out[:-1, :, 0:3] = forward
            out[:-1, :, 3] = 1.0
            out[1:, :, 4:7] = backward
            out[1:, :, 7] = 1.0
        return out

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """patches ``[T, N, C]`` -> ``[T, N, C]`` in the patches' dtype."""
        return self.proj(self.features(patches).to(self.proj.weight.dtype)).to(patches.dtype)
