"""BEiT-3's convolutional stem (BEiT3Config.conv_stem, not in BEiT-3): on the patch grid, added
to the linear projection, absent from every preset; distinct images embedded once; a warm-up that
turns it on for a new model and refuses to change it on a checkpoint."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from mpg_sam2.config import PRESETS, MPGSAM2Config
from mpg_sam2.model.beit3 import BEiT3, VisionEmbedding
from mpg_sam2.model.conv_stem import ConvStem
from tiny_model import TINY, TRAINING_TINY
from warmup_heads import SETTINGS


def with_stem(config: MPGSAM2Config, widths: tuple[int, ...] = (8, 16, 32)) -> MPGSAM2Config:
    return dataclasses.replace(config, beit3=dataclasses.replace(config.beit3, conv_stem=widths))


def test_the_stem_reaches_the_patch_grid_and_adds_to_the_projection():
    stem = ConvStem((8, 16, 32), dim=64, patch_size=16)
    assert stem(torch.zeros(2, 3, 64, 64)).shape == (2, 64, 4, 4)
    # Cell k sees pixels 16k - 15 ... 16k + 15 (31 px: its patch and 15 px above and left of it),
    # so pixel 20 reaches cells 1 and 2 of each axis and no others.
    pixels = torch.zeros(1, 3, 64, 64)
    pixels[0, :, 20, 20] = 1.0
    changed = (stem(pixels) - stem(torch.zeros_like(pixels))).abs().sum(1)[0] > 0
    expected = torch.zeros(4, 4, dtype=torch.bool)
    expected[1:3, 1:3] = True
    assert torch.equal(changed, expected)

    config = with_stem(TINY).beit3
    torch.manual_seed(0)
    embed = VisionEmbedding(config)
    pixels = torch.randn(2, 3, 64, 64)
    tokens = embed(pixels)  # [B, 1 + g*g, C]
    plain = embed.proj(pixels).flatten(2).transpose(1, 2)
    stemmed = embed.stem(pixels).flatten(2).transpose(1, 2)
    assert torch.allclose(tokens[:, 1:], plain + stemmed, atol=1e-6)
    assert stemmed.abs().mean() > 1e-3  # the stem contributes from the start

    with pytest.raises(ValueError, match=r"4 convolutions, so conv_stem needs 3 widths .*got \(8, 16\)"):
        ConvStem((8, 16), dim=64, patch_size=16)
    with pytest.raises(ValueError, match="power-of-two patch size, got 14"):
        ConvStem((8, 16), dim=64, patch_size=14)


def test_the_presets_keep_beit3s_patch_projection_and_the_config_round_trips():
    assert all(config.beit3.conv_stem == () for config in PRESETS.values())
    assert VisionEmbedding(TINY.beit3).stem is None
    assert not any("stem" in name for name in BEiT3(TINY.beit3).state_dict())
    on = with_stem(TRAINING_TINY)
    assert MPGSAM2Config.from_dict(json.loads(json.dumps(on.to_dict()))) == on
    assert {name for name in BEiT3(on.beit3).state_dict() if "stem" in name} == {
        f"vision_embed.stem.layers.{i}.{kind}" for i in (0, 2, 4, 6) for kind in ("weight", "bias")}


def test_distinct_images_embedded_once_give_what_repeating_them_gives():
    config = with_stem(TINY).beit3
    torch.manual_seed(0)
    beit3 = BEiT3(config).eval()
    images = torch.randn(2, 3, 64, 64)
    ids = torch.randint(4, config.vocab_size, (5, 6))
    mask = torch.ones(5, 6, dtype=torch.bool)
    mask[3, 4:] = False
    index = torch.tensor([0, 1, 1, 0, 1])
    with torch.no_grad():
        shared = beit3(images, ids, mask, image_index=index)
        repeated = beit3(images[index], ids, mask)
    for got, want in zip((shared.cls, shared.patches, shared.text), (repeated.cls, repeated.patches, repeated.text)):
        assert torch.allclose(got, want, atol=1e-5)


def test_warm_up_turns_the_stem_on_for_a_new_model_and_a_checkpoint_keeps_its_own(tmp_path):
    from mpg_sam2.checkpoint.pretrained import load_pretrained
    from mpg_sam2.data.synthetic import write_dataset
    from mpg_sam2.training.prior_warmup import build_parser, warm_up_prior

    root = write_dataset(tmp_path / "data", seed=1, train=2, val=0, test=0, frames=4, size=64)
    settings = {**SETTINGS, "batch_size": 2}  # both captions of a video: one draw, one embedding of its frames
    stemmed = warm_up_prior(root, tmp_path / "stem", steps=2, save_every=1, conv_stem=(8, 16, 32), **settings)
    model = load_pretrained(stemmed).model
    assert model.config.beit3.conv_stem == (8, 16, 32)
    assert json.loads((stemmed / "training_args.json").read_text())["conv_stem"] == [8, 16, 32]
    # It trains: the first convolution moved between steps 1 and 2.
    before = load_pretrained(tmp_path / "stem" / "step-000001").model.beit3.vision_embed.stem.layers[0].weight
    assert (model.beit3.vision_embed.stem.layers[0].weight - before).abs().max() > 1e-6

    plain = warm_up_prior(root, tmp_path / "plain", steps=1, **settings)
    assert load_pretrained(plain).model.beit3.vision_embed.stem is None
    with pytest.raises(ValueError, match=r"has BEiT-3 conv stem none, and its weights fit only that model"):
        warm_up_prior(root, tmp_path / "x", steps=1, init_from=plain, **{**settings, "conv_stem": (8, 16, 32)})

    assert build_parser().parse_args(["--data", "d", "--out", "o", "--conv-stem", "24,48,96"]).conv_stem == (24, 48, 96)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--data", "d", "--out", "o", "--conv-stem", "24;48"])


def test_the_card_and_readme_name_the_stem_when_the_recipe_has_it(monkeypatch):
    from mpg_sam2.training import offline_recipe as recipe
    from mpg_sam2.training.offline_card import _architecture_lines
    from mpg_sam2.training.offline_readme import _warm_up_parts

    stage = {**recipe.WARMUP_STAGES[0], "motion_features": True, "conv_stem": (24, 48, 96)}
    monkeypatch.setattr(recipe, "WARMUP_STAGES", [stage])
    card = " ".join(_architecture_lines())
    assert "Not in BEiT-3 either" in card and "24 / 48 / 96 channels" in card and "`beit3.conv_stem`" in card
    assert "; and a convolutional stem beside BEiT-3's patch projection" in _warm_up_parts(stage)
    plain = {key: value for key, value in stage.items() if key != "conv_stem"}
    monkeypatch.setattr(recipe, "WARMUP_STAGES", [plain])
    assert "stem" not in " ".join(_architecture_lines()) and "stem" not in _warm_up_parts(plain)
    assert "Not in BEiT-3," in _warm_up_parts({"conv_stem": [24, 48, 96]})
