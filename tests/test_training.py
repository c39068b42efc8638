"""Training module: losses, parameter groups, augmentations, a few steps, resume, and the CLI."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mpg_sam2.config import get_preset
from mpg_sam2.model.mpg_sam2 import MPGSAM2
from mpg_sam2.training.augment import AugmentConfig, augment_clip, encoder_views, swap_left_right
from mpg_sam2.training.datasets import TrainingClip, sample_frame_indices, sample_spanning_indices
from mpg_sam2.training.forward import TrainingForward
from mpg_sam2.training.losses import ClipPrediction, LossWeights, referring_loss, similarity_loss
from mpg_sam2.training.train_config import TrainConfig
from mpg_sam2.training.param_groups import (
    AUTHORS_FUSION_PREFIXES,
    OptimizerSettings,
    build_optimizer,
    parameter_groups,
)
from tiny_model import TRAINING_TINY

# The tiny test model with SAM 2 at 128 px: a training step takes well under a second.
CONFIG = TRAINING_TINY
pytestmark = pytest.mark.usefixtures("one_thread")


def _model(seed: int = 0) -> MPGSAM2:
    torch.manual_seed(seed)
    return MPGSAM2(CONFIG)


def _clip(seed: int, num_frames: int = 2) -> TrainingClip:
    """A square that moves right on noise; the same clip for the same seed."""
    g = torch.Generator().manual_seed(seed)
    s, b = CONFIG.sam2.image_size, CONFIG.beit3.image_size
    targets = torch.zeros(num_frames, s, s)
    for t in range(num_frames):
        targets[t, 40:80, 20 + 10 * t : 60 + 10 * t] = 1
    sam = torch.randn(num_frames, 3, s, s, generator=g) * 0.3 + targets[:, None] * 1.5
    beit = torch.nn.functional.interpolate(sam, size=(b, b), mode="bilinear", antialias=True)
    ids = torch.tensor([[0, 17 + seed, 29, 2]])
    return TrainingClip(f"clip{seed}", "text", tuple(range(num_frames)), sam, beit, ids, ids != 3, targets)


# ------------------------------------------------------------------------------------------------
# Losses against a direct float64 computation


def _reference(logits: list[np.ndarray], targets: list[np.ndarray], sentence: list[np.ndarray]) -> dict[str, float]:
    n = max(1, sum(int((y.reshape(len(y), -1).sum(1) > 0).sum()) for y in targets))
    focal = dice = 0.0
    sims = []
    for x, y, s in zip(logits, targets, sentence):
        p = 1 / (1 + np.exp(-x))
        ce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
        p_t = np.where(y == 1, p, 1 - p)
        alpha_t = np.where(y == 1, 0.25, 0.75)
        focal += float(np.mean(alpha_t * ce * (1 - p_t) ** 2))
        dice += 1 - (2 * np.sum(p * y) + 1) / (np.sum(p) + np.sum(y) + 1)
        for t in range(len(x)):
            sen = np.full(p[t].size, s[t])
            a = np.dot(p[t].ravel(), sen) / (np.linalg.norm(p[t]) * np.linalg.norm(sen))
            b = np.dot(y[t].ravel(), sen) / max(np.linalg.norm(y[t]) * np.linalg.norm(sen), 1e-8)
            sims.append((a - b) ** 2)
    sim = float(np.mean(sims))
    return {"focal": focal / n, "dice": dice / n, "sim": sim, "loss": 2 * focal / n + 5 * dice / n + 2 * sim}


def test_losses_match_float64_reference_including_empty_targets():
    rng = np.random.default_rng(0)
    shapes = [(3, 8, 10), (2, 8, 10)]
    logits = [rng.normal(0, 3, s) for s in shapes]
    targets = [(rng.random(s) > 0.7).astype(np.float64) for s in shapes]
    targets[0][1] = 0  # an empty frame inside a video
    targets[1][:] = 0  # a video whose target is empty everywhere
    sentence = [rng.normal(size=s[0]) for s in shapes]
    expected = _reference(logits, targets, sentence)
    assert expected["focal"] > 0 and expected["sim"] > 0
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 2e-6)):
        predictions = [
            ClipPrediction(torch.tensor(x, dtype=dtype), torch.zeros(len(x), dtype=dtype), torch.tensor(s, dtype=dtype))
            for x, s in zip(logits, sentence)
        ]
        got = referring_loss(predictions, [torch.tensor(y, dtype=dtype) for y in targets]).as_dict()
        for name, value in expected.items():
            assert float(got[name]) == pytest.approx(value, rel=tol, abs=tol), name
        assert float(got["object_score"]) == 0.0


def test_all_empty_batch_divides_by_one():
    x = torch.randn(2, 4, 4, dtype=torch.float64)
    y = torch.zeros(2, 4, 4, dtype=torch.float64)
    out = referring_loss([ClipPrediction(x, torch.zeros(2), torch.ones(2))], [y])
    p = x.sigmoid()
    assert float(out.dice) == pytest.approx(float(1 - 1 / (p.sum() + 1)))
    # cos(target, s) is 0 for an empty target: the sim term pushes towards an empty prediction.
    assert float(out.sim) == pytest.approx(float((p.flatten(1).sum(1) / (p.flatten(1).norm(dim=1) * 4)).pow(2).mean()))


def test_similarity_loss_ignores_the_sentence_scores():
    x, y = torch.randn(3, 6, 6, dtype=torch.float64), (torch.rand(3, 6, 6) > 0.5).double()
    base = similarity_loss(x, y, torch.tensor([0.5, 2.0, 1.0], dtype=torch.float64))
    for scores in ([-3.0, 0.1, 7.0], [1e-3, -1e-3, 50.0]):
        assert torch.allclose(similarity_loss(x, y, torch.tensor(scores, dtype=torch.float64)), base, atol=1e-12)
    # ... and equals the squared difference of the mean/RMS ratios.
    p = x.sigmoid().flatten(1)
    ratio = lambda z: z.sum(1) / (z.norm(dim=1) * 6)  # noqa: E731
    assert torch.allclose(base, (ratio(p) - ratio(y.flatten(1))) ** 2, atol=1e-12)


def test_mask_prior_loss_uses_area_averaged_targets_and_trains_the_generator():
    from mpg_sam2.training.losses import mask_prior_loss

    target = torch.zeros(2, 28, 28)
    target[:, 5:14, 4:17] = 1  # whole 2x2 cells, halves along two edges, a quarter at the corner
    soft = F.avg_pool2d(target[:, None], 2)[:, 0]
    assert soft.unique().tolist() == [0.0, 0.25, 0.5, 1.0]
    matching = torch.logit(soft.clamp(0.02, 0.98))
    assert mask_prior_loss(matching, target) < mask_prior_loss(-matching, target)
    assert mask_prior_loss(matching, target) < mask_prior_loss(torch.zeros(2, 14, 14), target)

    model = _model().train()
    clip = _clip(0)
    torch.manual_seed(0)  # the same dropout draws in SAM 2's memory attention for both runs
    without = TrainingForward(model, LossWeights(object_score=1.0))([clip])
    assert without["prior"].item() == 0.0
    torch.manual_seed(0)
    with_prior = TrainingForward(model, LossWeights(object_score=1.0, prior=1.0))([clip])
    assert with_prior["prior"].item() > 0
    assert with_prior["loss"].item() == pytest.approx(without["loss"].item() + with_prior["prior"].item(), rel=1e-5)
    # The prior head gets a gradient from the prior term alone.
    model.zero_grad()
    with_prior["prior"].backward()
    grad = model.mask_prior_generator.prior_head.weight.grad
    assert grad is not None and bool(grad.abs().sum() > 0)
    assert all(p.grad is None or not p.grad.any() for p in model.sam2.memory_attention.parameters())


# ------------------------------------------------------------------------------------------------
# Parameter groups and gradients


def test_parameter_groups_hold_exactly_the_trainable_parameters():
    model = _model()
    settings = OptimizerSettings(lr=2e-6, lr_fusion=5e-5)
    groups = parameter_groups(model, settings)
    by_name = {g["name"]: g for g in groups}
    assert by_name["base"]["lr"] == 2e-6 and by_name["fusion"]["lr"] == 5e-5
    assert all(g["weight_decay"] == 5e-4 for g in groups)
    grouped = [n for g in groups for n in g["param_names"]]
    assert len(grouped) == len(set(grouped)), "a parameter is in two groups"
    assert len({id(p) for g in groups for p in g["params"]}) == len(grouped)
    named = dict(model.named_parameters())
    trainable = {n for n, p in named.items() if p.requires_grad}
    assert set(grouped) == trainable
    assert trainable == {n for n in named if not n.startswith("sam2.image_encoder.")}
    fusion = set(by_name["fusion"]["param_names"])
    assert fusion == {n for n in trainable if n.startswith(("mask_prior_generator.", "sam2.sam_mask_decoder.aggregator."))}

    authors = {g["name"]: set(g["param_names"]) for g in parameter_groups(model, dataclasses.replace(settings, authors_lr_groups=True))}
    assert authors["fusion"] == {n for n in trainable if n.startswith(AUTHORS_FUSION_PREFIXES)}
    moved = fusion - authors["fusion"]
    assert {n.rsplit(".", 1)[0] for n in moved} >= {
        "mask_prior_generator.global_context_proj", "sam2.sam_mask_decoder.aggregator.global_patch_proj",
    }
    assert any(n.startswith("mask_prior_generator.spatiotemporal_layer.") for n in moved)

    unfrozen = {g["name"]: set(g["param_names"]) for g in parameter_groups(model, dataclasses.replace(settings, train_image_encoder=True))}
    assert unfrozen["base"] - set(by_name["base"]["param_names"]) == {
        n for n in named if n.startswith("sam2.image_encoder.")
    }


def test_gradients_reach_only_the_optimised_parameters():
    model = _model().train()
    optimizer = build_optimizer(model, OptimizerSettings())
    optimised = {id(p) for g in optimizer.param_groups for p in g["params"]}
    losses = TrainingForward(model, LossWeights(object_score=1.0))([_clip(0)])
    losses["loss"].backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None and bool(p.grad.abs().sum() > 0)}
    for name, param in model.named_parameters():
        if name.startswith("sam2.image_encoder."):
            assert not param.requires_grad and param.grad is None, name
        elif param.grad is not None:
            assert id(param) in optimised, f"{name} gets a gradient but is not optimised"
    for prefix in ("beit3.layers.", "mask_prior_generator.prior_head.", "mask_prior_generator.spatiotemporal_layer.",
                   "sam2.sam_mask_decoder.aggregator.pixel_fusion.", "sam2.sam_mask_decoder.aggregator.historical_token_fusion.",
                   "sam2.memory_attention.", "sam2.memory_encoder.", "sam2.sam_mask_decoder.pred_obj_score_head.",
                   "text_prompt_proj.", "text_feature_proj."):
        assert any(n.startswith(prefix) for n in with_grad), f"no gradient reaches {prefix}"


# ------------------------------------------------------------------------------------------------
# Augmentations


def test_swap_left_right():
    assert swap_left_right("the square left of the Leftmost circle moving right") == (
        "the square right of the Rightmost circle moving left"
    )
    assert swap_left_right("a bright star") == "a bright star"


def _block_clip(num_frames: int = 3) -> tuple[np.ndarray, np.ndarray]:
    frames = np.full((num_frames, 60, 90, 3), 40, dtype=np.uint8)
    frames[:, 10:40, 5:30] = (250, 30, 30)
    masks = np.zeros(frames.shape[:3], dtype=bool)
    masks[:, 10:40, 5:30] = True
    return frames, masks


def test_flip_keeps_both_views_masks_and_text_aligned():
    frames, masks = _block_clip()
    clip = augment_clip(frames, masks, "the red square left of the circle", np.random.default_rng(0),
                        AugmentConfig(flip_p=1.0, jitter_p=0.0, crop_p=0.0))
    assert clip.applied == ["flip"] and clip.text == "the red square right of the circle"
    sam, beit = encoder_views(clip.frames, 64, 32)
    for view in (sam, beit):
        half = view.shape[-1] // 2
        red = view[:, 0]  # normalised red channel: the block is on the right after the flip
        assert bool((red[..., half:].mean(dim=(1, 2)) > red[..., :half].mean(dim=(1, 2))).all())
    half = clip.masks.shape[-1] // 2
    assert clip.masks[..., half:].sum() == masks.sum() and clip.masks[..., :half].sum() == 0
    # The BEiT-3 view is the SAM 2 view's image at another size: they agree after resizing.
    resized = torch.nn.functional.interpolate(sam, size=(32, 32), mode="bilinear", antialias=True)
    assert float((resized - beit).abs().mean()) < 0.1


def test_jitter_and_crop_are_the_same_on_every_frame():
    frames, masks = _block_clip(num_frames=3)
    config = AugmentConfig(flip_p=0.0, jitter_p=1.0, crop_p=1.0, crop_scale=(0.4, 0.6))
    clip = augment_clip(frames, masks, "the red square", np.random.default_rng(3), config)
    assert clip.applied == ["crop", "jitter"]
    assert clip.frames.shape[1:3] != frames.shape[1:3]
    assert all(np.array_equal(clip.frames[0], f) for f in clip.frames[1:])
    assert all(np.array_equal(clip.masks[0], m) for m in clip.masks[1:])
    assert clip.masks.sum() >= 0.8 * masks.sum()  # the crop keeps the target
    assert not np.array_equal(clip.frames[0][clip.masks[0]][0], frames[0][masks[0]][0])  # colours changed


@pytest.mark.parametrize("crop_p, flip_p", [(1.0, 0.0), (0.0, 1.0), (1.0, 1.0)])
def test_object_labels_are_cropped_and_flipped_with_the_masks(crop_p, flip_p):
    frames, masks = _block_clip()
    labels = masks.astype(np.uint8) * 2
    labels[:, 45:55, 60:80] = 5  # another object
    config = AugmentConfig(flip_p=flip_p, jitter_p=0.0, crop_p=crop_p, crop_scale=(0.6, 0.8))
    plain = augment_clip(frames, masks, "the red square", np.random.default_rng(1), config)
    clip = augment_clip(frames, masks, "the red square", np.random.default_rng(1), config, labels=labels)
    assert clip.applied == plain.applied and len(clip.applied) == int(crop_p + flip_p)
    np.testing.assert_array_equal(clip.frames, plain.frames)  # the labels change no random draw
    np.testing.assert_array_equal(clip.labels == 2, clip.masks)
    if crop_p == 0:
        np.testing.assert_array_equal(clip.labels, labels[:, :, ::-1])  # the other object too
    assert clip.labels.shape == clip.masks.shape and (clip.labels == 5).any()
    assert augment_clip(frames, masks, "x", np.random.default_rng(1), config).labels is None
    with pytest.raises(ValueError, match="labels"):
        augment_clip(frames, masks, "x", np.random.default_rng(1), config, labels=labels[:, :10])


def test_frame_sampling_is_ordered_and_in_range():
    rng = np.random.default_rng(0)
    for available in (1, 3, 10, 50):
        indices = sample_frame_indices(available, 5, rng)
        assert len(indices) == min(5, available)
        assert indices == sorted(set(indices)) and 0 <= indices[0] and indices[-1] < available


def test_spanning_frames_start_at_the_first_frame_end_at_the_last_and_vary_between():
    rng = np.random.default_rng(0)
    for available in (1, 2, 3, 8, 50):
        for asked in (1, 2, 4, 8):
            indices = sample_spanning_indices(available, asked, rng)
            assert len(indices) == min(asked, available) and indices == sorted(set(indices))
            assert 0 <= indices[0] and indices[-1] < available
            if min(asked, available) >= 2:
                assert indices[0] == 0 and indices[-1] == available - 1
    # The frames between vary from draw to draw and cover every inner frame.
    draws = {tuple(sample_spanning_indices(8, 4, np.random.default_rng(seed))) for seed in range(200)}
    assert len(draws) == 15 and {i for d in draws for i in d[1:-1]} == set(range(1, 7))
    # A window of 4 of 8 frames misses the first or the last frame in most draws.
    windows = [sample_frame_indices(8, 4, np.random.default_rng(seed)) for seed in range(200)]
    assert sum(w[0] == 0 and w[-1] == 7 for w in windows) < 100


def test_frame_sampling_is_a_training_setting_with_a_flag():
    import argparse
    from mpg_sam2.training.cli import add_train_parser
    from mpg_sam2.training.datasets import FRAME_SAMPLINGS

    parser = argparse.ArgumentParser()
    add_train_parser(parser.add_subparsers())
    common = ["train", "--data", ".", "--dataset", "synthetic", "--out", "."]
    assert parser.parse_args(common).frame_sampling == "window" == TrainConfig(data=".", out=".").frame_sampling
    for sampling in FRAME_SAMPLINGS:
        assert parser.parse_args([*common, "--frame-sampling", sampling]).frame_sampling == sampling
        assert TrainConfig(data=".", out=".", frame_sampling=sampling).to_json()["frame_sampling"] == sampling
    with pytest.raises(ValueError, match="--frame-sampling must be one of"):
        TrainConfig(data=".", out=".", frame_sampling="random")


def test_the_warm_up_takes_the_frame_sampling_flag_too():
    from mpg_sam2.training.datasets import FRAME_SAMPLINGS
    from mpg_sam2.training.prior_warmup import build_parser

    common = ["--data", ".", "--out", "."]
    assert build_parser().parse_args(common).frame_sampling == "window"
    for sampling in FRAME_SAMPLINGS:
        assert build_parser().parse_args([*common, "--frame-sampling", sampling]).frame_sampling == sampling
    with pytest.raises(SystemExit):
        build_parser().parse_args([*common, "--frame-sampling", "random"])


# ------------------------------------------------------------------------------------------------
# A few steps lower the loss on a fixed batch


def test_a_few_steps_overfit_two_clips():
    model = _model().train()
    optimizer = build_optimizer(model, OptimizerSettings(lr=1e-3, lr_fusion=1e-3, grad_clip=1.0))
    forward = TrainingForward(model, LossWeights(object_score=1.0))
    batch = [_clip(0), _clip(1)]
    params = [p for g in optimizer.param_groups for p in g["params"]]
    history = []
    for _ in range(6):
        loss = forward(batch)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        history.append(float(loss.detach()))
    assert all(np.isfinite(history))
    assert history[-1] < 0.7 * history[0], history


# ------------------------------------------------------------------------------------------------
# The CLI: train, checkpoint, resume to the identical loss, load and segment


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    from mpg_sam2.data.synthetic import write_dataset

    return write_dataset(tmp_path_factory.mktemp("synthetic") / "data", seed=1, train=2, val=1, test=0, frames=4, size=64)


def _log(out) -> dict[int, dict]:
    lines = (out / "log.jsonl").read_text(encoding="utf-8").splitlines()
    return {record["step"]: record for record in map(json.loads, lines)}


def test_train_cli_offers_every_train_scope():
    """The flag's choices are written out (the CLI loads no training code until it runs); they
    must be the scopes the optimizer knows, "sam2" (the offline recipe's) included."""
    import argparse
    from mpg_sam2.training.cli import add_train_parser
    from mpg_sam2.training.param_groups import TRAIN_SCOPES

    parser = argparse.ArgumentParser()
    add_train_parser(parser.add_subparsers())
    for scope in TRAIN_SCOPES:
        assert parser.parse_args(["train", "--data", ".", "--dataset", "synthetic", "--out", ".", "--train-scope", scope]).train_scope == scope
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--data", ".", "--dataset", "synthetic", "--out", ".", "--train-scope", "beit3"])


def test_cli_trains_resumes_identically_and_writes_a_loadable_checkpoint(synthetic_root, tmp_path, capsys):
    from mpg_sam2.cli import main
    from mpg_sam2.data.synthetic import load_synthetic
    from mpg_sam2.pipeline.segmentation import segment_video
    from mpg_sam2.checkpoint.pretrained import load_pretrained, save_pretrained

    init = save_pretrained(_model(seed=3), tmp_path / "init")
    common = ["train", "--data", str(synthetic_root), "--dataset", "synthetic", "--frames", "2", "--steps", "3",
              "--lr", "1e-4", "--object-score-loss", "1", "--prior-loss", "1", "--threads", "1", "--seed", "5",
              "--click-probability", "1", "--clicks-per-frame", "2",  # the resumed run clicks where the first did
              "--mask-choice-loss", "1", "--click-radius", "1.5"]
    out = tmp_path / "run"
    assert main([*common, "--init-from", str(init), "--out", str(out), "--save-every", "2",
                 "--val-every", "3", "--val-expressions", "1"]) == 0
    printed = capsys.readouterr().out
    assert "checkpoint:" in printed and "validation at step 3" in printed
    assert (out / "step-000002" / "training_state.pt").is_file() and (out / "step-000003").is_dir()
    log = _log(out)
    assert sorted(log) == [1, 2, 3] and 0.0 <= log[3]["val"]["J&F"] <= 1.0
    assert all(np.isfinite(r["loss"]) for r in log.values())

    resumed = tmp_path / "resumed"
    assert main([*common, "--resume", str(out / "step-000002"), "--out", str(resumed)]) == 0
    again = _log(resumed)
    assert sorted(again) == [3]
    assert log[3]["prior"] > 0 and log[3]["mask_choice"] > 0
    assert json.loads((out / "step-000003" / "training_args.json").read_text())["mask_choice_loss"] == 1.0
    for name in ("loss", "focal", "dice", "sim", "object_score", "prior", "mask_choice"):
        assert again[3][name] == log[3][name], name

    pretrained = load_pretrained(out / "step-000003")
    painting = dataclasses.replace(CONFIG, mask_prior=dataclasses.replace(CONFIG.mask_prior, click_radius=1.5))
    assert pretrained.tokenizer is not None and pretrained.model.config == painting
    assert pretrained.model.sam2.click_prior_radius == 1.5
    video = load_synthetic(synthetic_root, "valid").videos[0]
    frames = np.stack([video.read_frame(i) for i in range(len(video.frame_paths))])
    result = segment_video(frames, [video.expressions[0].expression], pretrained.model, pretrained.tokenizer)
    assert result.expressions[0].masks.shape == frames.shape[:3]


def test_nano_preset_builds_with_a_trained_tokenizer(tmp_path):
    from mpg_sam2.training.tokenizer_training import train_tokenizer

    config = get_preset("nano")
    assert config.beit3.grid_size % config.aggregator.global_patch_size == 0
    tokenizer = train_tokenizer(tmp_path / "tok")
    assert len(tokenizer) <= config.beit3.vocab_size
    ids = tokenizer.encode("the small striped red circle moving left").input_ids[0].tolist()
    assert ids[0] == 0 and ids[-1] == 2 and len(ids) == 9  # one piece per word
    assert 3 not in ids  # no <unk> (it would be masked out as padding)


# ------------------------------------------------------------------------------------------------
# Ablation switches


def test_ablation_switches_use_sam2_no_mask_path_skip_the_aggregator_and_survive_reload(tmp_path):
    from mpg_sam2.checkpoint.pretrained import load_pretrained, save_pretrained
    from mpg_sam2.training.ablations import ablation_name, with_ablations

    full = _model(seed=0).train()
    config = with_ablations(full.config, no_mask_prior=True, no_aggregator=True)
    assert ablation_name(full.config) == "MPG+HGA" and ablation_name(config) == "baseline"
    assert ablation_name(with_ablations(full.config, no_mask_prior=True)) == "+HGA"
    assert ablation_name(with_ablations(full.config, no_aggregator=True)) == "+MPG"
    torch.manual_seed(0)
    ablated = MPGSAM2(config).train()
    ablated.load_state_dict(full.state_dict())  # same keys: the switches remove no parameter

    # The dense prompt is SAM 2's "no mask" embedding whatever the prior holds.
    clip = _clip(0)
    prompts_seen = []
    handle = ablated.sam2.sam_prompt_encoder.register_forward_hook(lambda m, a, out: prompts_seen.append(out[1]))
    ablated_loss = TrainingForward(ablated, LossWeights(object_score=1.0))([clip])["loss"]
    handle.remove()
    encoder = ablated.sam2.sam_prompt_encoder
    _, no_mask = encoder(points=(torch.zeros(1, 1, 2), -torch.ones(1, 1, dtype=torch.int32)), boxes=None, masks=None)
    assert prompts_seen and all(torch.equal(dense, no_mask.expand_as(dense)) for dense in prompts_seen)

    ablated_loss.backward()
    grads = {n for n, p in ablated.named_parameters() if p.grad is not None and bool(p.grad.abs().sum() > 0)}
    assert not any(n.startswith(("sam2.sam_mask_decoder.aggregator.", "mask_prior_generator.prior_head.",
                                 "sam2.sam_prompt_encoder.mask_downscaling.")) for n in grads)
    assert "sam2.sam_prompt_encoder.no_mask_embed.weight" in grads
    # The full model on the same clip and weights computes something else.
    full_loss = TrainingForward(full, LossWeights(object_score=1.0))([clip])["loss"]
    assert not torch.isclose(full_loss, ablated_loss)

    # The switches are part of config.json: a reloaded checkpoint is still ablated.
    save_pretrained(ablated, tmp_path / "ablated")
    reloaded = load_pretrained(tmp_path / "ablated", load_tokenizer_files=False).model
    assert reloaded.config == config
    assert reloaded.sam2.dense_mask_prompt is False and reloaded.sam2.sam_mask_decoder.aggregator.enabled is False


# ------------------------------------------------------------------------------------------------
# Initialisation from the official SAM 2 / BEiT-3 files


def test_init_from_official_sam2_and_beit3_files(tmp_path):
    from pathlib import Path

    from mpg_sam2.checkpoint.key_mapping import authors_key_to_ours
    from mpg_sam2.synthetic_weights import read_layout
    from mpg_sam2.training.init_weights import init_from_beit3, init_from_sam2, left_at_init

    model, donor = _model(seed=0), _model(seed=1)
    donor_state = donor.state_dict()
    sam2_file = tmp_path / "sam2_hiera_tiny.pt"
    torch.save({"model": {k[len("sam2."):]: v for k, v in donor_state.items() if k.startswith("sam2.")
                          and ".aggregator." not in k}}, sam2_file)
    # torchscale BEiT-3 names, as the authors' checkpoints hold them under mm_extractor. (2 layers).
    layout = read_layout(Path(__file__).parent / "fixtures" / "layout_mini.txt")
    beit3 = {k[len("mm_extractor."):]: donor_state[authors_key_to_ours(k)] for k in layout if k.startswith("mm_extractor.beit3.")}
    beit3_file = tmp_path / "beit3_tiny.pth"
    torch.save({"model": {**beit3, "head.weight": torch.zeros(3, 64)}}, beit3_file)

    reports = [init_from_sam2(model, sam2_file), init_from_beit3(model, beit3_file)]
    assert reports[1].ignored == ["head.weight"]
    state = model.state_dict()
    for report in reports:
        assert report.loaded and all(torch.equal(state[k], donor_state[k]) for k in report.loaded)
    left = left_at_init(model, reports)
    assert {n.split(".")[0] for n in left} == {"mask_prior_generator", "text_prompt_proj", "text_feature_proj",
                                              "text_similarity_head", "sam2"}
    assert all(n.startswith("sam2.sam_mask_decoder.aggregator.") for n in left if n.startswith("sam2."))

    torch.save({"model": {"image_encoder.trunk.pos_embed": torch.zeros(1, 2, 3)}}, tmp_path / "wrong.pt")
    with pytest.raises(ValueError, match="shape mismatches"):
        init_from_sam2(model, tmp_path / "wrong.pt")


# ------------------------------------------------------------------------------------------------
# Warm-up of the grounding path


def test_batched_prior_equals_one_clip_at_a_time():
    from mpg_sam2.training.prior_warmup import _prior_logits

    model = _model().eval()
    short = torch.tensor([[0, 18, 2]])  # a shorter caption than clip 0's: padded in the batch
    clips = [_clip(0, num_frames=2), dataclasses.replace(_clip(1, num_frames=3), input_ids=short, attention_mask=short != 3)]
    with torch.no_grad():
        batched = _prior_logits(model, clips)
        alone = [_prior_logits(model, [c])[0] for c in clips]
    assert [tuple(x.shape) for x in batched] == [(2, 4, 4), (3, 4, 4)]
    for b, a in zip(batched, alone):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-5)


