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

# TINY at a 128 px SAM 2 input: what the training tests train (a step costs a fraction of a second).
TRAINING_TINY = dataclasses.replace(TINY, sam2=SAM2Config(variant="hiera_t", image_size=128))


def tiny_model(seed: int = 0, **overrides) -> MPGSAM2:
    torch.manual_seed(seed)
    return MPGSAM2(dataclasses.replace(TINY, **overrides))


def tiny_tokenizer(folder):
    """A small sentencepiece tokenizer saved like the authors' (ids fit the tiny vocabulary)."""
    import sentencepiece as spm

    from mpg_sam2.checkpoint.tokenizer_files import load_tokenizer
    from tokenizer_factory import train_sentencepiece, write_authors_tokenizer_dir

    proto = train_sentencepiece()
    pieces = spm.SentencePieceProcessor(model_proto=proto).get_piece_size()
    return load_tokenizer(write_authors_tokenizer_dir(folder, proto, pieces))


def save_tiny_checkpoint(folder, seed: int = 7):
    """A tiny model whose frames all count as "object present", saved with its tokenizer."""
    from pathlib import Path

    from mpg_sam2.checkpoint.pretrained import save_pretrained

    folder = Path(folder)
    model = tiny_model(seed=seed)
    with torch.no_grad():
        model.sam2.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(5.0)
    return save_pretrained(model, folder / "ckpt", tokenizer=tiny_tokenizer(folder / "tok"))
