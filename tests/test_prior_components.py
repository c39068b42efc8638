"""The model's mask readout (config.readout): parts kept by their mask prior, the object-score bar; pipeline."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from sam2.modeling.sam2_base import NO_OBJ_SCORE

from mpg_sam2.config import MaskReadoutConfig
from mpg_sam2.frames import logits_to_frame_size
from mpg_sam2.model.mpg_sam2 import MPGSAM2
from mpg_sam2.pipeline.clicks import Correction
from mpg_sam2.pipeline.prior_components import connected_components, keep_prior_components
from mpg_sam2.pipeline.segmentation import segment_video
from mpg_sam2.reference import run_case
from tiny_model import tiny_model, tiny_tokenizer


@pytest.mark.parametrize("seed", range(5))
def test_components_are_scipys_8_connected_ones(seed):
    mask = torch.rand(3, 31, 47, generator=torch.Generator().manual_seed(seed)) > 0.55
    labels = connected_components(mask)
    assert labels.dtype == torch.int64
    np.testing.assert_array_equal((labels > 0).numpy(), mask.numpy())
    ids = [int(i) for i in labels.unique() if i > 0]
    assert len(ids) == len(set(ids))
    total = 0
    for b in range(3):
        reference, count = ndimage.label(mask[b].numpy(), structure=np.ones((3, 3)))
        total += count
        ours = labels[b].numpy()
        # The same partition: each of scipy's components is exactly one of ours and back.
        assert len(set(zip(ours[reference > 0].tolist(), reference[reference > 0].tolist()))) == count
        assert len(np.unique(ours[ours > 0])) == count
    assert len(ids) == total  # ids are unique across the batch


def _two_blobs() -> torch.Tensor:
    """Logits [2, 1, 16, 16]: a blob at the top left and one at the bottom right, and in the
    second frame also a diagonal neighbour that touches the first blob at a corner."""
    logits = torch.full((2, 1, 16, 16), -4.0)
    logits[:, 0, 1:5, 1:5] = 3.0
    logits[:, 0, 10:14, 10:14] = 2.0
    logits[1, 0, 5, 5] = 1.0  # 8-connected to the first blob: the same part
    return logits


def _prior(top_left: float, bottom_right: float) -> torch.Tensor:
    """Priors [1, 1, 4, 4]: one value over each quadrant holding a blob, 0 elsewhere."""
    prior = torch.zeros(1, 1, 4, 4)
    prior[0, 0, :2, :2] = top_left
    prior[0, 0, 2:, 2:] = bottom_right
    return prior


def test_the_part_the_prior_disfavours_is_cleared():
    logits = _two_blobs()
    prior = torch.cat([_prior(0.9, 0.3), _prior(0.2, 0.8)])
    kept = keep_prior_components(logits, prior, 0.0, 0.8)
    # Frame 0 keeps the top-left blob, frame 1 the bottom-right one (the corner pixel goes with its blob).
    assert torch.equal(kept[0, 0, 1:5, 1:5], logits[0, 0, 1:5, 1:5])
    assert (kept[0, 0, 10:14, 10:14] == NO_OBJ_SCORE).all()
    assert (kept[1, 0, 1:6, 1:6][logits[1, 0, 1:6, 1:6] > 0] == NO_OBJ_SCORE).all()
    assert torch.equal(kept[1, 0, 10:14, 10:14], logits[1, 0, 10:14, 10:14])
    # Off the mask nothing changes.
    off = logits <= 0
    assert torch.equal(kept[off], logits[off])


def test_parts_near_the_best_are_kept_and_the_threshold_decides_what_is_on_the_mask():
    logits, prior = _two_blobs()[:1], _prior(0.9, 0.8)
    assert torch.equal(keep_prior_components(logits, prior, 0.0, 0.8), logits)  # 0.8 / 0.9 >= 0.8
    assert (keep_prior_components(logits, prior, 0.0, 1.0)[0, 0, 10:14, 10:14] == NO_OBJ_SCORE).all()
    # Above a logit of 2.5 only the first blob is on the mask: one part, nothing to clear.
    assert torch.equal(keep_prior_components(logits, _prior(0.1, 0.9), 2.5, 1.0), logits)


def test_a_frame_with_one_part_or_none_is_unchanged():
    one = torch.full((1, 1, 8, 8), -2.0)
    one[0, 0, 2:5, 2:5] = 1.0
    none = torch.full((1, 1, 8, 8), float(NO_OBJ_SCORE))
    for logits in (one, none):
        assert torch.equal(keep_prior_components(logits, torch.rand(1, 1, 4, 4), 0.0, 1.0), logits)


@pytest.mark.parametrize("ratio", [0.0, -0.1, 1.5])
def test_bad_ratio(ratio):
    with pytest.raises(ValueError, match="ratio must be in"):
        keep_prior_components(_two_blobs(), _prior(1, 1).expand(2, -1, -1, -1), 0.0, ratio)


@pytest.mark.parametrize(("fields", "message"), [
    ({"component_prior_ratio": -0.5}, "component_prior_ratio must be in"),
    ({"component_prior_ratio": 1.01}, "component_prior_ratio must be in"),
    ({"object_score_threshold": -1.0}, "object_score_threshold must be at least 0"),
])
def test_config_refuses_bad_readouts(fields, message):
    with pytest.raises(ValueError, match=message):
        MaskReadoutConfig(**fields)


# -- pipeline -----------------------------------------------------------------------------

TEXT = "the red circle"


@pytest.fixture(scope="module")
def models():
    """The same tiny weights without and with the component filter (ratio 1: only the best part)."""
    plain = tiny_model(seed=5).eval()
    with torch.no_grad():
        plain.sam2.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(5.0)
    filtered = MPGSAM2(plain.config.with_readout(component_prior_ratio=1.0)).eval()
    filtered.load_state_dict(plain.state_dict())
    return plain, filtered


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return tiny_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def frames():
    return np.random.default_rng(3).integers(0, 256, (4, 40, 64, 3), dtype=np.uint8)


def test_pipeline_masks_are_the_model_core_with_the_disfavoured_parts_cleared(models, tokenizer, frames):
    plain, filtered = models
    result = segment_video(frames, [TEXT], filtered, tokenizer).expressions[0]
    unfiltered = segment_video(frames, [TEXT], plain, tokenizer).expressions[0]
    core = run_case(plain, frames, tokenizer.encode(TEXT).input_ids.numpy())
    size = plain.config.sam2.image_size
    expected = []
    for t, frame in enumerate(core.frames):
        logits = keep_prior_components(frame.heads.lowres_logits, core.mask_prior.prior[t:t + 1], 0.0, 1.0)
        expected.append((logits_to_frame_size(logits, size, 40, 64)[0] > 0).numpy())
    np.testing.assert_array_equal(result.masks, np.stack(expected))
    # The random weights paint several parts: the filter removed some, and added nothing.
    assert result.masks.sum() < unfiltered.masks.sum()
    assert not (result.masks & ~unfiltered.masks).any()
    np.testing.assert_array_equal(result.object_scores, unfiltered.object_scores)  # SAM 2's memory is untouched


def test_after_a_click_the_clicked_frame_keeps_every_part_and_the_others_are_read_out(models, tokenizer, frames):
    plain, filtered = models  # clicks do not paint their prior (click_radius 0): SAM 2 points only
    correction = Correction(0, 2, ((32.0, 20.0, 1),))
    result = segment_video(frames, [TEXT], filtered, tokenizer, corrections=[correction]).expressions[0]
    reference = segment_video(frames, [TEXT], plain, tokenizer, corrections=[correction]).expressions[0]
    first_pass = segment_video(frames, [TEXT], filtered, tokenizer).expressions[0]
    np.testing.assert_array_equal(result.masks[0], first_pass.masks[0])  # frame 0 stays the first pass's
    np.testing.assert_array_equal(result.masks[2], reference.masks[2])  # the clicks decide there
    others = result.masks[[1, 3]]
    assert not (others & ~reference.masks[[1, 3]]).any() and others.sum() < reference.masks[[1, 3]].sum()


def test_a_clicked_frame_is_read_out_with_the_prior_its_clicks_painted(models, tokenizer, frames, monkeypatch):
    from mpg_sam2.pipeline import segmentation

    plain, _ = models
    painting = MPGSAM2(plain.config.with_mask_prior(click_radius=2.0).with_readout(component_prior_ratio=0.8)).eval()
    painting.load_state_dict(plain.state_dict())
    seen = []
    monkeypatch.setattr(segmentation, "keep_prior_components",
                        lambda logits, prior, *args: seen.append(prior.clone()) or keep_prior_components(logits, prior, *args))
    correction = Correction(0, 2, ((32.0, 20.0, 1), (5.0, 5.0, 0)))
    segment_video(frames, [TEXT], painting, tokenizer, corrections=[correction])
    first_pass, clicked_frame = seen[:4], seen[4]  # frames 0-3, then the clicked frame's new output
    size = painting.config.sam2.image_size
    clicks = correction.frame_clicks((40, 64), size, "cpu")
    torch.testing.assert_close(clicked_frame, clicks.points.paint_prior(first_pass[2], size, 2.0), rtol=0, atol=0)
    assert not torch.equal(clicked_frame, first_pass[2])
    for later, before in zip(seen[5:], (first_pass[3], first_pass[1])):  # frame 3, then frame 1: as the prior has them
        assert torch.equal(later, before)


def test_the_release_presets_read_out_sam2s_own_masks():
    from mpg_sam2.config import PRESETS

    releases = [preset for name, preset in PRESETS.items() if name.startswith("release")]
    assert releases and all(preset.readout == MaskReadoutConfig() for preset in releases)
    assert MaskReadoutConfig() == MaskReadoutConfig(object_score_threshold=0.0, component_prior_ratio=0.0)


def test_frames_below_the_object_score_bar_are_empty_and_the_rest_unchanged(models, tokenizer, frames):
    plain, _ = models
    unthresholded = segment_video(frames, [TEXT], plain, tokenizer).expressions[0]
    scores = unthresholded.object_scores
    bar = float(np.median(scores))
    barred = MPGSAM2(plain.config.with_readout(object_score_threshold=bar)).eval()
    barred.load_state_dict(plain.state_dict())
    result = segment_video(frames, [TEXT], barred, tokenizer).expressions[0]
    above = scores > bar
    assert 0 < above.sum() < len(scores) and unthresholded.masks[~above].any()
    assert not result.masks[~above].any()
    np.testing.assert_array_equal(result.masks[above], unthresholded.masks[above])
    np.testing.assert_array_equal(result.object_scores, scores)  # SAM 2's memory is untouched
    np.testing.assert_array_equal(result.frames_present, np.flatnonzero(above))