def test_caption_effect_is_zero_for_one_caption_and_positive_for_two():
    from mpg_sam2.training.prior_warmup import caption_effect

    model = _model()
    clip = dataclasses.replace(_clip(0), key="video/0")
    same = dataclasses.replace(clip, key="video/1")
    other_ids = torch.tensor([[0, 40, 41, 2]])
    other = dataclasses.replace(clip, key="video/2", input_ids=other_ids, attention_mask=other_ids != 3)
    assert caption_effect(model, [clip, same]) == 0.0
    assert caption_effect(model, [clip, other]) > 1e-4
    assert model.training  # left in the mode it was in


def test_prior_warmup_trains_only_the_grounding_path_and_feeds_init_from(synthetic_root, tmp_path):
    from mpg_sam2.checkpoint.pretrained import load_pretrained
    from mpg_sam2.training.prior_warmup import warm_up_prior
    from mpg_sam2.training.train_config import TrainConfig
    from mpg_sam2.training.trainer import train

    final = warm_up_prior(synthetic_root, tmp_path / "warm", steps=12, batch_size=2, frames=2, lr=2e-3, val_every=12,
                          val_expressions=1, threads=1, seed=4, model_config=CONFIG, log=lambda line: None)
    assert final == tmp_path / "warm" / "step-000012"
    log = [json.loads(line) for line in (tmp_path / "warm" / "log.jsonl").read_text().splitlines()]
    assert len(log) == 12 and "prior_iou" in log[-1]["val"] and log[-1]["val"]["caption_effect"] >= 0
    assert np.mean([r["loss"] for r in log[-3:]]) < np.mean([r["loss"] for r in log[:3]])

    warmed = load_pretrained(final).model
    torch.manual_seed(4)
    fresh = MPGSAM2(CONFIG)
    fresh_state = fresh.state_dict()
    changed = {n for n, v in warmed.state_dict().items() if not torch.equal(v, fresh_state[n])}
    assert {n for n in changed if not n.startswith(("beit3.", "mask_prior_generator."))} == set()
    for prefix in ("beit3.text_embed.", "beit3.vision_embed.", "beit3.layers.0.", "beit3.layers.1.",
                   "mask_prior_generator.prior_head."):
        assert any(n.startswith(prefix) for n in changed), f"nothing under {prefix} trained"

    result = train(TrainConfig(data=synthetic_root, out=tmp_path / "run", init_from=final, steps=1, frames=2,
                               threads=1, object_score_loss=1.0, prior_loss=1.0, seed=4))
    assert result.step == 1 and np.isfinite(result.last_losses["loss"])


