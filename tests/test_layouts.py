"""The authors' state-dict layouts map 100% onto our presets, names and shapes, both ways."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mpg_sam2.config import get_preset
from mpg_sam2.checkpoint.key_mapping import authors_key_to_ours, convert_authors_state_dict
from mpg_sam2.checkpoint.strict_loading import empty_weights, load_strict
from mpg_sam2.model.mpg_sam2 import MPGSAM2
from mpg_sam2.synthetic_weights import read_layout

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize(("preset", "layout_file", "entries", "numbers"), [
    ("release-large", "layout_release_large.txt", 1939, 919_446_836),
    ("mini", "layout_mini.txt", 627, 114_756_036),
])
def test_layout_maps_onto_preset(preset, layout_file, entries, numbers):
    layout = read_layout(FIXTURES / layout_file)
    assert len(layout) == entries
    with empty_weights():
        model = MPGSAM2(get_preset(preset))
    ours = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    assert all(t.is_meta for t in model.state_dict().values()), "the layout check must not allocate weights"
    mapped = {authors_key_to_ours(name): shape for name, shape in layout.items()}
    assert len(mapped) == len(layout), "two authors' keys map to the same name"
    assert sorted(set(ours) - set(mapped)) == [], "model entries the checkpoint lacks"
    assert sorted(set(mapped) - set(ours)) == [], "checkpoint entries the model lacks"
    assert {k: v for k, v in mapped.items() if ours[k] != v} == {}
    assert sum(torch.Size(s).numel() for s in ours.values()) == numbers


def test_our_names_say_what_they_are():
    assert authors_key_to_ours("vmtoken.multihead_attn.in_proj_weight") == "mask_prior_generator.class_token_attn.in_proj_weight"
    assert authors_key_to_ours("visual_ifi.linear1.weight") == "mask_prior_generator.spatiotemporal_layer.fc1.weight"
    assert authors_key_to_ours("meo_linear.bias") == "mask_prior_generator.global_context_proj.bias"
    assert (authors_key_to_ours("visual_model.sam_mask_decoder.vtlfusion_module.multihead_attn.out_proj.weight")
            == "sam2.sam_mask_decoder.aggregator.pixel_fusion.cross_attn.out_proj.weight")
    assert (authors_key_to_ours("mm_extractor.beit3.encoder.layers.3.ffn.B.ffn_layernorm.weight")
            == "beit3.layers.3.ffn.text.norm.weight")
    assert authors_key_to_ours("visual_model.image_encoder.trunk.pos_embed") == "sam2.image_encoder.trunk.pos_embed"


def test_unknown_key_is_named():
    with pytest.raises(ValueError, match="vision_tower.weight"):
        convert_authors_state_dict({"vision_tower.weight": torch.zeros(1), "meo_linear.bias": torch.zeros(1)})


def test_strict_loading_names_every_mismatch():
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Linear(3, 1))
    sd = {"0.weight": torch.zeros(3, 2), "0.bias": torch.zeros(4), "extra.weight": torch.zeros(1)}
    with pytest.raises(RuntimeError) as err:
        load_strict(model, sd)
    text = str(err.value)
    assert "1.weight" in text and "1.bias" in text  # missing
    assert "extra.weight" in text  # unexpected
    assert "0.bias: checkpoint (4,) vs model (3,)" in text


def test_release_tiny_builds_with_beit3_base_widths():
    with empty_weights():
        model = MPGSAM2(get_preset("release-tiny"))
    sd = model.state_dict()
    assert sd["beit3.text_embed.weight"].shape == (64010, 768)
    assert sd["mask_prior_generator.class_token_attn.in_proj_weight"].shape == (3 * 768, 768)
    assert sd["mask_prior_generator.global_context_proj.weight"].shape == (256, 768)
    assert sd["text_prompt_proj.2.weight"].shape == (256, 768)
    assert sd["sam2.image_encoder.trunk.patch_embed.proj.weight"].shape[0] == 96  # Hiera-T
    assert len(model.beit3.layers) == 12
