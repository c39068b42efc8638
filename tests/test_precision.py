"""The bf16 inference path (mpg_sam2/model/precision.py): what it holds in bfloat16, that SAM 2's
frame loop then dispatches exactly the float32 path's operators (no casts), and how closely
it agrees with the authors' float32 outputs on the reference fixtures."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from mpg_sam2.frames import encoder_input
from mpg_sam2.model.frame_features import image_features
from mpg_sam2.model.precision import GROUNDING_MODULES, hold_in_precision, model_precision, sam2_input
from mpg_sam2.model.video_propagation import ExpressionTracker
from mpg_sam2.reference import build_with_authors_weights, run_case
from mpg_sam2.synthetic_weights import read_layout
from reference_capture import CASES, FIXTURES, load_case
from test_tracking_step_cost import OpCounter
from tiny_model import tiny_model


@pytest.fixture(scope="module")
def models():
    fp32 = tiny_model(seed=5).eval()
    return {"fp32": fp32, "bf16": hold_in_precision(copy.deepcopy(fp32), "bf16")}


def test_only_the_grounding_path_is_held_in_bf16(models):
    model = models["bf16"]
    assert model_precision(model) == "bf16" and model.grounding_dtype == torch.bfloat16
    for name, param in model.named_parameters():
        expected = torch.bfloat16 if name.split(".")[0] in GROUNDING_MODULES else torch.float32
        assert param.dtype == expected, name
    assert {b.dtype for b in model.sam2.buffers() if b.is_floating_point()} == {torch.float32}
    assert model_precision(models["fp32"]) == "fp32"


def test_precision_changes_that_cannot_work_are_refused(models):
    with pytest.raises(ValueError, match="load the checkpoint again"):
        hold_in_precision(models["bf16"], "fp32")
    with pytest.raises(ValueError, match=r"precision must be one of \['bf16', 'fp32'\], got 'fp16'"):
        hold_in_precision(models["fp32"], "fp16")
    assert hold_in_precision(models["bf16"], "bf16") is models["bf16"]  # already there: nothing to do


def test_sam2_input_is_rounded_like_the_authors_bf16_runs():
    images = torch.linspace(-2.0, 2.0, 3 * 8 * 8).reshape(1, 3, 8, 8)
    assert sam2_input(images, torch.float32) is images
    rounded = sam2_input(images, torch.bfloat16)
    assert rounded.dtype == torch.float32
    assert torch.equal(rounded, images.to(torch.bfloat16).float()) and not torch.equal(rounded, images)


def test_bf16_tracking_dispatches_the_float32_ops(models):
    """No autocast: the prompts reach SAM 2 in float32 once per video, so every tracking step of
    a model held in bf16 dispatches the same operators as float32, casts included (none)."""
    frames = np.random.default_rng(0).integers(0, 256, (9, 40, 56, 3), dtype=np.uint8)
    ids = torch.tensor([[0, 10, 11, 12, 2]])
    counts = {}
    for name, model in models.items():
        cfg = model.config
        with torch.inference_mode():
            prompts, prior = model.encode_expression(encoder_input(frames, cfg.beit3.image_size), ids, ids != cfg.pad_token_id)
            assert prior.prior.dtype == model.grounding_dtype
            assert {p.dtype for p in (prompts.text_tokens, prompts.text_features, prompts.mask_priors,
                                      prompts.global_context, prompts.global_patches)} == {torch.float32}
            tracker = ExpressionTracker(model.sam2, prompts)
            counts[name] = []
            for frame in frames:
                images = sam2_input(encoder_input(frame, cfg.sam2.image_size), model.grounding_dtype)
                features = image_features(model.sam2, images)
                with OpCounter() as counter:
                    tracker.step(features)
                counts[name].append(counter.ops)
    assert counts["bf16"] == counts["fp32"]


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_bf16_agrees_with_the_authors_float32_outputs(case):
    """Measured on the public cases (mini preset, CPU): low-res mask IoU 0.994-0.996 before the
    no-object gate, every object-score sign equal, scores within 4e-3, mask prior within 0.011."""
    data = load_case(case)
    inputs = data["inputs"]
    model = build_with_authors_weights(read_layout(FIXTURES / "layout_mini.txt"), int(inputs["weight_seed"]))
    run = run_case(hold_in_precision(model, "bf16"), inputs["frames"], inputs["input_ids"])
    ours = torch.cat([f.heads.lowres_logits_before[:, 0] for f in run.frames]).numpy() > 0
    theirs = data["lowres_before"]["lowres_logits_before"] > 0
    assert (ours & theirs).sum() / (ours | theirs).sum() >= 0.98
    scores = torch.cat([f.heads.object_score_logits[:, 0] for f in run.frames]).numpy()
    reference = data["outputs"]["object_score_logits"]
    assert np.array_equal(scores > 0, reference > 0)
    assert np.abs(scores - reference).max() <= 0.02
    prior = run.mask_prior.prior.float().numpy()[:, 0]
    assert np.abs(prior - data["intermediates_prior"]["mask_prior"].reshape(prior.shape)).max() <= 0.05


def test_load_pretrained_holds_the_requested_precision():
    from mpg_sam2.checkpoint.pretrained import load_pretrained

    offline = FIXTURES.parents[1] / "checkpoints" / "offline"
    assert model_precision(load_pretrained(offline, load_tokenizer_files=False, precision="bf16").model) == "bf16"
    assert model_precision(load_pretrained(offline, load_tokenizer_files=False).model) == "fp32"
    # A bad precision fails before anything is resolved or downloaded (this repo id does not exist).
    with pytest.raises(ValueError, match="precision must be one of"):
        load_pretrained("nobody/no-such-model", precision="fp16", local_files_only=True)


def test_a_bf16_model_is_not_saved(models, tmp_path):
    from mpg_sam2.checkpoint.pretrained import save_pretrained

    with pytest.raises(ValueError, match="holds its grounding weights in bf16"):
        save_pretrained(models["bf16"], tmp_path / "bf16")
    assert not (tmp_path / "bf16").exists()