def test_prior_warmup_continues_from_a_checkpoint(synthetic_root, tmp_path):
    from mpg_sam2.checkpoint.pretrained import load_pretrained
    from mpg_sam2.training.prior_warmup import warm_up_prior

    settings = dict(data=synthetic_root, steps=2, batch_size=1, frames=2, val_every=0, threads=1, model_config=CONFIG,
                    log=lambda line: None)
    first = warm_up_prior(out=tmp_path / "first", lr=2e-3, seed=4, **settings)
    # With lr 0 the second stage must hand back exactly what it started from, tokenizer included.
    second = warm_up_prior(out=tmp_path / "second", lr=0.0, seed=5, init_from=first, **settings)
    before, after = load_pretrained(first), load_pretrained(second)
    for name, value in after.model.state_dict().items():
        assert torch.equal(value, before.model.state_dict()[name]), name
    caption = "the small red circle moving left"
    assert torch.equal(after.tokenizer.encode(caption).input_ids, before.tokenizer.encode(caption).input_ids)
    assert not (tmp_path / "second" / "tokenizer").exists()
    args = json.loads((second / "training_args.json").read_text())
    assert args["init_from"] == str(first) and args["objective"] == "prior" and args["by_video"] is True
    # The full training resumes only runs of its own objective.
    from mpg_sam2.training.train_config import TrainConfig
    from mpg_sam2.training.trainer import Trainer

    with pytest.raises(ValueError, match="trained on the prior objective"):
        Trainer(TrainConfig(data=synthetic_root, out=tmp_path / "full", resume=second, threads=1), log=lambda line: None)


