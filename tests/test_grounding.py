"""The object-choice diagnostic: which annotated object the masks (and the prior alone) pick."""
from __future__ import annotations

import numpy as np
import pytest

from mpg_sam2.data.synthetic import load_synthetic, read_expression_types, read_phrase_needed, write_dataset
from mpg_sam2.evaluation import expression_scores
from mpg_sam2.evaluation.grounding import chosen_object, format_grounding_table, prior_masks
from mpg_sam2.evaluation.synthetic_report import evaluate_synthetic
from mpg_sam2.mask_io.png import read_label_png
from mpg_sam2.pipeline.segmentation import ExpressionSegmentation, VideoSegmentation
from tiny_model import tiny_model, tiny_tokenizer


def test_chosen_object_is_the_largest_overlap_over_all_frames():
    labels = np.zeros((2, 4, 4), dtype=np.uint8)
    labels[0, :2, :2] = 1  # 4 pixels of object 1
    labels[1, 2:, :] = 2  # 8 pixels of object 2
    masks = np.zeros_like(labels, dtype=bool)
    masks[0, :2, :2] = True
    masks[1, 3, :2] = True  # 2 pixels of object 2
    assert chosen_object(masks, labels) == 1
    masks[1, 2:, :] = True
    assert chosen_object(masks, labels) == 2
    assert chosen_object(np.zeros_like(masks), labels) is None
    assert chosen_object(labels == 0, labels) is None  # background only
    tie = (labels == 1) | ((labels == 2) & (np.arange(4)[None, None, :] < 2) & (np.arange(4)[None, :, None] == 2))
    assert chosen_object(tie, labels) == 1  # 4 pixels each: the lower id


def test_prior_masks_upsample_and_threshold():
    priors = np.array([[[0.9, 0.1], [0.1, 0.1]]], dtype=np.float32)
    masks = prior_masks(priors, 4, 6)
    assert masks.shape == (1, 4, 6) and masks.dtype == bool
    assert masks[0, 0, 0] and not masks[0, 3, 5]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    write_dataset(root, 3, 0, 0, 4, frames=4, size=64)
    return root


def test_diagnostic_of_a_fake_model_matches_its_choices(dataset, tmp_path, monkeypatch):
    """A 'model' that always segments object 1 and whose prior covers the whole frame: its hit
    rate is the share of sentences about object 1, the prior's that of sentences about each
    clip's largest object, computed here from the label maps."""
    videos = iter(load_synthetic(dataset, "test").videos)
    expected_model, expected_prior = {}, {}

    def fake_segment_video(frames, prepared, model, options):
        video = next(videos)
        labels = np.stack([read_label_png(p) for p in video.expressions[0].masks.paths])
        largest = int(np.bincount(labels.ravel())[1:].argmax()) + 1
        for sample in video.expressions:
            key = (video.video_id, sample.expression_id)
            expected_model[key] = sample.masks.object_ids[0] == 1
            expected_prior[key] = sample.masks.object_ids[0] == largest
        t, h, w = labels.shape
        results = [
            ExpressionSegmentation(p.text, labels == 1, np.ones((t, 4, 4), np.float32), np.ones(t, np.float32))
            for p in prepared
        ]
        return VideoSegmentation(results, np.arange(t, dtype=float), 30.0, (h, w))

    monkeypatch.setattr(expression_scores, "segment_video", fake_segment_video)
    report = evaluate_synthetic(tiny_model(), tiny_tokenizer(tmp_path / "tok"), dataset, "test", diagnose=True)
    overall = report.grounding["overall"]
    assert overall.count == len(expected_model) == report.by_type["overall"].count
    assert overall.hit_rate == pytest.approx(np.mean(list(expected_model.values())))
    assert overall.prior_hit_rate == pytest.approx(np.mean(list(expected_prior.values())))
    hits = [s.jf for s in report.expressions if expected_model[(s.video_id, s.expression_id)]]
    assert overall.jf_when_hit == (pytest.approx(np.mean(hits)) if hits else None)
    types, needed = read_expression_types(dataset, "test"), read_phrase_needed(dataset, "test")
    for kind in set(types.values()):
        assert report.grounding[kind].count == sum(t == kind for t in types.values())
        subset = [k for k, t in types.items() if t == kind and needed[k]]
        if subset:
            group = report.grounding[f"{kind}, phrase needed"]
            assert group.count == len(subset)
            assert group.hit_rate == pytest.approx(np.mean([expected_model[k] for k in subset]))
    assert "phrase needed" in format_grounding_table(report.grounding) or not any(needed.values())
    assert report.to_json()["grounding"]["overall"]["hit_rate"] == overall.hit_rate


def test_prior_alone_scores_what_the_diagnostic_reports_for_the_prior(dataset, tmp_path, capsys):
    from mpg_sam2.checkpoint.pretrained import save_pretrained
    from mpg_sam2.evaluation.prior_only import evaluate_priors
    from mpg_sam2.evaluation.synthetic_report import main

    model, tokenizer = tiny_model(), tiny_tokenizer(tmp_path / "tok")
    full = evaluate_synthetic(model, tokenizer, dataset, "test", diagnose=True).grounding
    alone = evaluate_priors(model, tokenizer, dataset, "test")
    assert list(alone) == list(full)  # the same groups, in the same order
    for name, row in alone.items():
        assert row.count == full[name].count
        assert row.hit_rate == pytest.approx(full[name].prior_hit_rate, abs=1e-12), name
        assert row.jf == pytest.approx(full[name].prior_jf, abs=1e-9), name
    assert 0.0 < alone["overall"].jf < 1.0

    checkpoint = save_pretrained(model, tmp_path / "ckpt", tokenizer)
    out = tmp_path / "prior.json"
    assert main(["--model", str(checkpoint), "--data", str(dataset), "--split", "test", "--prior-only", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"| overall | {alone['overall'].count} | {alone['overall'].hit_rate:.3f} | {alone['overall'].jf:.3f} |" in printed
    import json

    assert json.loads(out.read_text())["prior"]["overall"]["hit_rate"] == pytest.approx(alone["overall"].hit_rate)
    with pytest.raises(SystemExit):
        main(["--model", str(checkpoint), "--data", str(dataset), "--prior-only", "--diagnose"])
    assert "--prior-only scores every expression's prior alone" in capsys.readouterr().err
