"""Presets: the small from-scratch preset fits the bundled-model budget and runs; configs round-trip."""
from __future__ import annotations

import json

import pytest
import torch

from mpg_sam2.config import PRESETS, MPGSAM2Config, get_preset
from mpg_sam2.model.mpg_sam2 import MPGSAM2


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_config_json_round_trip(name):
    config = get_preset(name)
    assert MPGSAM2Config.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_unknown_preset_and_fields_are_named():
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        get_preset("huge")
    with pytest.raises(ValueError, match="unknown fields \\['depth'\\]"):
        MPGSAM2Config.from_dict({"beit3": {"depth": 3}})


def test_nano_fits_the_bundled_model_budget_and_runs():
    torch.manual_seed(0)
    model = MPGSAM2(get_preset("nano")).eval()
    size_mb = sum(p.numel() * 4 for p in model.state_dict().values()) / 2**20
    assert size_mb <= 25, f"nano weighs {size_mb:.1f} MB in float32"
    assert model.sam2.hidden_dim == 128 and len(model.sam2.memory_attention.layers) == 2
    beit = torch.randn(3, 3, 224, 224)
    ids = torch.tensor([[0, 5, 9, 2]])
    sam = torch.randn(3, 1, 3, 256, 256)
    with torch.no_grad():
        prompts, prior = model.encode_expression(beit, ids, ids != 3)
        frames = list(model.propagate(lambda start, stop: sam[start:stop, 0], prompts))
    assert prior.prior.shape == (3, 1, 14, 14)
    assert frames[-1].heads.lowres_logits.shape == (1, 1, 64, 64)
    assert all(torch.isfinite(f.heads.lowres_logits).all() for f in frames)
