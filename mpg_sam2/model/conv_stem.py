"""A convolutional stem beside BEiT-3's patch projection (not in BEiT-3 or the paper).

BEiT-3 projects each 16 x 16 pixel patch linearly. The bundled offline model's BEiT-3 learns from
random weights on the synthetic benchmark, where a small object spans about 27 px of the 224 px
input: under two patches, so no patch sees it whole, and the patch tokens come to know an
object's colour and texture but hardly its shape (the attribute head named the shape of 0.43 of
object patches, chance 0.17). Captions that name a star or a ring were missed most
(bench/results/offline_warmup_experiments.md, sessions 28 and 41).

This stem gives every patch token a non-linear view of a 31 px neighbourhood: 3 x 3
convolutions of stride 2 and padding 1 (GELU between), ``log2(patch_size)`` of them, the last one
to the embedding width, so its output lies on the patch grid and is added to the linear
projection::

    pixels [B, 3, S, S] -> conv s2 -> [B, c1, S/2, S/2] -> ... -> [B, C, S/p, S/p]

Cell ``k`` of an axis sees pixels ``p*k - (p-1)`` to ``p*k + (p-1)``: its own patch and the ``p - 1``
pixels above and to the left of it, not those below and to the right (tests/test_conv_stem.py
checks this). The training's horizontal flips put an object on either side of a patch, so the
asymmetry is not a left-right bias of the trained model.

``BEiT3Config.conv_stem`` holds the widths ``(c1, ...)`` of all but the last convolution; empty
(every preset) leaves BEiT-3 as released, its state dict without ``vision_embed.stem.*``.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

__all__ = ["ConvStem"]


class ConvStem(nn.Module):
    """``[B, 3, S, S]`` pixels -> ``[B, dim, S / patch_size, S / patch_size]`` features."""

    def __init__(self, widths: Sequence[int], dim: int, patch_size: int) -> None:
        super().__init__()
        depth = round(math.log2(patch_size))
        if 2**depth != patch_size:
            raise ValueError(f"a stem of stride-2 convolutions needs a power-of-two patch size, got {patch_size}")
        if len(widths) + 1 != depth:
            raise ValueError(
                f"a stride-2 stem reaches patch size {patch_size} with {depth} convolutions, so conv_stem needs "
                f"{depth - 1} widths (the last convolution outputs the embedding width); got {tuple(widths)}"
            )
        layers: list[nn.Module] = []
        for c_in, c_out in zip((3, *widths), (*widths, dim)):
            if layers:
                layers.append(nn.GELU())
            layers.append(nn.Conv2d(c_in, c_out, kernel_size=3, stride=2, padding=1))
        self.layers = nn.Sequential(*layers)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.layers(pixels)
