"""BEiT-3: the multiway vision-language transformer that encodes each frame with the caption.

Our own implementation of the torchscale ``BEiT3`` encoder the authors use (multiway, sub-LN,
pre-LN layers). Every LayerNorm and Linear exists twice: the ``vision`` expert is applied to
the first ``1 + num_patches`` positions (class token and patches), the ``text`` expert to the
caption. Frames do not interact here: sample ``t`` of the batch is frame ``t`` plus its own
copy of the caption (paper §3.2, SPEC §3).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from mpg_sam2.config import BEiT3Config
from mpg_sam2.model.conv_stem import ConvStem


class Multiway(nn.Module):
    """Applies ``vision`` to positions ``[:split]`` and ``text`` to ``[split:]`` of dim 1."""

    def __init__(self, make_expert: Callable[[], nn.Module]) -> None:
        super().__init__()
        self.vision = make_expert()
        self.text = make_expert()

    def forward(self, x: torch.Tensor, split: int) -> torch.Tensor:
        return torch.cat([self.vision(x[:, :split]), self.text(x[:, split:])], dim=1)


class FeedForward(nn.Module):
    """``fc2(LN(GELU(fc1(x))))``; sub-LN puts a LayerNorm inside the FFN."""

    def __init__(self, dim: int, hidden_dim: int, eps: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.norm = nn.LayerNorm(hidden_dim, eps=eps)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # torchscale evaluates GELU in float32 and casts back (matters in bf16).
        hidden = F.gelu(self.fc1(x).float()).type_as(x)
        return self.fc2(self.norm(hidden))


class MultiwayAttention(nn.Module):
    """Self-attention whose projections and inner LayerNorm are multiway experts."""

    def __init__(self, config: BEiT3Config) -> None:
        super().__init__()
        dim, eps = config.embed_dim, config.layer_norm_eps
        if dim % config.num_heads != 0:
            raise ValueError(f"BEiT-3 width {dim} is not divisible by {config.num_heads} heads")
        self.num_heads = config.num_heads
        self.head_dim = dim // config.num_heads
        self.q_proj = Multiway(lambda: nn.Linear(dim, dim))
        self.k_proj = Multiway(lambda: nn.Linear(dim, dim))
        self.v_proj = Multiway(lambda: nn.Linear(dim, dim))
        self.inner_norm = Multiway(lambda: nn.LayerNorm(dim, eps=eps))
        self.out_proj = Multiway(lambda: nn.Linear(dim, dim))

    def forward(self, x: torch.Tensor, split: int, attend: torch.Tensor) -> torch.Tensor:
        """x ``[B, S, C]``; attend ``[B, S]`` bool, False for keys that are padding."""
        b, s, c = x.shape
        # torchscale scales q after its projection (bias included), then uses scale 1.
        q = self.q_proj(x, split) * self.head_dim**-0.5
        k = self.k_proj(x, split)
        v = self.v_proj(x, split)
        q, k, v = (t.view(b, s, self.num_heads, self.head_dim).transpose(1, 2) for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attend[:, None, None, :], scale=1.0)
        out = out.transpose(1, 2).reshape(b, s, c)
        return self.out_proj(self.inner_norm(out, split), split)


class EncoderLayer(nn.Module):
    """Pre-LN layer: ``x + Attn(LN(x))`` then ``x + FFN(LN(x))``, all multiway."""

    def __init__(self, config: BEiT3Config) -> None:
        super().__init__()
        dim, eps = config.embed_dim, config.layer_norm_eps
        self.attn_norm = Multiway(lambda: nn.LayerNorm(dim, eps=eps))
        self.attn = MultiwayAttention(config)
        self.ffn_norm = Multiway(lambda: nn.LayerNorm(dim, eps=eps))
        self.ffn = Multiway(lambda: FeedForward(dim, config.ffn_dim, eps))

    def forward(self, x: torch.Tensor, split: int, attend: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x, split), split, attend)
        return x + self.ffn(self.ffn_norm(x, split), split)


class VisionEmbedding(nn.Module):
    """Non-overlapping patch projection (plus ``config.conv_stem``'s stem, not in BEiT-3) and a
    learned class token."""

    def __init__(self, config: BEiT3Config) -> None:
        super().__init__()
        dim = config.embed_dim
        self.proj = nn.Conv2d(3, dim, kernel_size=config.patch_size, stride=config.patch_size)
        self.stem = ConvStem(config.conv_stem, dim, config.patch_size) if config.conv_stem else None
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        # Only used by BEiT-3's masked-image pre-training; kept so checkpoints load strictly.
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """pixels ``[B, 3, 224, 224]`` -> tokens ``[B, 1 + 196, C]`` (row-major patches)."""
        patches = self.proj(pixels)  # [B, C, g, g]
        if self.stem is not None:
            patches = patches + self.stem(pixels)
        patches = patches.flatten(2).transpose(1, 2)
        return torch.cat([self.cls_token.expand(patches.shape[0], -1, -1), patches], dim=1)


@dataclass
class BEiT3Output:
    """Split of the encoder output ``E [B, 1 + N + L, C]``."""

    cls: torch.Tensor  # [B, C]: the vision class token after joint attention with the text
    patches: torch.Tensor  # [B, N, C]: visual patch tokens, N = grid_size**2
    text: torch.Tensor  # [B, L, C]: all caption positions, padded ones included


class BEiT3(nn.Module):
    """Joint encoder of one image and one caption per batch element."""

    def __init__(self, config: BEiT3Config) -> None:
        super().__init__()
        self.config = config
        dim, eps = config.embed_dim, config.layer_norm_eps
        self.vision_embed = VisionEmbedding(config)
        self.text_embed = nn.Embedding(config.vocab_size, dim)
        self.vision_positions = nn.Embedding(config.num_vision_tokens + config.position_offset, dim)
        self.text_positions = nn.Embedding(config.max_text_positions, dim)
        self.layers = nn.ModuleList([EncoderLayer(config) for _ in range(config.num_layers)])
        self.final_norm = Multiway(lambda: nn.LayerNorm(dim, eps=eps))

    def forward(
        self, pixels: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
        image_index: torch.Tensor | None = None,
    ) -> BEiT3Output:
        """pixels ``[B, 3, 224, 224]``, input_ids ``[B, L]`` int64, attention_mask ``[B, L]`` bool.

        With ``image_index`` (int64 ``[B]``), ``pixels`` ``[U, 3, 224, 224]`` are the distinct images
        and caption ``b`` pairs with image ``image_index[b]``: each image is embedded once (the
        warm-up puts every caption of a frame in one batch), with the same result as repeating it.
        """
        cfg = self.config
        num_text = input_ids.shape[1]
        if num_text > cfg.max_text_tokens:
            raise ValueError(
                f"caption has {num_text} tokens but BEiT-3 holds at most {cfg.max_text_tokens}; shorten the expression"
            )
        vision = self.vision_embed(pixels)
        if image_index is not None:
            # index_select, not vision[image_index]: its backward adds the repeated rows' gradients
            # in a fixed order, which keeps a resumed warm-up bit-identical to an uninterrupted one.
            vision = vision.index_select(0, image_index)
        split = vision.shape[1]
        offset = cfg.position_offset
        # Both learned position tables start at row `offset` (torchscale's convention).
        vision = vision + self.vision_positions.weight[offset : offset + split]
        text = self.text_embed(input_ids) + self.text_positions.weight[offset : offset + num_text]
        x = torch.cat([vision, text], dim=1)
        attend = torch.cat([attention_mask.new_ones(input_ids.shape[0], split), attention_mask.bool()], dim=1)
        # Padded caption rows are zeroed after the positions are added, as in torchscale.
        x = x * attend.unsqueeze(-1).to(x.dtype)
        for layer in self.layers:
            x = layer(x, split, attend)
        x = self.final_norm(x, split)
        return BEiT3Output(cls=x[:, 0], patches=x[:, 1:split], text=x[:, split:])
