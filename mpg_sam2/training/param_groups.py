"""Which parameters train, at which learning rate (paper §4.2, SPEC §10 item 16 and §11).

* The SAM 2 image encoder (Hiera trunk + FPN neck) is frozen; everything else trains (not in
  the paper: with ``train_scope="decoder"`` only SAM 2's prompt encoder and mask decoder, less
  the aggregator; with ``train_scope="sam2"`` everything but BEiT-3 and the mask prior
  generator).
* ``lr_fusion`` (5e-5) for the mask prior generator and the global-historical aggregator,
  ``lr`` (1e-5 pre-training on RefCOCO, 2e-6 fine-tuning) for the rest.
* AdamW, weight decay 5e-4 on every trainable parameter (the authors exclude none), gradient
  clipping at a global norm of 0.1, a constant learning rate.

Two groupings of the fast rate:

* ``paper`` (default): the modules the paper names, whole: ``mask_prior_generator.*`` and
  ``sam2.sam_mask_decoder.aggregator.*``.
* ``authors``: what the authors' code selects by name substrings (``mask_linear``,
  ``mask_product``, ``vmtoken``, ``vtlfusion_module``, ``mmfusion_module``,
  ``objfusion_module``). In our names that leaves the generator's spatio-temporal layer
  (``visual_ifi``) and global-context head (``meo_linear``) and the aggregator's patch
  compression (``patch_linear``) at the base rate, though the paper counts them as parts of the
  two modules.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import torch
from torch import nn

__all__ = [
    "AUTHORS_FUSION_PREFIXES",
    "FROZEN_PREFIXES",
    "OptimizerSettings",
    "PAPER_FUSION_PREFIXES",
    "STAGE_LEARNING_RATES",
    "TRAIN_SCOPES",
    "build_optimizer",
    "parameter_groups",
]

FROZEN_PREFIXES = ("sam2.image_encoder.",)
PAPER_FUSION_PREFIXES = ("mask_prior_generator.", "sam2.sam_mask_decoder.aggregator.")
AUTHORS_FUSION_PREFIXES = (
    "mask_prior_generator.class_token_attn.",  # vmtoken
    "mask_prior_generator.class_token_proj.",  # mask_linear
    "mask_prior_generator.prior_head.",  # mask_product
    "sam2.sam_mask_decoder.aggregator.pixel_fusion.",  # vtlfusion_module
    "sam2.sam_mask_decoder.aggregator.global_token_fusion.",  # mmfusion_module
    "sam2.sam_mask_decoder.aggregator.historical_token_fusion.",  # objfusion_module
)
# What trains besides the frozen parts: everything (the paper); SAM 2's prompt encoder and mask
# decoder without the aggregator (a click stage that keeps how the model reads the sentence); or
# everything but the grounding path, BEiT-3 and the mask prior generator ("sam2": a model whose
# grounding path was warmed up alone keeps what it learned, which whole-model training erodes).
TRAIN_SCOPES = ("all", "decoder", "sam2")
DECODER_SCOPE_PREFIXES = ("sam2.sam_prompt_encoder.", "sam2.sam_mask_decoder.")
DECODER_SCOPE_EXCLUDED = ("sam2.sam_mask_decoder.aggregator.",)
GROUNDING_PREFIXES = ("beit3.", "mask_prior_generator.")
# Base learning rate per stage (paper §4.2; the authors' launch scripts pass the same).
STAGE_LEARNING_RATES = {"pretrain": 1e-5, "finetune": 2e-6}


@dataclass(frozen=True)
class OptimizerSettings:
    lr: float = STAGE_LEARNING_RATES["finetune"]
    lr_fusion: float = 5e-5
    weight_decay: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 0.1
    authors_lr_groups: bool = False
    # Not the paper's recipe: for a model trained from scratch, whose image encoder would
    # otherwise stay frozen at its random initialisation. It then trains at the base rate.
    train_image_encoder: bool = False
    train_scope: str = "all"  # one of TRAIN_SCOPES


def _starts(name: str, prefixes: Iterable[str]) -> bool:
    return any(name.startswith(p) for p in prefixes)


def parameter_groups(model: nn.Module, settings: OptimizerSettings) -> list[dict[str, Any]]:
    """Two AdamW groups, ``base`` and ``fusion``, holding exactly the trainable parameters.

    Each group carries ``name`` and ``param_names`` (for logging and tests). Parameters under
    :data:`FROZEN_PREFIXES` are set to ``requires_grad=False`` here, so a model whose encoder
    was unfrozen by accident cannot train it (``train_image_encoder`` makes them trainable); with
    ``train_scope="decoder"`` so is everything outside the prompt encoder and mask decoder.
    """
    fusion_prefixes = AUTHORS_FUSION_PREFIXES if settings.authors_lr_groups else PAPER_FUSION_PREFIXES
    groups: dict[str, tuple[list[str], list[nn.Parameter]]] = {"base": ([], []), "fusion": ([], [])}
    for name, param in model.named_parameters():
        if _starts(name, FROZEN_PREFIXES):
            param.requires_grad_(settings.train_image_encoder)
            if not settings.train_image_encoder:
                continue
        if settings.train_scope == "decoder" and (not _starts(name, DECODER_SCOPE_PREFIXES) or _starts(name, DECODER_SCOPE_EXCLUDED)):
            param.requires_grad_(False)  # no backward through BEiT-3 and the prior at all
        if settings.train_scope == "sam2" and _starts(name, GROUNDING_PREFIXES):
            param.requires_grad_(False)
        if not param.requires_grad:
            continue
        names, params = groups["fusion" if _starts(name, fusion_prefixes) else "base"]
        names.append(name)
        params.append(param)
    rates = {"base": settings.lr, "fusion": settings.lr_fusion}
    return [
        {"name": key, "params": params, "param_names": names, "lr": rates[key], "weight_decay": settings.weight_decay}
        for key, (names, params) in groups.items()
        if params
    ]


def build_optimizer(model: nn.Module, settings: OptimizerSettings) -> torch.optim.AdamW:
    """AdamW over :func:`parameter_groups` (``param_names`` stays in the groups for reference)."""
    groups = parameter_groups(model, settings)
    if not groups:
        raise RuntimeError("the model has no trainable parameters; nothing to optimise")
    return torch.optim.AdamW(groups, lr=settings.lr, betas=settings.betas, weight_decay=settings.weight_decay)
