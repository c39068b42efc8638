"""Attention overlays: where the sentence points, per frame (for the app and exports).

Two maps, recorded with forward hooks only while a :class:`AttentionRecorder` is active, so
they cost nothing otherwise and never change a number of the segmentation:

* ``prior_attention`` ``[T, g, g]``: the mask prior generator's class-token cross-attention
  (query: frame t's class token, keys: all T*g*g video tokens), restricted to frame t's own
  patches: where, in that frame, the sentence-conditioned class token looks.
* ``text_attention`` ``[h, w]`` per frame: in the pixel-level global fusion, the share of each
  image token's attention that goes to the caption tokens (the rest goes to the video-context
  patches).

Each map is scaled by its frame's maximum into [0, 1] for display.
"""
from __future__ import annotations

from typing import Any

import torch

from mpg_sam2.model.mpg_sam2 import MPGSAM2


def _scale_per_frame(maps: torch.Tensor) -> torch.Tensor:
    peak = maps.flatten(1).amax(dim=1).clamp_min(1e-12)
    return maps / peak.view(-1, *([1] * (maps.ndim - 1)))


class AttentionRecorder:
    """Context manager: ``with AttentionRecorder(model) as rec: ...``; read ``rec.prior_attention``
    after ``encode_expression`` and ``rec.pop_text_attention()`` after each tracked frame."""

    def __init__(self, model: MPGSAM2, query_chunk: int = 256) -> None:
        self.model = model
        self.query_chunk = query_chunk
        self.prior_attention: torch.Tensor | None = None  # [T, g, g]
        self._text_attention: torch.Tensor | None = None  # [B, h, w] of the last frame
        self._num_text_tokens = 0
        self._hooks: list[Any] = []

    def __enter__(self) -> "AttentionRecorder":
        generator = self.model.mask_prior_generator
        fusion = self.model.sam2.sam_mask_decoder.aggregator.pixel_fusion
        self._hooks = [
            generator.class_token_attn.register_forward_hook(self._record_prior),
            fusion.cross_attn.register_forward_hook(self._record_text),
        ]
        return self

    def __exit__(self, *exc: object) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    @torch.no_grad()
    def _record_prior(self, module, args, output) -> None:
        query, key = args[0], args[1]  # [1, T, C], [1, T*N, C]
        num_frames = query.shape[1]
        per_frame = key.shape[1] // num_frames
        grid = int(round(per_frame**0.5))
        maps = torch.empty(num_frames, per_frame, device=query.device)
        for start, weights in module.iter_attention_weights(query, key, self.query_chunk):
            for i in range(weights.shape[1]):
                t = start + i
                maps[t] = weights[0, i, t * per_frame : (t + 1) * per_frame]
        self.prior_attention = _scale_per_frame(maps.view(num_frames, grid, grid)).cpu()

    @torch.no_grad()
    def _record_text(self, module, args, output) -> None:
        query, key = args[0], args[1]  # [B, h*w, D] (with positional encoding), [B, P + L, D]
        num_text = self._num_text_tokens
        if num_text <= 0:
            raise RuntimeError("call expect_text_tokens(L) before tracking a frame with attention recording")
        share = torch.empty(query.shape[0], query.shape[1], device=query.device)
        for start, weights in module.iter_attention_weights(query, key, self.query_chunk):
            share[:, start : start + weights.shape[1]] = weights[:, :, key.shape[1] - num_text :].sum(dim=-1)
        side = int(round(query.shape[1] ** 0.5))
        self._text_attention = _scale_per_frame(share.view(-1, side, side)).cpu()

    def expect_text_tokens(self, count: int) -> None:
        """Number of caption tokens at the end of the keys of the next pixel-level fusions."""
        self._num_text_tokens = count

    def pop_text_attention(self) -> torch.Tensor | None:
        """``[B, h, w]`` text-attention map of the frame just tracked (None if none ran)."""
        out, self._text_attention = self._text_attention, None
        return out