def test_warm_up_refuses_a_checkpoint_without_its_tokenizer(tmp_path):
    """Its text embedding was trained with the tokenizer it was saved with: no fresh one."""
    from mpg_sam2.checkpoint.pretrained import save_pretrained
    from mpg_sam2.training.prior_warmup import warm_up_prior

    init = save_pretrained(_model(seed=3), tmp_path / "init")
    with pytest.raises(ValueError, match="has no tokenizer files; a warm-up continues only from a full checkpoint"):
        warm_up_prior(tmp_path / "data", tmp_path / "out", init_from=init)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------
# Simulated corrective clicks


def test_corrective_clicks_come_from_the_error_region_with_its_label():
    from mpg_sam2.training.click_training import sample_corrective_click

    target = torch.zeros(32, 32)
    target[4:12, 4:12] = 1  # the object
    logits = -torch.ones(32, 32)
    logits[4:12, 4:8] = 1  # half of it found ...
    logits[20:24, 20:30] = 1  # ... and a false positive
    generator = torch.Generator().manual_seed(0)
    clicks = [sample_corrective_click(logits, target, generator) for _ in range(200)]
    for x, y, label in clicks:
        if label == 1:
            assert 4 <= y < 12 and 8 <= x < 12  # the missed half
        else:
            assert 20 <= y < 24 and 20 <= x < 30  # the false positive
    # Uniform over the 32 + 40 error pixels: both kinds come up in proportion.
    positives = sum(label for _, _, label in clicks)
    assert 60 < positives < 120
    assert sample_corrective_click(target * 2 - 1, target, generator) is None  # nothing wrong


