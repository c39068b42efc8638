"""The prior warm-up's caption loss: what a synthetic sentence says (parse_caption), the loss on
BEiT-3's class tokens, and a warm-up that trains with it, keeps its head out of the model and
resumes exactly."""
from __future__ import annotations

import json

import pytest
import torch

from mpg_sam2.data.synthetic import TEMPLATES, generate_clip
from mpg_sam2.data.synthetic.expressions import parse_caption
from mpg_sam2.training.augment import swap_left_right
from mpg_sam2.training.caption_loss import CAPTION_GROUPS, CaptionHead, caption_loss, caption_targets
from warmup_heads import check_head_warm_up

MIRROR = {"left_of": "right_of", "right_of": "left_of", "moving_left": "moving_right", "moving_right": "moving_left"}


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    from mpg_sam2.data.synthetic import write_dataset

    return write_dataset(tmp_path_factory.mktemp("synthetic") / "data", seed=1, train=2, val=1, test=0, frames=4, size=64)


def test_every_generated_sentence_and_its_mirror_parse_to_their_template_and_the_targets_attributes():
    templates, said = set(), set()
    for seed in range(40):
        clip = generate_clip(seed, frames=8, size=128)
        objects = {o.object_id: o for o in clip.objects}
        for expression in clip.expressions:
            caption = parse_caption(expression.text)
            assert caption.template.type == expression.type, expression.text
            target = objects[expression.target_id].attributes
            assert all(target[key] == value for key, value in caption.target.items()), expression.text
            assert bool(caption.reference) == (expression.type == "relation"), expression.text
            mirrored = parse_caption(swap_left_right(expression.text))
            assert mirrored.template.name == MIRROR.get(caption.template.name, caption.template.name)
            assert (mirrored.target, mirrored.reference) == (caption.target, caption.reference)
            templates.add(caption.template.name)
            said.update(caption.target)
    # The seeds cover every type and every attribute, so the checks above are not vacuous.
    assert {t.type for t in TEMPLATES if t.name in templates} == {"appearance", "relation", "motion", "time"}
    assert said == {"colour", "shape", "size", "texture"}


def test_a_sentence_outside_the_templates_is_refused():
    assert parse_caption("The  small Red square moving LEFT").template.name == "moving_left"
    for text in ("the dog running to the left", "the red square moving sideways", "red square", "the purple-ish circle"):
        with pytest.raises(ValueError, match="not a sentence of the synthetic benchmark's templates"):
            parse_caption(text)
    with pytest.raises(ValueError, match="'the dog running to the left' is not .* train on other data without it"):
        caption_targets("the dog running to the left")


def test_targets_say_the_template_and_each_attribute_or_that_it_is_not_said():
    names = [name for name, _ in CAPTION_GROUPS]
    targets = dict(zip(names, caption_targets("the striped circle left of the large shape").tolist()))
    assert targets["template"] == [t.name for t in TEMPLATES].index("left_of")
    sizes = dict(CAPTION_GROUPS)
    assert targets["target colour"] == sizes["target colour"] - 1  # not said
    assert targets["target texture"] != sizes["target texture"] - 1
    assert targets["reference size"] != sizes["reference size"] - 1
    assert targets["reference shape"] == sizes["reference shape"] - 1  # "shape" names no shape
    left = caption_targets("the red square moving left")
    right = caption_targets("the red square moving right")
    assert (left != right).tolist() == [True] + [False] * (len(CAPTION_GROUPS) - 1)


def test_loss_is_near_zero_when_every_frame_names_the_caption_and_large_when_it_names_another():
    targets = caption_targets("the small dotted blue star below the ring")
    right = torch.full((3, sum(size for _, size in CAPTION_GROUPS)), -20.0)
    start = 0
    for k, (_, size) in enumerate(CAPTION_GROUPS):
        right[:, start + int(targets[k])] = 20.0
        start += size
    assert caption_loss(right, targets).item() < 1e-6
    wrong = caption_targets("the small dotted blue star above the ring")
    assert caption_loss(right, wrong).item() > 40 / len(CAPTION_GROUPS)
    assert CaptionHead(16)(torch.zeros(3, 16)).shape == right.shape


def test_warm_up_with_the_caption_loss_keeps_its_head_out_of_the_model_and_resumes_exactly(synthetic_root, tmp_path):
    from mpg_sam2.training.prior_warmup import warm_up_prior

    settings = check_head_warm_up(synthetic_root, tmp_path, "caption_loss", "caption", "caption_head")

    # Both losses train together; a run with the attribute head instead (as many parameter
    # groups, of other shapes) cannot resume this one.
    both = warm_up_prior(synthetic_root, tmp_path / "both", steps=2, **{**settings, "attribute_loss": 0.3})
    record = json.loads((tmp_path / "both" / "log.jsonl").read_text().splitlines()[-1])
    assert abs(record["loss"] - record["prior"] - 0.3 * record["attributes"] - 0.5 * record["caption"]) < 1e-5
    assert set(torch.load(both / "training_state.pt", weights_only=True)["objective_state"]) == {"attribute_head", "caption_head"}
    other = {**settings, "caption_loss": 0.0, "attribute_loss": 0.5}
    with pytest.raises(ValueError, match="does not fit this run's parameter groups.*--caption-loss"):
        warm_up_prior(synthetic_root, tmp_path / "x", steps=4, resume=tmp_path / "straight" / "step-000002", **other)


def test_negative_weight_is_refused():
    from mpg_sam2.training.prior_warmup import PriorObjective

    with pytest.raises(ValueError, match="--caption-loss must be at least 0"):
        PriorObjective(caption_loss=-1.0)


def test_the_card_names_the_caption_loss_only_where_the_warm_up_has_it():
    from mpg_sam2.training.offline_card import _head_losses

    attributes = _head_losses({"attribute_loss": 0.3})
    assert "caption" not in attributes and "0.3 x a per-patch attribute loss" in attributes
    both = _head_losses({"attribute_loss": 0.3, "caption_loss": 1.0})
    assert both.startswith(attributes) and "1 x a caption loss" in both and "`mpg_sam2.training.caption_loss`" in both
    assert _head_losses({}) == " only"
