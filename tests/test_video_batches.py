"""Batches of whole videos in the full training: grouping, shared SAM 2 features, the flag, resume."""
from __future__ import annotations

import argparse
import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mpg_sam2.model.mpg_sam2 import MPGSAM2
from mpg_sam2.training.datasets import TrainingClip, video_groups
from mpg_sam2.training.forward import frame_sharing_runs, predict_clip, predict_shared_frames
from mpg_sam2.training.losses import LossWeights, referring_loss
from mpg_sam2.training.train_config import TrainConfig
from tiny_model import TRAINING_TINY

pytestmark = pytest.mark.usefixtures("one_thread")


def _video_clips(captions: int, seed: int = 0, num_frames: int = 3) -> list[TrainingClip]:
    """``captions`` clips of one video drawn together: the same frames, each caption its own
    target (caption k: a square at column 20 + 24 k)."""
    g = torch.Generator().manual_seed(seed)
    s, b = TRAINING_TINY.sam2.image_size, TRAINING_TINY.beit3.image_size
    sam = torch.randn(num_frames, 3, s, s, generator=g) * 0.3
    beit = torch.nn.functional.interpolate(sam, size=(b, b), mode="bilinear", antialias=True)
    clips = []
    for k in range(captions):
        targets = torch.zeros(num_frames, s, s)
        targets[:, 40:70, 20 + 24 * k : 50 + 24 * k] = 1
        ids = torch.tensor([[0, 11 + k, 29 + seed, 2]])
        clips.append(TrainingClip(f"video{seed}/{k}", f"caption {k}", tuple(range(num_frames)), sam, beit, ids, ids != 3, targets))
    return clips


def test_video_groups_gather_a_videos_expressions_in_first_seen_order():
    keys = ["b/0", "a/0", "b/1", "c/0", "a/1", "b/2"]
    entries = [SimpleNamespace(key=key) for key in keys]
    assert video_groups(entries) == [[0, 2, 5], [1, 4], [3]]


def test_frame_sharing_runs_split_where_the_frames_differ():
    first, second = _video_clips(3, seed=0), _video_clips(2, seed=1)
    # Same video and frame indices, other pixels (another draw): not shared.
    redrawn = dataclasses.replace(first[0], sam_pixels=first[0].sam_pixels + 1)
    assert frame_sharing_runs([*first, *second]) == [[0, 1, 2], [3, 4]]
    assert frame_sharing_runs([first[0], redrawn, first[1]]) == [[0], [1], [2]]
    other_frames = dataclasses.replace(first[1], frame_indices=(0, 2, 4))
    assert frame_sharing_runs([first[0], other_frames]) == [[0], [1]]


def test_shared_frames_predict_what_each_clip_predicts_alone():
    torch.manual_seed(0)
    model = MPGSAM2(TRAINING_TINY).eval()  # eval: no dropout, so the two paths draw nothing
    clips = _video_clips(3)
    with torch.no_grad():
        shared = predict_shared_frames(model, clips, gated=False)
        for clip, together in zip(clips, shared):
            alone = predict_clip(model, clip, gated=False)
            for name in ("logits", "object_score_logits", "sentence_scores", "prior_logits"):
                torch.testing.assert_close(getattr(together, name), getattr(alone, name), rtol=0, atol=1e-5, msg=name)
    # The captions differ, so their predictions do: nothing is shared past the image features.
    assert not torch.equal(shared[0].prior_logits, shared[1].prior_logits)


def test_shared_frames_encode_each_frame_once_and_give_the_separate_gradients():
    torch.manual_seed(0)
    model = MPGSAM2(TRAINING_TINY).eval()  # gradients flow in eval mode too; no dropout draws
    model.sam2.image_encoder.requires_grad_(True)  # frozen unless a run trains it (train_image_encoder)
    trunk = model.sam2.image_encoder.trunk
    clips = _video_clips(3)
    weights = LossWeights(object_score=1.0)
    targets = [clip.targets for clip in clips]

    def trunk_gradients(predictions) -> list[torch.Tensor]:
        model.zero_grad(set_to_none=True)
        referring_loss(predictions, targets, weights).total.backward()
        return [p.grad.clone() for p in trunk.parameters()]

    calls = []
    handle = trunk.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    try:
        together = trunk_gradients(predict_shared_frames(model, clips, gated=False))
    finally:
        handle.remove()
    assert sum(calls) == clips[0].num_frames  # 3 frames encoded once, not once per caption
    alone = trunk_gradients([predict_clip(model, clip, gated=False) for clip in clips])
    assert any(g.abs().sum() > 0 for g in alone)
    for a, b in zip(together, alone):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_by_video_is_a_training_setting_with_a_flag():
    from mpg_sam2.training.cli import add_train_parser

    parser = argparse.ArgumentParser()
    add_train_parser(parser.add_subparsers())
    common = ["train", "--data", ".", "--dataset", "synthetic", "--out", "."]
    assert parser.parse_args(common).by_video is False is TrainConfig(data=".", out=".").by_video
    assert parser.parse_args([*common, "--by-video"]).by_video is True
    assert TrainConfig(data=".", out=".", by_video=True).to_json()["by_video"] is True


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    from mpg_sam2.data.synthetic import write_dataset

    return write_dataset(tmp_path_factory.mktemp("synthetic") / "data", seed=1, train=2, val=1, test=0, frames=4, size=64)


def test_a_run_in_video_batches_trains_each_video_whole_and_resumes_only_so(synthetic_root, tmp_path, monkeypatch):
    from mpg_sam2.checkpoint.pretrained import save_pretrained
    from mpg_sam2.training import forward as forward_module
    from mpg_sam2.training.trainer import train

    torch.manual_seed(3)
    init = save_pretrained(MPGSAM2(TRAINING_TINY), tmp_path / "init")
    batches = []
    shared = forward_module.predict_shared_frames

    def spy(model, clips, *args, **kwargs):
        batches.append([clip.key for clip in clips])
        return shared(model, clips, *args, **kwargs)

    monkeypatch.setattr(forward_module, "predict_shared_frames", spy)
    lines = []
    settings = dict(data=synthetic_root, dataset="synthetic", frames=2, lr=1e-4, object_score_loss=1.0, prior_loss=0.0,
                    threads=1, seed=2, init_from=init, by_video=True)
    out = tmp_path / "videos"
    train(TrainConfig(out=out, steps=2, save_every=1, **settings), log=lines.append)
    expressions = json.loads((synthetic_root / "meta_expressions" / "train" / "meta_expressions.json").read_text())["videos"]
    sizes = {video: len(meta["expressions"]) for video, meta in expressions.items()}
    assert len(batches) == 2
    for keys in batches:  # every step: all of one video's expressions, on shared frames
        videos = {key.split("/")[0] for key in keys}
        assert len(videos) == 1 and len(keys) == sizes[videos.pop()]
    assert any("batch 1 videos" in line for line in lines)
    args = json.loads((out / "step-000002" / "training_args.json").read_text())
    assert args["by_video"] is True and np.isfinite(json.loads((out / "log.jsonl").read_text().splitlines()[-1])["loss"])
    with pytest.raises(ValueError, match="batches of whole videos"):
        train(TrainConfig(out=tmp_path / "resumed", steps=2, resume=out / "step-000001", **{**settings, "by_video": False}))
