"""Pin the ``sam2`` methods we override or call, so an upstream change fails loudly here."""
from __future__ import annotations

import inspect

import sam2
from sam2.modeling.sam.mask_decoder import MaskDecoder
from sam2.modeling.sam.prompt_encoder import PromptEncoder
from sam2.modeling.sam2_base import SAM2Base

from mpg_sam2.model.mask_decoder import MPGMaskDecoder
from mpg_sam2.model.prompted_sam2 import PromptedSAM2


def params(fn) -> list[str]:
    return list(inspect.signature(fn).parameters)


def test_sam2_version():
    from importlib.metadata import version

    assert version("sam2") == "1.1.0"
    assert hasattr(sam2, "__path__")


def test_sam2_base_methods_we_call():
    assert params(SAM2Base._build_sam_heads) == ["self"]
    assert params(SAM2Base.forward_image) == ["self", "img_batch"]
    assert params(SAM2Base._prepare_backbone_features) == ["self", "backbone_out"]
    assert params(SAM2Base._prepare_memory_conditioned_features) == [
        "self", "frame_idx", "is_init_cond_frame", "current_vision_feats", "current_vision_pos_embeds",
        "feat_sizes", "output_dict", "num_frames", "track_in_reverse"]
    assert params(SAM2Base._encode_new_memory) == [
        "self", "current_vision_feats", "feat_sizes", "pred_masks_high_res", "object_score_logits",
        "is_mask_from_pts"]
    assert params(SAM2Base._use_multimask) == ["self", "is_init_cond_frame", "point_inputs"]
    init = inspect.signature(SAM2Base.__init__).parameters
    for name in ("use_mask_input_as_output_without_sam", "no_obj_embed_spatial", "use_signed_tpos_enc_to_obj_ptrs",
                 "max_obj_ptrs_in_encoder", "image_size", "compile_image_encoder"):
        assert name in init
    assert init["no_obj_embed_spatial"].default is False
    assert init["use_signed_tpos_enc_to_obj_ptrs"].default is False


def test_mask_decoder_methods_we_override():
    base_forward = params(MaskDecoder.forward)
    assert base_forward == ["self", "image_embeddings", "image_pe", "sparse_prompt_embeddings",
                            "dense_prompt_embeddings", "multimask_output", "repeat_image", "high_res_features"]
    assert params(MPGMaskDecoder.forward) == base_forward + ["context"]
    base_predict = params(MaskDecoder.predict_masks)
    assert base_predict == ["self", "image_embeddings", "image_pe", "sparse_prompt_embeddings",
                            "dense_prompt_embeddings", "repeat_image", "high_res_features"]
    assert params(MPGMaskDecoder.predict_masks) == base_predict + ["context"]
    init = inspect.signature(MaskDecoder.__init__).parameters
    for name in ("transformer_dim", "transformer", "num_multimask_outputs", "iou_head_depth", "iou_head_hidden_dim",
                 "use_high_res_features", "iou_prediction_use_sigmoid", "pred_obj_scores", "pred_obj_scores_mlp",
                 "use_multimask_token_for_obj_ptr"):
        assert name in init


def test_prompt_encoder_calls():
    assert params(PromptEncoder.forward) == ["self", "points", "boxes", "masks"]
    assert params(PromptEncoder.get_dense_pe) == ["self"]


def test_overrides_are_the_ones_we_know():
    overridden = {name for name, v in vars(PromptedSAM2).items() if callable(v) and name in vars(SAM2Base)}
    assert overridden == {"__init__", "_build_sam_heads"}
    overridden = {name for name, v in vars(MPGMaskDecoder).items() if callable(v) and name in vars(MaskDecoder)}
    assert overridden == {"__init__", "forward", "predict_masks"}
