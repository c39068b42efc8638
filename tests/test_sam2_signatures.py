"""Pin the ``sam2`` code we adapt, override or call, so an upstream change fails loudly here.

Each upstream function is pinned by a hash of its source in sam2 1.1.0. When an upgrade of
``sam2`` changes one, the failure names our code to re-read against the new body; update the
hash only after that. Every "adapted from" note in the package must name a pinned function.
"""
from __future__ import annotations

import hashlib
import inspect
import re
from pathlib import Path

import pytest
from sam2.build_sam import build_sam2
from sam2.modeling import sam2_utils
from sam2.modeling.sam.mask_decoder import MaskDecoder
from sam2.modeling.sam.prompt_encoder import PromptEncoder
from sam2.modeling.sam2_base import SAM2Base
from sam2.sam2_video_predictor import SAM2VideoPredictor

from mpg_sam2.model.mask_decoder import MPGMaskDecoder
from mpg_sam2.model.prompted_sam2 import PromptedSAM2
from tiny_model import tiny_model

PACKAGE = Path(__file__).resolve().parents[1] / "mpg_sam2"

# upstream function -> (sha256 of its source, first 16 hex digits; what of ours depends on it)
UPSTREAM = {
    "SAM2Base.__init__": (SAM2Base.__init__, "26305a47f6b93528", "model/prompted_sam2.py: options we refuse"),
    "SAM2Base._build_sam_heads": (SAM2Base._build_sam_heads, "c4ca8ae1d412dc96", "model/prompted_sam2.py: PromptedSAM2._build_sam_heads"),
    "SAM2Base._forward_sam_heads": (SAM2Base._forward_sam_heads, "f9b235d397421447", "model/prompted_sam2.py: PromptedSAM2.forward_heads"),
    "SAM2Base.forward_image": (SAM2Base.forward_image, "3d7b7212efc120f7", "model/frame_features.py: image_features"),
    "SAM2Base._prepare_backbone_features": (SAM2Base._prepare_backbone_features, "107ffea6ee998718", "model/frame_features.py: image_features"),
    "SAM2Base._prepare_memory_conditioned_features": (SAM2Base._prepare_memory_conditioned_features, "bf6d7c3fe3e70ae7",
                                                      "model/prompted_sam2.py: object_pointer_history (both directions); model/video_propagation.py: _track_frame"),
    "SAM2Base._encode_new_memory": (SAM2Base._encode_new_memory, "dca9341f9e960125", "model/video_propagation.py: _track_frame"),
    "SAM2Base._track_step": (SAM2Base._track_step, "0c6ec41c85822af4", "model/video_propagation.py: _track_frame; model/frame_features.py"),
    "SAM2Base.track_step": (SAM2Base.track_step, "4fe89a489431e38b", "model/video_propagation.py: _track_frame"),
    "SAM2Base._encode_memory_in_output": (SAM2Base._encode_memory_in_output, "7ce965151536ea76", "model/video_propagation.py: _track_frame"),
    "SAM2Base._use_multimask": (SAM2Base._use_multimask, "a6e107dfbbd6ec51", "model/video_propagation.py: _track_frame"),
    "MaskDecoder.__init__": (MaskDecoder.__init__, "862dd75979acec53", "model/prompted_sam2.py: _build_sam_heads arguments"),
    "MaskDecoder.forward": (MaskDecoder.forward, "662dc2b7ed134055", "model/mask_decoder.py: MPGMaskDecoder.forward"),
    "MaskDecoder.predict_masks": (MaskDecoder.predict_masks, "580a02a45e0ef7a2", "model/mask_decoder.py: MPGMaskDecoder.predict_masks"),
    "PromptEncoder.forward": (PromptEncoder.forward, "4a9e6f6dd44be924", "model/prompted_sam2.py: forward_heads"),
    "PromptEncoder.get_dense_pe": (PromptEncoder.get_dense_pe, "6f6e0f8950c81300", "model/prompted_sam2.py: forward_heads"),
    "get_1d_sine_pe": (sam2_utils.get_1d_sine_pe, "36f1abd015e2fd78", "model/prompted_sam2.py, model/mask_prior_generator.py"),
    "select_closest_cond_frames": (sam2_utils.select_closest_cond_frames, "da90e4e7660d85cc", "model/prompted_sam2.py: object_pointer_history"),
    "build_sam2": (build_sam2, "939bb92694f381d6", "model/prompted_sam2.py: build_prompted_sam2"),
    "SAM2VideoPredictor.add_new_points_or_box": (SAM2VideoPredictor.add_new_points_or_box, "17737f16eca2c207",
                                                 "model/click_correction.py: repropagate (clicked frame)"),
    "SAM2VideoPredictor.propagate_in_video": (SAM2VideoPredictor.propagate_in_video, "746939be28ba4485",
                                              "model/click_correction.py: repropagate (both directions)"),
    "SAM2VideoPredictor._run_single_frame_inference": (SAM2VideoPredictor._run_single_frame_inference, "b26337ac92abb013",
                                                       "model/video_propagation.py: bfloat16 memory storage"),
}