def test_click_plan_follows_probability_and_seed():
    from mpg_sam2.training.click_training import ClickTraining, plan_clicks

    assert plan_clicks(ClickTraining(0.0), 5, 4) is None
    plans = [plan_clicks(ClickTraining(0.5, clicks=2), seed, 4) for seed in range(200)]
    chosen = [p.frame for p in plans if p is not None]
    assert 70 < len(chosen) < 130 and set(chosen) == {0, 1, 2, 3}
    again = plan_clicks(ClickTraining(0.5, clicks=2), 7, 4)
    assert (again is None) == (plans[7] is None) and (again is None or again.frame == plans[7].frame)
    with pytest.raises(ValueError, match="probability"):
        ClickTraining(1.5)


def test_clicks_train_the_point_embeddings_and_leave_the_plain_path_unchanged():
    """Without clicks the training forward is the inference loop (same logits as
    MPGSAM2.propagate); with clicks the loss reaches the positive/negative point embeddings,
    which the paper's training never touches."""
    from mpg_sam2.training.forward import predict_clip
    from mpg_sam2.training.click_training import ClickTraining

    model = _model(seed=2)
    clip = dataclasses.replace(_clip(4, num_frames=3), click_seed=11)
    with torch.no_grad():
        plain = predict_clip(model, clip)
        prompts, _ = model.encode_expression(clip.beit_pixels, clip.input_ids, clip.attention_mask)
        core = [f.heads.highres_logits[0, 0] for f in model.propagate(lambda a, b: clip.sam_pixels[a:b], prompts)]
    torch.testing.assert_close(plain.logits, torch.stack(core), rtol=0, atol=0)

    embeddings = model.sam2.sam_prompt_encoder.point_embeddings  # [0]: label 0, [1]: label 1
    for clicks, reached in ((ClickTraining(0.0), False), (ClickTraining(1.0, clicks=3), True)):
        model.zero_grad()
        forward = TrainingForward(model, LossWeights(object_score=1.0), clicks=clicks)
        forward([clip])["loss"].backward()
        got = [e.weight.grad is not None and bool(e.weight.grad.abs().sum() > 0) for e in embeddings[:2]]
        assert any(got) == reached, (clicks, got)


