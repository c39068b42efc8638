"""The mask prior generator's patch motion features (MaskPriorConfig.motion_features, not in the
paper) and the warm-up's motion loss: displacements measured, the authors' computation kept at
initialisation and for the release presets, targets mirrored with the clip, and a warm-up that
trains both, saves and resumes exactly."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from mpg_sam2.config import PRESETS, MaskPriorConfig, MPGSAM2Config
from mpg_sam2.data.synthetic import MOTIONS
from mpg_sam2.model.mask_prior_generator import MaskPriorGenerator
from mpg_sam2.model.patch_motion import CorrespondenceMotion
from mpg_sam2.training.motion_loss import MotionHead, motion_loss, motion_targets
from tiny_model import TRAINING_TINY
from warmup_heads import check_head_warm_up

GRID = 6
DIM = 256


def with_motion(config: MPGSAM2Config, on: bool = True) -> MPGSAM2Config:
    return dataclasses.replace(config, mask_prior=dataclasses.replace(config.mask_prior, motion_features=on))


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    from mpg_sam2.data.synthetic import write_dataset

    return write_dataset(tmp_path_factory.mktemp("synthetic") / "data", seed=1, train=2, val=1, test=0, frames=4, size=64)


def _moving_patches(shift_x: int, shift_y: int, frames: int = 3) -> torch.Tensor:
    """``[T, g*g, C]``: a random texture (one distinct vector per cell) shifted by (shift_x, shift_y) cells per frame."""
    torch.manual_seed(0)
    texture = torch.randn(GRID, GRID, DIM)
    return torch.stack([texture.roll((t * shift_y, t * shift_x), dims=(0, 1)).reshape(GRID * GRID, DIM)
                        for t in range(frames)])


def test_correspondence_measures_how_far_and_which_way_the_patches_moved():
    motion = CorrespondenceMotion(DIM, GRID)
    features = motion.features(_moving_patches(2, -1)).view(3, GRID, GRID, 8)
    inner = (slice(1, GRID), slice(0, GRID - 2))  # cells whose content did not wrap around the border
    for t in (0, 1):  # forward: to the next frame
        assert torch.allclose(features[t][inner][..., 0], torch.tensor(2.0), atol=0.05)
        assert torch.allclose(features[t][inner][..., 1], torch.tensor(-1.0), atol=0.05)
        assert (features[t][inner][..., 2] > 0.9).all()  # confident: the same texture
    came_from = features[1:, 0 : GRID - 1, 2:GRID]  # backward: cells whose content came from inside the frame
    assert torch.allclose(came_from[..., 4], torch.tensor(-2.0), atol=0.05)
    assert torch.allclose(came_from[..., 5], torch.tensor(1.0), atol=0.05)
    # The last frame has no next frame and the first none before: zeros, and the flag says so.
    assert torch.equal(features[2, ..., :4], torch.zeros(GRID, GRID, 4))
    assert torch.equal(features[0, ..., 4:], torch.zeros(GRID, GRID, 4))
    assert (features[:2, ..., 3] == 1).all() and (features[1:, ..., 7] == 1).all()
    # A single frame has nothing to match.
    assert torch.equal(motion.features(_moving_patches(1, 0, frames=1)), torch.zeros(1, GRID * GRID, 8))
    with pytest.raises(ValueError, match=f"expected {GRID * GRID} patches per frame"):
        motion.features(torch.zeros(2, 10, DIM))


def _generators() -> tuple[MaskPriorGenerator, MaskPriorGenerator]:
    """The generator without and with motion features, from the same seed."""
    config = MaskPriorConfig(num_heads=4, ffn_dim=64)
    torch.manual_seed(1)
    plain = MaskPriorGenerator(32, 16, GRID, config).eval()
    torch.manual_seed(1)
    moving = MaskPriorGenerator(32, 16, GRID, dataclasses.replace(config, motion_features=True)).eval()
    return plain, moving


@torch.no_grad()
def test_the_features_start_at_zero_and_then_tell_a_video_from_its_reversal():
    plain, moving = _generators()
    assert {k for k in moving.state_dict() if k not in plain.state_dict()} == {
        "correspondence_motion.log_inverse_temperature", "correspondence_motion.log_distance_weight",
        "correspondence_motion.proj.weight", "correspondence_motion.proj.bias"}
    # The module draws no random numbers: the same seed gives the rest the same weights.
    assert all(torch.equal(value, moving.state_dict()[name]) for name, value in plain.state_dict().items())
    assert not moving.correspondence_motion.proj.weight.any() and not moving.correspondence_motion.proj.bias.any()
    torch.manual_seed(2)
    cls, patches = torch.randn(4, 32), torch.randn(4, GRID * GRID, 32)
    assert torch.equal(moving(cls, patches).prior_logits, plain(cls, patches).prior_logits)

    # Without frame order the generator's prior is the same per frame whichever way the video runs;
    # with trained (non-zero) motion weights it is not.
    reverse = torch.arange(3, -1, -1)
    assert torch.allclose(plain(cls[reverse], patches[reverse]).prior_logits[reverse], plain(cls, patches).prior_logits, atol=1e-5)
    torch.nn.init.normal_(moving.correspondence_motion.proj.weight, std=0.5)
    forward = moving(cls, patches).prior_logits
    backward = moving(cls[reverse], patches[reverse]).prior_logits[reverse]
    assert (forward - backward).abs().max() > 1e-2
    assert moving(cls, patches).video_tokens.shape == (4, GRID * GRID, 32)


def test_the_release_presets_keep_the_authors_generator():
    assert all(not config.mask_prior.motion_features for config in PRESETS.values())
    on = with_motion(TRAINING_TINY)
    assert MPGSAM2Config.from_dict(json.loads(json.dumps(on.to_dict()))) == on


def test_motion_targets_follow_the_object_under_each_patch_and_mirror_with_the_clip():
    labels = torch.tensor([[[0, 1], [2, 2]], [[1, 0], [0, 2]]])  # [T=2, 2, 2]
    objects = {1: {"colour": "red", "motion": "left"}, 2: {"colour": "blue", "motion": "bounce"}}
    targets = motion_targets(labels, objects, flipped=False)
    left, right, bounce = (MOTIONS.index(m) for m in ("left", "right", "bounce"))
    assert targets.tolist() == [[[-100, left], [bounce, bounce]], [[left, -100], [-100, bounce]]]
    assert motion_targets(labels, objects, flipped=True).tolist() == [[[-100, right], [bounce, bounce]], [[right, -100], [-100, bounce]]]

    naming = torch.full((2, 4, len(MOTIONS)), -20.0)
    flat = targets.reshape(2, 4)
    naming[flat >= 0, flat[flat >= 0]] = 20.0
    assert motion_loss(naming, targets).item() < 1e-6
    assert motion_loss(torch.zeros(2, 4, len(MOTIONS)), targets).item() == pytest.approx(torch.log(torch.tensor(9.0)).item())
    # Only background: no term, but still a tensor that backpropagates.
    empty = motion_loss(torch.zeros(2, 4, len(MOTIONS), requires_grad=True), torch.full((2, 2, 2), -100))
    assert empty.item() == 0.0 and empty.requires_grad
    assert MotionHead(16)(torch.zeros(2, 4, 16)).shape == (2, 4, len(MOTIONS))
    with pytest.raises(ValueError, match="needs each object's motion"):
        motion_targets(labels, {1: {"colour": "red"}, 2: {"colour": "blue"}}, flipped=False)


def test_warm_up_with_motion_features_and_loss_saves_the_features_not_the_head_and_resumes_exactly(synthetic_root, tmp_path):
    from mpg_sam2.checkpoint.pretrained import load_pretrained
    from mpg_sam2.training.prior_warmup import warm_up_prior

    # Seed 4: every step's clip has an object on the 4 x 4 label grid (else its motion term is 0).
    settings = check_head_warm_up(synthetic_root, tmp_path, "motion_loss", "motion", "motion_head",
                                  model_config=with_motion(TRAINING_TINY), seed=4)
    checkpoint = tmp_path / "straight" / "step-000002"
    pretrained = load_pretrained(checkpoint).model
    assert pretrained.config.mask_prior.motion_features
    # The motion weights trained: the projection left zero.
    assert pretrained.mask_prior_generator.correspondence_motion.proj.weight.abs().sum() > 0

    # --motion-features turns the module on for a new model and is recorded with the run; a
    # checkpoint keeps its own configuration, since its weights fit only that.
    flagged = warm_up_prior(synthetic_root, tmp_path / "flag", steps=1, **{**settings, "model_config": TRAINING_TINY,
                                                                            "motion_features": True})
    assert load_pretrained(flagged).model.config.mask_prior.motion_features
    assert json.loads((flagged / "training_args.json").read_text())["motion_features"] is True
    plain = warm_up_prior(synthetic_root, tmp_path / "plain", steps=1, **{**settings, "model_config": TRAINING_TINY,
                                                                           "motion_loss": 0.0})
    with pytest.raises(ValueError, match="trained without the mask prior generator's motion features"):
        warm_up_prior(synthetic_root, tmp_path / "x", steps=1, init_from=plain, **{**settings, "motion_features": True})


def test_negative_weight_is_refused():
    from mpg_sam2.training.prior_warmup import PriorObjective

    with pytest.raises(ValueError, match="--motion-loss must be at least 0"):
        PriorObjective(motion_loss=-1.0)


def test_the_card_names_the_motion_loss_and_the_motion_features():
    from mpg_sam2.training import offline_recipe as recipe
    from mpg_sam2.training.offline_card import _architecture_lines, _head_losses

    text = _head_losses({"caption_loss": 1.0, "motion_loss": 0.3})
    assert "0.3 x a motion loss" in text and "`mpg_sam2.training.motion_loss`" in text
    assert "motion" not in _head_losses({"caption_loss": 1.0})
    lines = " ".join(_architecture_lines())
    if any(stage.get("motion_features") for stage in recipe.WARMUP_STAGES):
        assert "Not in the paper" in lines and "`mask_prior.motion_features`" in lines
    else:
        assert lines == ""
