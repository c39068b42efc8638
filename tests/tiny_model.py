"""A tiny MPG-SAM 2 configuration for fast unit tests (random init, seconds on a CPU)."""
from __future__ import annotations

import dataclasses

import torch

from mpg_sam2.config import AggregatorConfig, BEiT3Config, MaskPriorConfig, MPGSAM2Config, SAM2Config
from mpg_sam2.model.mpg_sam2 import MPGSAM2

TINY = MPGSAM2Config(
    beit3=BEiT3Config(embed_dim=64, num_layers=2, num_heads=4, ffn_dim=128, vocab_size=320, image_size=64),
    sam2=SAM2Config(variant="hiera_t", image_size=256),
    mask_prior=MaskPriorConfig(num_heads=4, ffn_dim=128),
    aggregator=AggregatorConfig(num_heads=8, ffn_dim=64),
)


def tiny_model(seed: int = 0, **overrides) -> MPGSAM2:
    torch.manual_seed(seed)
    return MPGSAM2(dataclasses.replace(TINY, **overrides))