def source_hash(fn) -> str:
    return hashlib.sha256(inspect.getsource(fn).encode()).hexdigest()[:16]


def test_sam2_version():
    from importlib.metadata import version

    assert version("sam2") == "1.1.0"


@pytest.mark.parametrize("name", sorted(UPSTREAM))
def test_upstream_source_is_the_one_we_adapted(name):
    fn, pinned, ours = UPSTREAM[name]
    assert source_hash(fn) == pinned, f"sam2's {name} changed: re-read mpg_sam2/{ours} against it, then update the hash"


def test_every_adaptation_note_names_a_pinned_function():
    """An "adapted from" note that names an upstream function nobody pins would drift unseen."""
    named = []
    for path in PACKAGE.rglob("*.py"):
        text = " ".join(path.read_text().split())
        for note in re.findall(r"[Aa]dapted from (.*?)sam2 1\.1\.0", text):
            named += [(path.name, n) for n in re.findall(r"``([\w.]+)``", note)]
    assert len(named) >= 8, named  # the notes exist (and the pattern still finds them)
    unpinned = [(file, n) for file, n in named if n not in UPSTREAM]
    assert not unpinned, f"adapted from, but not pinned here: {unpinned}"


def params(fn) -> list[str]:
    return list(inspect.signature(fn).parameters)


def test_sam2_base_methods_we_call():
    assert params(SAM2Base._prepare_memory_conditioned_features) == [
        "self", "frame_idx", "is_init_cond_frame", "current_vision_feats", "current_vision_pos_embeds",
        "feat_sizes", "output_dict", "num_frames", "track_in_reverse"]
    assert params(SAM2Base._encode_new_memory) == [
        "self", "current_vision_feats", "feat_sizes", "pred_masks_high_res", "object_score_logits",
        "is_mask_from_pts"]


def test_decoder_overrides_extend_the_base_signature():
    assert params(MPGMaskDecoder.forward) == params(MaskDecoder.forward) + ["context"]
    assert params(MPGMaskDecoder.predict_masks) == params(MaskDecoder.predict_masks) + ["context"]


def test_overrides_are_the_ones_we_know():
    overridden = {name for name, v in vars(PromptedSAM2).items() if callable(v) and name in vars(SAM2Base)}
    assert overridden == {"__init__", "_build_sam_heads"}
    overridden = {name for name, v in vars(MPGMaskDecoder).items() if callable(v) and name in vars(MaskDecoder)}
    assert overridden == {"__init__", "forward", "predict_masks"}


@pytest.mark.parametrize(
    "option, value",
    [("soft_no_obj_ptr", True), ("use_mask_input_as_output_without_sam", True), ("use_obj_ptrs_in_encoder", False)],
)
def test_unsupported_sam2_options_raise(option, value):
    """Options our adapted heads and tracking step do not implement are refused, not ignored."""
    from mpg_sam2.model.prompted_sam2 import _refuse_unsupported_options

    model = tiny_model(seed=0).sam2
    _refuse_unsupported_options(model)  # the shipped configuration passes
    setattr(model, option, value)
    with pytest.raises(ValueError, match=option):
        _refuse_unsupported_options(model)
