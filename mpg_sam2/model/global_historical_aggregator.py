"""Hierarchical global-historical aggregator (paper §3.4), as the authors' code computes it.

Three post-norm cross-attention blocks inside SAM 2's mask decoder (SPEC §6.4-6.5):

* pixel level: the memory-conditioned image embedding attends to the global context,
  compressed into ``p_g x p_g`` patches, together with the current frame's text tokens;
* object level, global: SAM 2's mask tokens attend to all ``T*N`` global-context tokens;
* object level, historical: the result attends to the object pointers of earlier frames,
  keyed with a sine code of their frame distance (skipped on the conditioning frame).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mpg_sam2.config import AggregatorConfig
from mpg_sam2.model.attention import MultiHeadAttention


class FusionLayer(nn.Module):
    """``y = LN1(q + Attn(q + pos, k, v))``, then ``LN2(y + W2 relu(W1 y))``.

    The positional encoding goes into the attention query only, never into the residual.
    """

    def __init__(self, dim: int, num_heads: int, ffn_dim: int) -> None:
        super().__init__()
        self.cross_attn = MultiHeadAttention(dim, num_heads)
        self.fc1 = nn.Linear(dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        query_pos: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """query ``[B, Nq, D]``, key / value ``[B, Nk, D]`` -> ``[B, Nq, D]``."""
        attn_query = query if query_pos is None else query + query_pos
        y = self.norm1(query + self.cross_attn(attn_query, key, value))
        return self.norm2(y + self.fc2(F.relu(self.fc1(y))))


class GlobalHistoricalAggregator(nn.Module):
    """Args: ``dim`` the SAM 2 width D; ``grid_size`` the side g of each frame's context grid."""

    def __init__(self, dim: int, grid_size: int, config: AggregatorConfig) -> None:
        super().__init__()
        p = config.global_patch_size
        if grid_size % p != 0:
            raise ValueError(f"global context grid {grid_size} is not divisible by the patch size {p}")
        self.dim = dim
        self.grid_size = grid_size
        self.patch_size = p
        self.enabled = config.enabled
        self.global_patch_proj = nn.Linear(dim * p * p, dim)
        self.pixel_fusion = FusionLayer(dim, config.num_heads, config.ffn_dim)
        self.global_token_fusion = FusionLayer(dim, config.num_heads, config.ffn_dim)
        self.historical_token_fusion = FusionLayer(dim, config.num_heads, config.ffn_dim)

    def compress_global_context(self, global_context: torch.Tensor) -> torch.Tensor:
        """``[B, T, g*g, D]`` -> ``[B, T*(g/p)^2, D]`` patch tokens in ``(t, py, px)`` order.

        Each ``p x p`` patch is flattened channel-major (index ``c*p*p + dy*p + dx``), the
        order the released ``patch_linear`` weights expect.
        """
        b, t, _, d = global_context.shape
        g, p = self.grid_size, self.patch_size
        n = g // p
        x = global_context.reshape(b, t, n, p, n, p, d)  # [B, T, py, dy, px, dx, D]
        x = x.permute(0, 1, 2, 4, 6, 3, 5)  # [B, T, py, px, D, dy, dx]
        return self.global_patch_proj(x.reshape(b, t * n * n, d * p * p))

    def fuse_pixels(
        self,
        image_embedding: torch.Tensor,
        image_pe: torch.Tensor,
        global_patches: torch.Tensor,
        text_features: torch.Tensor,
    ) -> torch.Tensor:
        """Pixel-level global fusion.

        image_embedding ``[B, D, h, w]`` (after memory attention), image_pe ``[1, D, h, w]``,
        global_patches ``[B, T*(g/p)^2, D]``, text_features ``[B, L, D]`` of the current frame
        -> ``[B, D, h, w]``. No padding mask on the text keys: the authors attend to every
        caption position here, including those BEiT-3 masked out.
        """
        if not self.enabled:
            return image_embedding
        b, d, h, w = image_embedding.shape
        tokens = image_embedding.flatten(2).transpose(1, 2)
        pos = image_pe.flatten(2).transpose(1, 2)
        keys = torch.cat([global_patches, text_features.to(global_patches.dtype)], dim=1)
        fused = self.pixel_fusion(tokens, keys, keys, query_pos=pos)
        return fused.transpose(1, 2).reshape(b, d, h, w)

    def fuse_mask_tokens(
        self,
        mask_tokens: torch.Tensor,
        global_context: torch.Tensor,
        pointers: torch.Tensor | None,
        pointer_pos: torch.Tensor | None,
    ) -> torch.Tensor:
        """Object-level fusion: global context first, then the historical object pointers.

        mask_tokens ``[B, M, D]``; global_context ``[B, T*g*g, D]``; pointers and pointer_pos
        ``[B, P, D]`` or None on the conditioning frame -> ``[B, M, D]``.
        """
        if not self.enabled:
            return mask_tokens
        tokens = self.global_token_fusion(mask_tokens, global_context, global_context)
        if pointers is not None:
            tokens = self.historical_token_fusion(tokens, pointers + pointer_pos, pointers)
        return tokens
