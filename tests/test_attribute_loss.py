"""The prior warm-up's per-patch attribute loss: object labels through the data pipeline, the loss,
and a warm-up that trains with it, saves its head outside the model and resumes exactly."""
from __future__ import annotations


import numpy as np
import pytest
import torch
from PIL import Image

from mpg_sam2.data.synthetic import SHAPES, read_object_attributes
from mpg_sam2.mask_io.png import read_label_png
from mpg_sam2.training.attribute_loss import ATTRIBUTE_GROUPS, AttributeHead, attribute_loss, attribute_targets
from mpg_sam2.training.augment import AugmentConfig
from mpg_sam2.training.datasets import ClipDataset, load_entries
from warmup_heads import check_head_warm_up

OBJECTS = {1: {"colour": "red", "shape": "star", "size": "small", "texture": "plain", "motion": "left"},
           2: {"colour": "blue", "shape": "ring", "size": "large", "texture": "dotted", "motion": "static"}}


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    from mpg_sam2.data.synthetic import write_dataset

    return write_dataset(tmp_path_factory.mktemp("synthetic") / "data", seed=1, train=2, val=1, test=0, frames=4, size=64)


def _logits_naming(labels: torch.Tensor, objects, confidence: float = 20.0) -> torch.Tensor:
    """Head logits ``[T, N, K + 1]`` that name every patch's object correctly."""
    targets = attribute_targets(labels, objects)
    logits = torch.full((*labels.shape, sum(len(c) for _, c in ATTRIBUTE_GROUPS) + 1), -confidence)
    start = 0
    for k, (_, classes) in enumerate(ATTRIBUTE_GROUPS):
        for index in range(len(classes)):
            logits[..., start + index][targets[..., k] == index] = confidence
        start += len(classes)
    logits[..., -1] = torch.where(labels > 0, confidence, -confidence)
    return logits.flatten(1, 2)


def test_targets_name_each_object_and_ignore_the_background():
    labels = torch.tensor([[[0, 1], [2, 2]]])  # [T=1, 2, 2]
    targets = attribute_targets(labels, OBJECTS)
    assert targets.shape == (1, 2, 2, 4)
    assert targets[0, 0, 0].tolist() == [-100] * 4
    assert targets[0, 0, 1, 1].item() == SHAPES.index("star") and targets[0, 1, 0, 1].item() == SHAPES.index("ring")
    assert attribute_targets(labels, OBJECTS, size_known=False)[..., 2].eq(-100).all()


def test_loss_is_near_zero_when_the_head_names_every_patch_and_ignores_what_it_must():
    labels = torch.tensor([[[0, 1], [2, 2]], [[1, 1], [0, 0]]])
    right = _logits_naming(labels, OBJECTS)
    assert attribute_loss(right, labels, attribute_targets(labels, OBJECTS)).item() < 1e-6
    wrong = _logits_naming(labels, {1: OBJECTS[2], 2: OBJECTS[1]})
    assert attribute_loss(wrong, labels, attribute_targets(labels, OBJECTS)).item() > 10
    # What a background patch says about attributes, and size on a cropped clip, cost nothing.
    noisy = right.clone()
    noisy[0, 0, :-1] = 20.0  # the background patch names every class at once
    start = len(ATTRIBUTE_GROUPS[0][1]) + len(ATTRIBUTE_GROUPS[1][1])
    size = slice(start, start + len(ATTRIBUTE_GROUPS[2][1]))
    noisy[:, :, size] = torch.tensor([-20.0, 20.0, -20.0])  # "medium" everywhere: no object here is medium
    cropped = attribute_targets(labels, OBJECTS, size_known=False)
    assert attribute_loss(noisy, labels, cropped).item() < 1e-6
    assert attribute_loss(noisy, labels, attribute_targets(labels, OBJECTS)).item() > 10
    # A clip without any object: objectness only, no NaN.
    empty = torch.zeros(1, 2, 2, dtype=torch.long)
    assert torch.isfinite(attribute_loss(torch.zeros(1, 4, 13), empty, attribute_targets(empty, OBJECTS)))