# ------------------------------------------------------------------------------------------------
# Trained mask choice (SAM 2's training rule; off in the authors' recipe)


def test_lowest_loss_index_and_iou_head_errors_follow_the_target():
    from mpg_sam2.training.losses import iou_head_errors, lowest_loss_index

    target = torch.zeros(2, 64, 64)
    target[0, 16:48, 16:48] = 1  # frame 1 has no target
    low = F.avg_pool2d(target[:, None], 4)[:, 0]  # the decoder's 16 x 16 grid
    exact = torch.where(low[0] > 0.5, 8.0, -8.0)
    half = exact.clone()
    half[:, :8] = -8.0  # the left half of the object only: IoU 0.5
    empty = torch.full((16, 16), -8.0)
    candidates = torch.stack([empty, exact, half])
    weights = LossWeights()
    assert lowest_loss_index(candidates, target[0], weights) == 1
    assert lowest_loss_index(candidates[[0, 2]], target[0], weights) == 1
    assert lowest_loss_index(candidates[:1], target[0], weights) == 0

    truth = torch.tensor([0.0, 1.0, 0.5])
    predicted = torch.tensor([0.25, 0.75, 0.5], requires_grad=True)
    # Frame 1 has no target, so its (wrong) predictions do not count.
    errors = iou_head_errors([candidates, candidates], [predicted, torch.ones(3)], target)
    assert errors.shape == (1,) and errors.item() == pytest.approx((0.25 + 0.25 + 0.0) / 3)
    errors.sum().backward()
    assert predicted.grad.tolist() == pytest.approx([1 / 3, -1 / 3, 0.0])
    assert iou_head_errors([candidates], [truth], target[:1]).item() == pytest.approx(0.0, abs=1e-7)
    assert iou_head_errors([candidates], [predicted], target[1:]).shape == (0,)
    # A target too small to fill half of any decoder cell still counts (its true IoU is 0).
    speck = torch.zeros(1, 64, 64)
    speck[0, 30, 30] = 1
    assert iou_head_errors([candidates], [truth], speck).item() == pytest.approx((0 + 1 + 0.5) / 3)


