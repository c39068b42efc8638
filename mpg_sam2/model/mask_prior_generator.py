"""Mask prior generator (paper §3.3): pseudo-masks and a global video context from all frames.

As the authors' code computes it (SPEC §4), which differs from the paper's equation 2-3:

1. a post-norm Transformer encoder layer over the patch tokens of all ``T`` frames jointly
   (``T*N`` tokens, no positional encoding): the only place frames exchange information
   before SAM 2;
2. each frame's class token attends to all ``T*N`` tokens and is *multiplied* by the result
   (a gate: no residual, no norm);
3. the gated token, after a Linear, modulates that frame's patch tokens channel-wise;
4. two parallel single-Linear heads read the modulated tokens: a sigmoid mask prior
   ``[T, 1, g, g]`` and the global context (width of SAM 2) plus a sine code of the frame index.

With ``MaskPriorConfig.motion_features`` (not in the paper, off for the release presets), patch
motion from :mod:`mpg_sam2.model.patch_motion` is added to the patches before step 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from sam2.modeling.sam2_utils import get_1d_sine_pe
from torch import nn

from mpg_sam2.config import MaskPriorConfig
from mpg_sam2.model.attention import MultiHeadAttention
from mpg_sam2.model.patch_motion import CorrespondenceMotion


class SpatioTemporalLayer(nn.Module):
    """``y = LN1(x + SelfAttn(x))``, ``LN2(y + W2 relu(W1 y))`` over all frames' patches."""

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, query_chunk: int) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(dim, num_heads, query_chunk=query_chunk)
        self.fc1 = nn.Linear(dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x ``[1, T*N, C]`` -> ``[1, T*N, C]``."""
        x = self.norm1(x + self.self_attn(x, x, x))
        return self.norm2(x + self.fc2(F.relu(self.fc1(x))))


@dataclass
class MaskPriorOutput:
    prior: torch.Tensor  # [T, 1, g, g] probabilities in (0, 1): SAM 2's dense prompt
    prior_logits: torch.Tensor  # [T, g, g] before the sigmoid
    global_context: torch.Tensor  # [T, N, D]: V_g, modulated tokens in SAM 2 width + temporal code
    gated_cls: torch.Tensor  # [T, C]: class token after the multiplicative attention gate
    video_tokens: torch.Tensor  # [T, N, C]: the space-time layer's output (training-time heads read it)


class MaskPriorGenerator(nn.Module):
    """Args: ``dim`` the BEiT-3 width C; ``context_dim`` the SAM 2 width D; ``grid_size`` g."""

    def __init__(self, dim: int, context_dim: int, grid_size: int, config: MaskPriorConfig) -> None:
        super().__init__()
        self.grid_size = grid_size
        self.context_dim = context_dim
        self.correspondence_motion = CorrespondenceMotion(dim, grid_size) if config.motion_features else None
        self.spatiotemporal_layer = SpatioTemporalLayer(
            dim, config.num_heads, config.ffn_dim, config.attention_query_chunk
        )
        self.class_token_attn = MultiHeadAttention(dim, config.num_heads, query_chunk=config.attention_query_chunk)
        self.class_token_proj = nn.Linear(dim, dim)
        self.prior_head = nn.Linear(dim, 1)
        self.global_context_proj = nn.Linear(dim, context_dim)

    def temporal_encoding(self, num_frames: int, device: torch.device) -> torch.Tensor:
        """``[T, D]`` sine code of the frame index (frequencies in equal pairs, as SAM 2's)."""
        return get_1d_sine_pe(torch.arange(num_frames, device=device), dim=self.context_dim)

    def forward(self, cls: torch.Tensor, patches: torch.Tensor) -> MaskPriorOutput:
        """cls ``[T, C]`` and patches ``[T, N, C]`` from BEiT-3, frame order."""
        num_frames, num_patches, dim = patches.shape
        if self.correspondence_motion is not None:
            patches = patches + self.correspondence_motion(patches)
        video_tokens = self.spatiotemporal_layer(patches.reshape(1, num_frames * num_patches, dim))
        attended = self.class_token_attn(cls.unsqueeze(0), video_tokens, video_tokens)[0]  # [T, C]
        gated_cls = cls * attended
        modulated = video_tokens.view(num_frames, num_patches, dim) * self.class_token_proj(gated_cls)[:, None]
        g = self.grid_size
        prior_logits = self.prior_head(modulated).view(num_frames, g, g)
        context = self.global_context_proj(modulated)
        # In bf16 (weights held in bf16, or training's autocast) the float32 code promotes the
        # context to float32, as in the authors' runs.
        context = context + self.temporal_encoding(num_frames, context.device)[:, None]
        return MaskPriorOutput(
            prior=prior_logits.sigmoid().unsqueeze(1),
            prior_logits=prior_logits,
            global_context=context,
            gated_cls=gated_cls,
            video_tokens=video_tokens.view(num_frames, num_patches, dim),
        )
