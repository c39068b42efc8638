"""``python -m mpg_sam2.training.offline_model``: data, runs, ablation rows, scores, card, export.

Run end to end at a toy scale (two training steps per run): what is checked is the plumbing --
resumable stages, the ablation rows built from the right configurations and checkpoints, the
exported folder loading as the full model, and the card stating exactly the evaluated numbers.
"""
from __future__ import annotations

import json

import pytest

from mpg_sam2.training import offline_model


@pytest.fixture()
def toy_scale(monkeypatch):
    monkeypatch.setattr(offline_model, "DATA", {"seed": 0, "train": 2, "val": 1, "test": 1})
    monkeypatch.setattr(offline_model, "REGRESSION_SET", {"seed": 1, "test": 1})
    monkeypatch.setattr(offline_model, "RECIPE", {**offline_model.RECIPE, "frames": 2, "val_every": 0, "save_every": 1})


def test_offline_model_end_to_end_at_toy_scale(toy_scale, tmp_path):
    from mpg_sam2.pretrained import load_pretrained
    from mpg_sam2.training.ablations import ablation_name

    out = tmp_path / "bundle"
    report = offline_model.build_offline_model(tmp_path / "work", out, steps=2, ablation_steps=1, command="CMD")

    loaded = load_pretrained(out)
    assert loaded.tokenizer is not None and ablation_name(loaded.model.config) == "MPG+HGA"
    assert (out / "model.safetensors").stat().st_size <= 25 * 2**20
    assert not (out / "training_state.pt").exists()
    # Each ablation row was trained with its switches and scored at the ablation budget.
    for name, (no_prior, no_agg) in offline_model.ABLATIONS.items():
        config = load_pretrained(tmp_path / "work" / name / "step-000001", load_tokenizer_files=False).model.config
        assert config.mask_prior.dense_prompt is not no_prior and config.aggregator.enabled is not no_agg
    assert set(report.ablations) == set(offline_model.ABLATIONS)

    evaluation = json.loads((out / "evaluation.json").read_text())
    card = (out / "README.md").read_text()
    assert evaluation["steps"] == 2 and evaluation["regression_set"]["expressions"] == report.regression.count
    for name, row in evaluation["test"].items():
        assert f"| {name} | {row['expressions']} | {row['J']:.3f} | {row['F']:.3f} | {row['J&F']:.3f} |" in card
    assert "`CMD`" in card and f"J&F {report.regression.jf:.3f}" in card

    # A second call finds every run finished and trains nothing.
    stamp = (tmp_path / "work" / "main" / "log.jsonl").stat().st_mtime_ns
    offline_model.build_offline_model(tmp_path / "work", out, steps=2, ablation_steps=1, command="CMD")
    assert (tmp_path / "work" / "main" / "log.jsonl").stat().st_mtime_ns == stamp


def test_offline_model_refuses_a_work_folder_with_another_dataset(tmp_path):
    from mpg_sam2.data.synthetic import write_dataset

    write_dataset(tmp_path / "data", seed=3, train=1, val=0, test=0)
    with pytest.raises(ValueError, match="another synthetic dataset"):
        offline_model._dataset(tmp_path / "data")


def test_ablation_steps_beyond_the_main_run_are_refused(toy_scale, tmp_path):
    with pytest.raises(ValueError, match="must not exceed"):
        offline_model.build_offline_model(tmp_path / "work", tmp_path / "out", steps=1, ablation_steps=2, command="CMD")
