"""The one table that maps the authors' state-dict names onto ours.

The authors' names (``vmtoken``, ``visual_ifi``, ``meo_linear``, ``.A.`` / ``.B.`` experts, ...)
say little about what the modules are; ours follow the paper. Every conversion of an authors'
checkpoint goes through :func:`convert_authors_state_dict`, then
:func:`mpg_sam2.checkpoint.strict_loading.load_strict` reports every missing and unexpected key
by name.
"""
from __future__ import annotations

import re
from typing import Mapping

import torch

_BEIT3 = r"mm_extractor\.beit3\."
_LAYER = _BEIT3 + r"encoder\.layers\.(\d+)\."
_DECODER = r"visual_model\.sam_mask_decoder\."
_FUSION_INNER = r"(?:multihead_attn|linear1|linear2|norm1|norm2)"

# (pattern, replacement) pairs, tried in order; the first full match wins. Names inside the
# SAM 2 part are SAM 2's own, so original SAM 2 checkpoints line up with `sam2.*`.
AUTHORS_TO_OURS: list[tuple[str, str]] = [
    # BEiT-3 (torchscale): multiway experts A (vision) / B (text).
    (_BEIT3 + r"encoder\.embed_positions\.A\.(.+)", r"beit3.vision_positions.\1"),
    (_BEIT3 + r"encoder\.embed_positions\.B\.(.+)", r"beit3.text_positions.\1"),
    (_BEIT3 + r"encoder\.layer_norm\.(A|B)\.(.+)", r"beit3.final_norm.\1.\2"),
    (_LAYER + r"self_attn_layer_norm\.(A|B)\.(.+)", r"beit3.layers.\1.attn_norm.\2.\3"),
    (_LAYER + r"self_attn\.inner_attn_ln\.(A|B)\.(.+)", r"beit3.layers.\1.attn.inner_norm.\2.\3"),
    (_LAYER + r"self_attn\.(q_proj|k_proj|v_proj|out_proj)\.(A|B)\.(.+)", r"beit3.layers.\1.attn.\2.\3.\4"),
    (_LAYER + r"final_layer_norm\.(A|B)\.(.+)", r"beit3.layers.\1.ffn_norm.\2.\3"),
    (_LAYER + r"ffn\.(A|B)\.ffn_layernorm\.(.+)", r"beit3.layers.\1.ffn.\2.norm.\3"),
    (_LAYER + r"ffn\.(A|B)\.(fc1|fc2)\.(.+)", r"beit3.layers.\1.ffn.\2.\3.\4"),
    (_BEIT3 + r"(text_embed|vision_embed)\.(.+)", r"beit3.\1.\2"),
    # Mask prior generator (paper §3.3).
    (r"visual_ifi\.self_attn\.(.+)", r"mask_prior_generator.spatiotemporal_layer.self_attn.\1"),
    (r"visual_ifi\.linear1\.(.+)", r"mask_prior_generator.spatiotemporal_layer.fc1.\1"),
    (r"visual_ifi\.linear2\.(.+)", r"mask_prior_generator.spatiotemporal_layer.fc2.\1"),
    (r"visual_ifi\.(norm1|norm2)\.(.+)", r"mask_prior_generator.spatiotemporal_layer.\1.\2"),
    (r"vmtoken\.multihead_attn\.(.+)", r"mask_prior_generator.class_token_attn.\1"),
    (r"mask_linear\.(.+)", r"mask_prior_generator.class_token_proj.\1"),
    (r"mask_product\.(.+)", r"mask_prior_generator.prior_head.\1"),
    (r"meo_linear\.(.+)", r"mask_prior_generator.global_context_proj.\1"),
    # Text projections.
    (r"text_hidden_fcs\.0\.(0|2)\.(.+)", r"text_prompt_proj.\1.\2"),
    (r"text_feat_linear\.(.+)", r"text_feature_proj.\1"),
    (r"text2one_linear\.(.+)", r"text_similarity_head.\1"),
    # Global-historical aggregator (paper §3.4), inside SAM 2's mask decoder.
    (_DECODER + r"patch_linear\.(.+)", r"sam2.sam_mask_decoder.aggregator.global_patch_proj.\1"),
    (_DECODER + r"vtlfusion_module\.(" + _FUSION_INNER + r")\.(.+)", r"sam2.sam_mask_decoder.aggregator.pixel_fusion.\1.\2"),
    (_DECODER + r"mmfusion_module\.(" + _FUSION_INNER + r")\.(.+)", r"sam2.sam_mask_decoder.aggregator.global_token_fusion.\1.\2"),
    (_DECODER + r"objfusion_module\.(" + _FUSION_INNER + r")\.(.+)", r"sam2.sam_mask_decoder.aggregator.historical_token_fusion.\1.\2"),
    # Everything else of SAM 2 keeps SAM 2's names.
    (r"visual_model\.(.+)", r"sam2.\1"),
]

# Second pass on the converted name: module names inside the blocks above.
_INNER_RENAMES: list[tuple[str, str]] = [
    (r"\.A\.", ".vision."),
    (r"\.B\.", ".text."),
    (r"(aggregator\.\w+)\.multihead_attn\.", r"\1.cross_attn."),
    (r"(aggregator\.\w+)\.linear1\.", r"\1.fc1."),
    (r"(aggregator\.\w+)\.linear2\.", r"\1.fc2."),
]

_COMPILED = [(re.compile(p), r) for p, r in AUTHORS_TO_OURS]
_INNER = [(re.compile(p), r) for p, r in _INNER_RENAMES]


def authors_key_to_ours(name: str) -> str:
    """Map one authors' state-dict name to ours; ValueError for a name the table lacks."""
    for pattern, replacement in _COMPILED:
        if pattern.fullmatch(name):
            ours = pattern.sub(replacement, name)
            if ours.startswith("beit3.") or ".aggregator." in ours:
                for inner, inner_replacement in _INNER:
                    ours = inner.sub(inner_replacement, ours)
            return ours
    raise ValueError(f"no rule in the MPG-SAM 2 rename table for checkpoint key {name!r}")


def is_authors_state_dict(state_dict: Mapping[str, object]) -> bool:
    """True when the keys use the authors' top-level names (``visual_model.``, ``mm_extractor.``)."""
    return any(k.startswith(("visual_model.", "mm_extractor.")) for k in state_dict)


def convert_authors_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename every key of an authors' state dict; unknown keys are reported all at once."""
    converted: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for name, tensor in state_dict.items():
        try:
            converted[authors_key_to_ours(name)] = tensor
        except ValueError:
            unknown.append(name)
    if unknown:
        raise ValueError(f"{len(unknown)} checkpoint keys have no rule in the rename table: {sorted(unknown)[:20]}")
    return converted