def test_mask_choice_loss_trains_the_iou_head_and_reads_the_lowest_loss_output():
    from mpg_sam2.training.forward import predict_clip
    from mpg_sam2.training.losses import lowest_loss_index

    model = _model(seed=3).train()
    clip = _clip(5, num_frames=3)
    weights = LossWeights(object_score=1.0, mask_choice=1.0)
    torch.manual_seed(0)
    plain = predict_clip(model, clip, gated=False)
    torch.manual_seed(0)
    chosen = predict_clip(model, clip, gated=False, choose_by_loss=weights)
    assert plain.mask_candidates is None and len(chosen.mask_candidates) == 3
    # Without the option each frame's prediction is the kept output, exactly (bit for bit).
    for t, masks in enumerate(chosen.mask_candidates):
        kept = masks[int(chosen.predicted_ious[t].argmax())][None, None]
        want = F.interpolate(kept, size=clip.targets.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
        assert torch.equal(plain.logits[t], want.float()), t
    for t, masks in enumerate(chosen.mask_candidates):
        assert masks.shape[0] == 3 and chosen.predicted_ious[t].shape == (3,)
        index = lowest_loss_index(masks, clip.targets[t], weights)
        want = F.interpolate(masks[None, index : index + 1], size=clip.targets.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
        torch.testing.assert_close(chosen.logits[t], want)

    iou_head = model.sam2.sam_mask_decoder.iou_prediction_head
    for mask_choice, reached in ((0.0, False), (1.0, True)):
        model.zero_grad()
        losses = TrainingForward(model, LossWeights(object_score=1.0, mask_choice=mask_choice))([clip])
        assert (losses["mask_choice"].item() > 0) == reached
        losses["loss"].backward()
        got = any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in iou_head.parameters())
        assert got == reached, mask_choice


def test_decoder_scope_trains_only_the_prompt_encoder_and_mask_decoder():
    model = _model().train()
    groups = parameter_groups(model, OptimizerSettings(train_scope="decoder"))
    grouped = {n for g in groups for n in g["param_names"]}
    named = dict(model.named_parameters())
    assert grouped == {n for n in named if n.startswith(("sam2.sam_prompt_encoder.", "sam2.sam_mask_decoder."))
                       and not n.startswith("sam2.sam_mask_decoder.aggregator.")}
    assert {n for n, p in named.items() if p.requires_grad} == grouped
    TrainingForward(model, LossWeights(object_score=1.0))([_clip(0)])["loss"].backward()
    assert all(p.grad is None for n, p in named.items() if n not in grouped)
    assert model.sam2.sam_mask_decoder.output_upscaling[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="--train-scope"):
        TrainConfig(data=".", out=".", train_scope="beit3")
    with pytest.raises(ValueError, match="--click-radius"):
        TrainConfig(data=".", out=".", click_radius=-0.5)
    with pytest.raises(ValueError, match="--no-mask-prior"):
        TrainConfig(data=".", out=".", click_radius=2.0, no_mask_prior=True)
    with pytest.raises(ValueError, match="--train-image-encoder"):
        TrainConfig(data=".", out=".", train_scope="decoder", train_image_encoder=True)
    with pytest.raises(ValueError, match="--mask-choice-loss"):
        TrainConfig(data=".", out=".", mask_choice_loss=-1)


def test_sam2_scope_keeps_beit3_and_the_mask_prior_generator_as_they_start():
    model = _model().train()
    groups = parameter_groups(model, OptimizerSettings(train_scope="sam2", train_image_encoder=True))
    grouped = {n for g in groups for n in g["param_names"]}
    named = dict(model.named_parameters())
    grounding = {n for n in named if n.startswith(("beit3.", "mask_prior_generator."))}
    assert grounding and grouped == set(named) - grounding
    assert any(n.startswith("sam2.image_encoder.") for n in grouped)
    assert any(n.startswith("sam2.sam_mask_decoder.aggregator.") for n in grouped)
    # the prior loss still reads the prior, but no gradient reaches the grounding path
    losses = TrainingForward(model, LossWeights(object_score=1.0, prior=1.0))([_clip(0)])
    assert losses["prior"].item() > 0
    losses["loss"].backward()
    assert all(named[n].grad is None for n in grounding)
    assert any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in model.sam2.sam_mask_decoder.aggregator.parameters())
    TrainConfig(data=".", out=".", train_scope="sam2", train_image_encoder=True)  # a valid combination


