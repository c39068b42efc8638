"""Multi-head attention with ``nn.MultiheadAttention``'s parameter layout, batch-first.

The authors' MPG modules are ``nn.MultiheadAttention`` layers (packed ``in_proj_weight``),
so checkpoints keep that layout. We compute with
``torch.nn.functional.scaled_dot_product_attention`` instead, optionally in chunks of
queries: the space-time self-attention of the mask prior generator has ``T*196`` tokens, and
a materialised ``(T*196)^2`` score matrix would need tens of GB for long videos.
"""
from __future__ import annotations

import math
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn


class MultiHeadAttention(nn.Module):
    """``out_proj(SDPA(q W_q, k W_k, v W_v))`` with ``num_heads`` heads of ``dim // num_heads``.

    Args:
        dim: model width (query, key and value width).
        num_heads: number of heads; ``dim`` must be divisible by it.
        query_chunk: if set, queries are processed this many at a time. Each chunk attends to
            all keys, so the result is the same as one call; only peak memory changes.
    """

    def __init__(self, dim: int, num_heads: int, query_chunk: int | None = None) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"attention width {dim} is not divisible by {num_heads} heads")
        self.dim = dim
        self.num_heads = num_heads
        self.query_chunk = query_chunk
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        # [B, N, dim] -> [B, heads, N, dim / heads]
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.dim // self.num_heads).transpose(1, 2)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """query ``[B, Nq, dim]``, key / value ``[B, Nk, dim]`` -> ``[B, Nq, dim]``."""
        w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        q = self._split_heads(F.linear(query, w_q, b_q))
        k = self._split_heads(F.linear(key, w_k, b_k))
        v = self._split_heads(F.linear(value, w_v, b_v))
        scale = 1.0 / math.sqrt(self.dim // self.num_heads)
        chunk = self.query_chunk or q.shape[2]
        if q.shape[2] <= chunk:
            out = F.scaled_dot_product_attention(q, k, v, scale=scale)
        else:
            out = torch.cat(
                [
                    F.scaled_dot_product_attention(q[:, :, i : i + chunk], k, v, scale=scale)
                    for i in range(0, q.shape[2], chunk)
                ],
                dim=2,
            )
        b, _, n, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, self.dim))

    def iter_attention_weights(
        self, query: torch.Tensor, key: torch.Tensor, query_chunk: int = 256
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """Head-averaged softmax weights in chunks of queries: ``(start, [B, chunk, Nk])``.

        For visualisation only (forward never calls it); chunking bounds the memory of the
        ``Nq x Nk`` weights, which callers reduce chunk by chunk.
        """
        w_q, w_k, _ = self.in_proj_weight.chunk(3)
        b_q, b_k, _ = self.in_proj_bias.chunk(3)
        k = self._split_heads(F.linear(key, w_k, b_k))
        scale = 1.0 / math.sqrt(self.dim // self.num_heads)
        for start in range(0, query.shape[1], query_chunk):
            q = self._split_heads(F.linear(query[:, start : start + query_chunk], w_q, b_q))
            scores = (q @ k.transpose(-1, -2)).float() * scale
            yield start, scores.softmax(dim=-1).mean(dim=1)

    def attention_weights(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        """Head-averaged softmax weights ``[B, Nq, Nk]`` (for visualisation; not used in forward)."""
        return torch.cat([w for _, w in self.iter_attention_weights(query, key, query_chunk=query.shape[1] or 1)], dim=1)
