"""Inference precision: float32 (the reference) or the authors' bfloat16 inference (SPEC §9).

In the authors' bf16 runs the grounding path holds its weights in bfloat16 (BEiT-3, the mask
prior generator, the text projections) while SAM 2 converts all its parameters back to float32
at every forward. So a model "in bf16" here is one whose grounding modules are *cast once*,
with no autocast anywhere: the frame loop (SAM 2 tracking) runs exactly the float32 code and
dispatches no cast, and BEiT-3, run once per video and expression, runs in bfloat16.

What this reproduces of §9, and where:

* the grounding weights and the BEiT-3 input in bfloat16 (:func:`hold_in_precision`,
  ``MPGSAM2.encode_expression``);
* the text token, the text features and the mask prior handed to SAM 2 as float32 (there once
  per video instead of at every frame); the global context becomes float32 where the float32
  temporal code is added (mask_prior_generator.py);
* the SAM 2 image rounded to bfloat16 and read back as float32 (:func:`sam2_input`);
* spatial memories stored in bfloat16, as in float32 runs (video_propagation.py).

Not reproduced: the prompt encoder's Gaussian matrix left in bfloat16 (a buffer the authors'
cast misses) and the final bfloat16 resize of the output logits.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["GROUNDING_MODULES", "PRECISIONS", "check_precision_name", "hold_in_precision", "model_precision", "sam2_input"]

PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16}

# The MPGSAM2 children the authors' bf16 inference keeps in bfloat16 (their BEiT-3, visual_ifi,
# vmtoken, mask_linear, mask_product, meo_linear, text_hidden_fcs, text_feat_linear); the
# training-only similarity head follows the text projections.
GROUNDING_MODULES: tuple[str, ...] = (
    "beit3",
    "mask_prior_generator",
    "text_prompt_proj",
    "text_feature_proj",
    "text_similarity_head",
)


def check_precision_name(precision: str) -> torch.dtype:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
    return PRECISIONS[precision]


def hold_in_precision(model: nn.Module, precision: str) -> nn.Module:
    """Cast ``model``'s grounding modules to ``precision`` in place; SAM 2 stays float32.

    Going from bf16 back to fp32 cannot restore the rounded weights, so it is refused: load
    the checkpoint again instead.
    """
    dtype = check_precision_name(precision)
    current = model_precision(model)
    if current == precision:
        return model
    if current == "bf16":
        raise ValueError("this model already holds its grounding weights in bf16; load the checkpoint again for fp32")
    for name in GROUNDING_MODULES:
        getattr(model, name).to(dtype)
    return model


def model_precision(model: nn.Module) -> str:
    """``"fp32"`` or ``"bf16"``: the dtype the grounding modules hold (all the same)."""
    dtypes = {p.dtype for name in GROUNDING_MODULES for p in getattr(model, name).parameters()}
    for name, dtype in PRECISIONS.items():
        if dtypes == {dtype}:
            return name
    raise ValueError(f"the grounding modules hold mixed or unsupported dtypes {sorted(map(str, dtypes))}")


def sam2_input(images: torch.Tensor, grounding_dtype: torch.dtype) -> torch.Tensor:
    """SAM 2's float32 input ``[n, 3, S, S]`` as the authors' runs give it: their data
    pipeline casts both image tensors to the model dtype and SAM 2 casts its own back, so in
    bf16 the SAM 2 image is bfloat16-rounded. Float32 input is returned as is (no copy)."""
    if grounding_dtype == torch.float32:
        return images
    return images.to(grounding_dtype).to(torch.float32)