def test_the_warm_up_trains_exactly_what_the_sam2_scope_then_holds_fixed():
    from mpg_sam2.training.prior_warmup import PriorObjective

    model = _model()
    warm_up = PriorObjective().build_optimizer(model, TrainConfig(data=".", out="."))
    warmed = {id(p) for g in warm_up.param_groups for p in g["params"]}
    sam2_scope = parameter_groups(model, OptimizerSettings(train_scope="sam2", train_image_encoder=True))
    trained_later = {id(p) for g in sam2_scope for p in g["params"]}
    assert warmed and warmed == {id(p) for p in model.parameters()} - trained_later


def test_a_resumed_run_keeps_its_mask_choice_loss_and_train_scope(tmp_path):
    from mpg_sam2.training.bootstrap import RunStart
    from mpg_sam2.training.objectives import ReferringObjective

    previous = {"object_score_loss": 1.0, "prior_loss": 1.0, "mask_choice_loss": 0.5, "train_scope": "decoder"}
    start = RunStart(None, None, tmp_path, True, previous)
    objective = ReferringObjective()
    objective.prepare(TrainConfig(data=".", out="."), start)
    assert objective.loss_weights.mask_choice == 0.5 and objective.train_scope == "decoder"
    args = objective.training_args(TrainConfig(data=".", out="."))
    assert args["mask_choice_loss"] == 0.5 and args["train_scope"] == "decoder"
    with pytest.raises(ValueError, match="--train-scope decoder"):
        ReferringObjective().prepare(TrainConfig(data=".", out=".", train_scope="all"), start)
    fresh = ReferringObjective()
    fresh.prepare(TrainConfig(data=".", out="."), RunStart(None, None, None, False))
    assert fresh.loss_weights.mask_choice == 0.0 and fresh.train_scope == "all"