def test_clips_carry_their_object_labels_on_the_prior_grid(synthetic_root, tmp_path):
    from mpg_sam2.training.tokenizer_training import train_tokenizer

    entries = load_entries("synthetic", synthetic_root)
    objects = read_object_attributes(synthetic_root, "train")
    assert all(e.objects == objects[e.key.split("/")[0]] for e in entries)
    tokenizer = train_tokenizer(tmp_path / "tok")
    clips = ClipDataset(entries, tokenizer, 64, 32, num_frames=2, augment=AugmentConfig.none(), label_grid=4)
    clip = clips[(0, 0)]
    entry = entries[0]
    expected = [np.asarray(Image.fromarray(read_label_png(entry.masks.paths[i])).resize((4, 4), Image.NEAREST))
                for i in clip.frame_indices]
    np.testing.assert_array_equal(clip.object_labels.numpy(), np.stack(expected))
    assert clip.object_labels.dtype == torch.int64 and clip.objects == entry.objects
    # Drawing labels changes nothing else of the draw.
    plain = ClipDataset(entries, tokenizer, 64, 32, num_frames=2, augment=AugmentConfig.none())[(0, 0)]
    assert plain.object_labels is None and torch.equal(plain.beit_pixels, clip.beit_pixels)
    # "span" draws the video's first and last frame (and its labels with them).
    spanning = ClipDataset(entries, tokenizer, 64, 32, num_frames=2, augment=AugmentConfig.none(), label_grid=4,
                           frame_sampling="span")[(0, 0)]
    assert spanning.frame_indices == (0, entry.num_frames - 1) and spanning.object_labels.shape[0] == 2
    with pytest.raises(ValueError, match="frame_sampling must be one of"):
        ClipDataset(entries, tokenizer, 64, 32, num_frames=2, frame_sampling="every")
    bare = [e.__class__(e.key, e.text, e.frame_paths, masks=e.masks) for e in entries]
    with pytest.raises(ValueError, match="written again with python -m mpg_sam2.data.synthetic"):
        ClipDataset(bare, tokenizer, 64, 32, num_frames=2, label_grid=4)


def test_a_group_decodes_each_file_once_and_gives_the_same_clips(synthetic_root, tmp_path, monkeypatch):
    from mpg_sam2.training import datasets
    from mpg_sam2.training.datasets import ClipGroups
    from mpg_sam2.training.tokenizer_training import train_tokenizer

    entries = load_entries("synthetic", synthetic_root)
    video = entries[0].key.split("/")[0]
    group = [i for i, e in enumerate(entries) if e.key.split("/")[0] == video]
    assert len(group) >= 2
    clips = ClipDataset(entries, train_tokenizer(tmp_path / "tok"), 64, 32, num_frames=3, label_grid=4)
    decoded = []
    real_frame, real_png = datasets.read_frame, datasets.PaletteMaskSource.read_labels
    monkeypatch.setattr(datasets, "read_frame", lambda path: decoded.append(path) or real_frame(path))
    monkeypatch.setattr(datasets.PaletteMaskSource, "read_labels",
                        lambda self, index: decoded.append(self.paths[index]) or real_png(self, index))
    alone = [clips[(i, 5)] for i in group]
    assert len(decoded) == len(group) * 3 * 3  # each clip: 3 frames, and each label map twice (targets, then labels)
    decoded.clear()
    resized = []
    real_views = datasets.encoder_views
    monkeypatch.setattr(datasets, "encoder_views", lambda frames, *sizes: resized.append(frames) or real_views(frames, *sizes))
    together = ClipGroups(clips, [group])[(0, 5)]
    assert len(decoded) == 3 * 2 == len(set(decoded))  # the video's 3 frames and their 3 label maps, once
    assert clips._decoded is None and clips._views is None  # nothing kept after the group
    # One resize per distinct set of frames (a crop follows its caption's target, so cropped
    # clips may differ), shared by the clips that show it.
    distinct = []
    for clip in together:
        if not any(torch.equal(clip.beit_pixels, seen.beit_pixels) for seen in distinct):
            distinct.append(clip)
        else:
            assert any(clip.beit_pixels is seen.beit_pixels and clip.sam_pixels is seen.sam_pixels for seen in distinct)
    assert len(resized) == len(distinct) < len(group)
    for a, b in zip(alone, together):
        assert a.key == b.key and a.frame_indices == b.frame_indices and a.augmentations == b.augmentations
        for name in ("sam_pixels", "beit_pixels", "targets", "object_labels", "input_ids"):
            assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_warm_up_with_the_attribute_loss_keeps_its_head_out_of_the_model_and_resumes_exactly(synthetic_root, tmp_path):
    from mpg_sam2.training.prior_warmup import warm_up_prior

    settings = check_head_warm_up(synthetic_root, tmp_path, "attribute_loss", "attributes", "attribute_head")

    # A run without the loss cannot resume one with it, nor the other way round.
    plain = {**settings, "attribute_loss": 0.0}
    with pytest.raises(ValueError, match="does not fit this run's parameter groups.*--attribute-loss"):
        warm_up_prior(synthetic_root, tmp_path / "x", steps=4, resume=tmp_path / "straight" / "step-000002", **plain)
    without = warm_up_prior(synthetic_root, tmp_path / "without", steps=2, **plain)
    with pytest.raises(ValueError, match="does not fit this run's parameter groups.*--attribute-loss"):
        warm_up_prior(synthetic_root, tmp_path / "y", steps=4, resume=without, **settings)


def test_attribute_head_width():
    head = AttributeHead(16)
    assert head(torch.zeros(2, 5, 16)).shape == (2, 5, sum(len(c) for _, c in ATTRIBUTE_GROUPS) + 1)
