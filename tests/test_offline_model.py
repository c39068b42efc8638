"""The offline model: the command that builds it, and the bundled model it built.

``python -m mpg_sam2.training.offline_model`` runs end to end at a toy scale (two training steps
per run): what is checked is the plumbing -- resumable stages, the ablation rows built from the
right configurations and checkpoints, the exported folder loading as the full model, and the
card stating exactly the evaluated numbers. The bundled model in ``checkpoints/offline/`` is
checked against its own card, and a regression test regenerates the card's regression clips
(the generator is seeded) and checks the model still reaches the J&F recorded there.
"""
from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch

from mpg_sam2.app.models import BUNDLED_MODEL
from mpg_sam2.config import get_preset
from mpg_sam2.training import offline_card, offline_model, offline_recipe

# Other CPUs may round differently and flip a few boundary pixels; over ~45 expressions that moves
# J&F by far less than this.
JF_TOLERANCE = 0.01


@pytest.fixture()
def toy_scale(monkeypatch):
    monkeypatch.setattr(offline_recipe, "DATA", {"seed": 0, "train": 2, "val": 1, "test": 1})
    monkeypatch.setattr(offline_recipe, "REGRESSION_SET", {"seed": 1, "test": 1})
    monkeypatch.setattr(offline_recipe, "HELD_OUT", {"seeds": (2,), "test": 1})
    # Rate warm-ups shorter than the toy runs' one or two steps.
    monkeypatch.setattr(offline_recipe, "RECIPE", {**offline_recipe.RECIPE, "frames": 2, "val_every": 0, "save_every": 1,
                                                   "warmup_steps": 0})
    monkeypatch.setattr(offline_recipe, "CLICK_STAGE", {**offline_recipe.CLICK_STAGE, "frames": 2, "val_every": 0, "save_every": 1,
                                                        "click_probability": 1.0, "warmup_steps": 0})
    stage = {**offline_recipe.WARMUP_STAGES[0], "steps": 2, "batch_size": 1, "val_every": 0, "warmup_steps": 0}
    monkeypatch.setattr(offline_recipe, "WARMUP_STAGES", [stage, {**stage, "steps": 1, "seed": 1}])
    monkeypatch.setattr(offline_recipe, "ABLATION_SEEDS", (0, 1))
    monkeypatch.setattr(offline_recipe, "READOUT_CHOICES", ({"object_score_threshold": 2.0, "component_prior_ratio": 0.8},
                                                            {"object_score_threshold": 1.0, "component_prior_ratio": 0.9}))


def test_offline_model_end_to_end_at_toy_scale(toy_scale, tmp_path, monkeypatch):
    from mpg_sam2.evaluation import synthetic_report
    from mpg_sam2.checkpoint.pretrained import load_pretrained
    from mpg_sam2.training.ablations import ablation_name

    out = tmp_path / "bundle"
    report = offline_model.build_offline_model(tmp_path / "work", out, steps=2, ablation_steps=1, command="CMD", click_steps=1)

    loaded = load_pretrained(out)
    assert loaded.tokenizer is not None and ablation_name(loaded.model.config) == "MPG+HGA"
    # The bundle's clicks paint its prior (its decoder never learned points).
    assert loaded.model.config.mask_prior.click_radius == offline_recipe.CLICK_RADIUS > 0
    # Its masks are read out as the best of the recipe's readouts on the validation split says;
    # the card's test numbers are those masks', and it also states SAM 2's own masks (the
    # default readout), scored and cached apart.
    evaluation = json.loads((out / "evaluation.json").read_text())
    readout = evaluation["readout"]
    choices = evaluation["readout_validation"]
    assert [{k: c[k] for k in readout} for c in choices] == list(offline_recipe.READOUT_CHOICES)
    assert readout == {k: max(choices, key=lambda c: c["J&F"])[k] for k in readout} and readout == report.readout
    assert dataclasses.asdict(loaded.model.config.readout) == readout and all(readout.values())
    final, suffix = tmp_path / "work" / "clicks" / "step-000001", "_s{object_score_threshold:g}_c{component_prior_ratio:g}".format(**readout)
    assert {"expressions_test.json", f"expressions_test{suffix}.json", f"expressions_regression{suffix}.json",
            f"scores_test_clicks_r{offline_recipe.CLICK_RADIUS:g}{suffix}.json"} <= {p.name for p in final.iterdir()}
    assert (out / "model.safetensors").stat().st_size <= 25 * 2**20
    assert not (out / "training_state.pt").exists()
    # Every run starts from the warm-up checkpoint.
    warm = tmp_path / "work" / "prior_warmup" / "stage-2" / "step-000001"
    second_stage = json.loads((warm / "training_args.json").read_text())
    assert second_stage["objective"] == "prior"
    assert second_stage["init_from"] == str(tmp_path / "work" / "prior_warmup" / "stage-1" / "step-000002")
    # Each ablation row was trained once per seed (two worker processes) with its switches, from
    # the warm-up, and scored at the ablation budget; seed 0 of the full row is the main run.
    # (With the recipe's cosine rate the full model's row is a run of its own too, abl_main.)
    folders = {(name, 0): "abl_main" if name == "main" else name for name in offline_recipe.ABLATIONS} | {
        (name, 1): "abl_main-seed1" if name == "main" else f"{name}-seed1" for name in offline_recipe.ABLATIONS}
    assert offline_recipe.RECIPE["lr_schedule"] == "cosine"
    for name, (no_prior, no_agg) in offline_recipe.ABLATIONS.items():
        for seed in (0, 1):
            checkpoint = tmp_path / "work" / folders[(name, seed)] / "step-000001"
            args = json.loads((checkpoint / "training_args.json").read_text())
            assert args["init_from"] == str(warm) and args["seed"] == seed
            config = load_pretrained(checkpoint, load_tokenizer_files=False).model.config
            assert config.mask_prior.dense_prompt is not no_prior and config.aggregator.enabled is not no_agg
            assert (checkpoint / "expressions_test.json").is_file()
    assert set(report.ablations) == set(offline_recipe.ABLATIONS)
    assert all(set(row.seeds) == {0, 1} for row in report.ablations.values())

    card = (out / "README.md").read_text()
    # The click fine-tuning starts from the main run's checkpoint with the best validation J&F
    # (the card says which), and its last checkpoint is the bundle.
    validation = {int(step): jf for step, jf in evaluation["validation_jf"].items()}
    assert set(validation) == {1, 2} and validation[evaluation["selected_step"]] == max(validation.values())
    selected = tmp_path / "work" / "main" / f"step-{evaluation['selected_step']:06d}"
    clicks_args = json.loads((tmp_path / "work" / "clicks" / "step-000001" / "training_args.json").read_text())
    assert clicks_args["init_from"] == str(selected) and clicks_args["click_probability"] == 1.0
    tuned = load_pretrained(tmp_path / "work" / "clicks" / "step-000001").model.state_dict()
    for name, value in loaded.model.state_dict().items():
        assert torch.equal(value, tuned[name]), name
    assert f"step {evaluation['selected_step']} is the checkpoint with the best J&F on the validation split" in card
    assert evaluation["click_stage"]["steps"] == 1 and "click fine-tuning from step" in card
    assert set(evaluation["test_clicks"]["after"]) == {"0", "1", "2", "3"} and "## Correcting with clicks" in card
    assert evaluation["click_radius"] == offline_recipe.CLICK_RADIUS and "`mask_prior.click_radius`" in card
    types = [t for t in evaluation["test_clicks"]["after"]["0"] if t in evaluation["test_random_object"]]
    for clicks, rows in evaluation["test_clicks"]["after"].items():
        assert f"| {clicks} | " + " | ".join(f"{rows[t]['J&F']:.3f}" for t in types) + " |" in card
    for n, rows in enumerate(evaluation["test_clicks"]["gains"], start=1):
        assert rows["overall"]["mean"] == pytest.approx(
            evaluation["test_clicks"]["after"][str(n)]["overall"]["J&F"] - evaluation["test_clicks"]["after"]["0"]["overall"]["J&F"])
        assert f"| gain after {n} | {rows['overall']['mean']:+.3f} [{rows['overall']['low']:+.3f}, " in card
    assert evaluation["steps"] == 2 and evaluation["regression_set"]["expressions"] == report.regression.count
    # The bundle is scored on the test split of a seed it never saw, beside that split's random-object level.
    held_out = evaluation["held_out"]["2"]
    assert json.loads((tmp_path / "work" / "held_out-seed2" / "synthetic_info.json").read_text())["seed"] == 2
    assert held_out["test"]["overall"]["J&F"] == report.held_out[2]["overall"].jf
    assert f"| 2 | {held_out['test']['overall']['expressions']} | {held_out['test']['overall']['J&F']:.3f} " \
           f"({held_out['test_random_object']['overall']['J&F']:.3f}) |" in card
    for name, row in evaluation["test"].items():
        assert f"| {name} | {row['expressions']} | {row['J']:.3f} | {row['F']:.3f} | {row['J&F']:.3f} |" in card
    assert "`CMD`" in card and f"J&F {report.regression.jf:.3f}" in card
    parameters = sum(p.numel() for p in loaded.model.parameters())
    assert evaluation["parameters"] == parameters and f"size ({parameters / 1e6:.1f} M parameters)" in card
    assert "`readout` section" in card and f"best of {len(choices)} on the validation split, " in card
    own = evaluation["test_sam2_masks"]["overall"]["J&F"]
    assert own == report.test_own_masks["overall"].jf and f"SAM 2's own masks (the default `readout`), J&F: overall {own:.3f}" in card
    assert offline_card.verdict(report) in card
    # The ablation table: each row's mean ± spread over the seeds and its paired difference from the baseline.
    assert evaluation["ablation_seeds"] == [0, 1] and "seeds 0, 1)" in card
    for name, row in evaluation["ablations"].items():
        overall = row["mean"]["overall"]
        seed_jf = [row["seeds"][seed]["overall"]["J&F"] for seed in ("0", "1")]
        assert overall["J&F"] == pytest.approx(sum(seed_jf) / 2)
        versus = row["versus_baseline"]
        assert (versus is None) == (name == "abl_baseline")
        cell = f"| {overall['J&F']:.3f} ± {row['spread']['overall']:.3f} |"
        tail = " - |" if versus is None else f" {versus['overall']['mean']:+.3f} [{versus['overall']['low']:+.3f}, "
        assert any(line.startswith(f"| {offline_card.ROW_NAMES[name]} |") and cell in line and tail in line for line in card.splitlines())
        if versus is not None:
            base = evaluation["ablations"]["abl_baseline"]["mean"]["overall"]["J&F"]
            assert versus["overall"]["mean"] == pytest.approx(overall["J&F"] - base)

    # A second call finds every run finished and every checkpoint scored: it trains and segments nothing.
    stamp = (tmp_path / "work" / "main" / "log.jsonl").stat().st_mtime_ns

    def no_scoring(*args, **kwargs):
        raise AssertionError("scored again")

    monkeypatch.setattr(synthetic_report, "evaluate_synthetic", no_scoring)
    again = offline_model.build_offline_model(tmp_path / "work", out, steps=2, ablation_steps=1, command="CMD", click_steps=1)
    assert (tmp_path / "work" / "main" / "log.jsonl").stat().st_mtime_ns == stamp
    assert again.test["overall"].jf == pytest.approx(report.test["overall"].jf)


def test_verdict_names_the_expression_types_still_at_the_random_object_level():
    from mpg_sam2.evaluation.aggregate import MeanScores

    def rows(overall, appearance, time):
        return {"overall": MeanScores(0, 0, overall, 9), "appearance": MeanScores(0, 0, appearance, 5),
                "time": MeanScores(0, 0, time, 4)}

    def verdict(test):
        report = offline_card.OfflineModelReport(5, 5, {5: 0.5}, 0, 0, test, rows(0.35, 0.38, 0.30), MeanScores(0, 0, 0, 1))
        return offline_card.verdict(report)

    assert "does not understand the sentence" in verdict(rows(0.39, 0.45, 0.30))
    reads = verdict(rows(0.45, 0.60, 0.33))
    assert "reads the sentence" in reads and "0.100 above" in reads
    assert "time expressions (0.330 against 0.300)" in reads and "appearance expressions" not in reads
    assert "Not yet" not in verdict(rows(0.45, 0.60, 0.36))


def test_card_says_what_the_whole_model_stage_trains_and_on_which_losses(monkeypatch):
    from types import SimpleNamespace

    report = SimpleNamespace(steps=2500)
    monkeypatch.setattr(offline_recipe, "RECIPE", {**offline_recipe.RECIPE, "train_scope": "all", "prior_loss": 1.0})
    lines = "\n".join(offline_card._main_stage_lines(report))
    assert "2500 AdamW steps" in lines and "the whole model" in lines and "focal + dice on the mask prior (weight 1)" in lines
    monkeypatch.setattr(offline_recipe, "RECIPE", {**offline_recipe.RECIPE, "train_scope": "sam2", "prior_loss": 0.0})
    lines = "\n".join(offline_card._main_stage_lines(report))
    assert "keep the warm-up's weights (`--train-scope sam2`)" in lines and "mask prior (weight" not in lines
    assert "object-score BCE (weight 1)" in lines


def test_offline_model_refuses_a_work_folder_with_another_dataset(tmp_path):
    from mpg_sam2.data.synthetic import write_dataset

    write_dataset(tmp_path / "data", seed=3, train=1, val=0, test=0)
    with pytest.raises(ValueError, match="another synthetic dataset"):
        offline_model._dataset(tmp_path / "data")


def test_offline_model_refuses_a_dataset_written_without_its_objects(toy_scale, tmp_path):
    from mpg_sam2.data.synthetic import write_dataset

    root = write_dataset(tmp_path / "data", seed=0, train=2, val=1, test=1)
    assert offline_model._dataset(root) == root
    meta_file = root / "meta_expressions" / "train" / "meta_expressions.json"
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    for video in meta["videos"].values():
        del video["objects"]  # as the generator wrote it before version 2
    meta_file.write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(ValueError, match="before the synthetic benchmark recorded its objects.*fresh --work folder"):
        offline_model._dataset(root)


def test_an_interrupted_warm_up_stage_continues_from_its_newest_checkpoint(toy_scale, tmp_path, monkeypatch):
    from mpg_sam2.checkpoint.pretrained import load_pretrained

    stage = {**offline_recipe.WARMUP_STAGES[0], "steps": 4}
    monkeypatch.setattr(offline_recipe, "WARMUP_STAGES", [stage])
    monkeypatch.setattr(offline_model, "WARMUP_SAVE_EVERY", 2)
    data = offline_model._dataset(tmp_path / "data")
    straight = offline_model._warm_up(data, tmp_path / "straight")
    expected = load_pretrained(straight, load_tokenizer_files=False).model.state_dict()
    # Interrupted after step 2: its newest checkpoint is step 2 and its log ends there.
    folder = tmp_path / "interrupted" / "stage-1"
    shutil.copytree(straight.parent, folder)
    shutil.rmtree(folder / "step-000004")
    log = (folder / "log.jsonl").read_text().splitlines()
    (folder / "log.jsonl").write_text("\n".join(log[:2]) + "\n")

    resumed = offline_model._warm_up(data, tmp_path / "interrupted")
    assert resumed == folder / "step-000004"
    steps = [json.loads(line)["step"] for line in (folder / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]  # steps 1-2 were not trained again
    for name, value in load_pretrained(resumed, load_tokenizer_files=False).model.state_dict().items():
        assert torch.equal(value, expected[name]), name


def test_offline_model_refuses_a_warm_up_with_other_settings(tmp_path):
    stages = offline_recipe.WARMUP_STAGES
    finals = [tmp_path / "prior_warmup" / f"stage-{n}" / f"step-{stage['steps']:06d}" for n, stage in enumerate(stages, 1)]
    for final, stage in zip(finals, stages):
        final.mkdir(parents=True)
        (final / "training_state.pt").touch()  # a complete checkpoint
        (final / "training_args.json").write_text(json.dumps({**stage, "out": "elsewhere"}))
    assert offline_model._warm_up(tmp_path / "data", tmp_path / "prior_warmup") == finals[-1]
    (finals[-1] / "training_args.json").write_text(json.dumps({**stages[-1], "lr": 1.0}))
    with pytest.raises(ValueError, match="other settings.*'lr': 1.0"):
        offline_model._warm_up(tmp_path / "data", tmp_path / "prior_warmup")


def test_ablation_steps_beyond_the_main_run_are_refused(toy_scale, tmp_path, monkeypatch):
    """Only where the main run's checkpoint is the full model's row (a constant rate)."""
    monkeypatch.setattr(offline_recipe, "RECIPE", {**offline_recipe.RECIPE, "lr_schedule": "constant"})
    with pytest.raises(ValueError, match="must not exceed"):
        offline_model.build_offline_model(tmp_path / "work", tmp_path / "out", steps=1, ablation_steps=2, command="CMD")


# ------------------------------------------------------------------------------------------------
# The bundled model


@pytest.fixture(scope="module")
def evaluation() -> dict:
    return json.loads((BUNDLED_MODEL / "evaluation.json").read_text(encoding="utf-8"))


def test_bundle_is_small_loadable_and_the_full_model(evaluation):
    from mpg_sam2.checkpoint.pretrained import load_pretrained
    from mpg_sam2.training.ablations import ablation_name

    assert (BUNDLED_MODEL / "model.safetensors").stat().st_size <= 25 * 2**20
    assert not (BUNDLED_MODEL / "training_state.pt").exists()  # no optimizer state shipped
    pretrained = load_pretrained(BUNDLED_MODEL)
    assert pretrained.tokenizer is not None
    assert ablation_name(pretrained.model.config) == "MPG+HGA"
    nano = get_preset("nano")  # the preset the recipe trains, with the recipe's stem: the bundle must be it
    stem = tuple(offline_recipe.WARMUP_STAGES[0].get("conv_stem", ()))
    assert pretrained.model.config.beit3 == dataclasses.replace(nano.beit3, conv_stem=stem)
    assert pretrained.model.config.sam2 == nano.sam2
    assert evaluation["parameters"] == sum(p.numel() for p in pretrained.model.parameters())
    assert evaluation["data"] == offline_recipe.DATA and evaluation["recipe"] == offline_recipe.RECIPE
    assert evaluation["warmup_stages"] == offline_recipe.WARMUP_STAGES
    assert dataclasses.asdict(pretrained.model.config.readout) == evaluation["readout"] in offline_recipe.READOUT_CHOICES


def test_model_card_states_the_evaluated_numbers(evaluation):
    card = (BUNDLED_MODEL / "README.md").read_text(encoding="utf-8")
    for section in ("test", "test_random_object"):
        assert set(evaluation[section]) == {"overall", "appearance", "motion", "relation", "time"}
        for name, row in evaluation[section].items():
            assert f"| {name} | {row['expressions']} | {row['J']:.3f} | {row['F']:.3f} | {row['J&F']:.3f} |" in card
    assert f"J&F {evaluation['regression_set']['J&F']:.3f}" in card
    assert f"at the `nano` size ({evaluation['parameters'] / 1e6:.1f} M parameters)" in card
    for seed in offline_recipe.HELD_OUT["seeds"]:
        rows, chance = evaluation["held_out"][str(seed)]["test"], evaluation["held_out"][str(seed)]["test_random_object"]
        assert f"| {seed} | {rows['overall']['expressions']} | " + " | ".join(
            f"{rows[t]['J&F']:.3f} ({chance[t]['J&F']:.3f})" for t in ("overall", "appearance", "motion", "relation", "time")) + " |" in card
    assert set(evaluation["ablations"]) == set(offline_recipe.ABLATIONS)
    assert "python -m mpg_sam2.training.offline_model" in card


def test_readme_states_the_bundled_models_evaluated_numbers(evaluation):
    # The repository's README describes the bundle in prose; a rebuild must not leave it behind.
    readme = " ".join((BUNDLED_MODEL.parents[1] / "README.md").read_text(encoding="utf-8").split())
    test, chance = evaluation["test"], evaluation["test_random_object"]
    assert (f"Test split J&F {test['overall']['J&F']:.3f} against {chance['overall']['J&F']:.3f} for segmenting a "
            "random object of the clip perfectly") in readme
    for kind in ("appearance", "motion", "relation", "time"):
        assert f"{kind} {test[kind]['J&F']:.3f} ({chance[kind]['J&F']:.3f}" in readme
    held_out = [evaluation["held_out"][str(seed)] for seed in offline_recipe.HELD_OUT["seeds"]]
    assert "scores " + " and ".join(f"{h['test']['overall']['J&F']:.3f}" for h in held_out) in readme
    assert "(random object " + " and ".join(f"{h['test_random_object']['overall']['J&F']:.3f}" for h in held_out) in readme
    assert f"with SAM 2's own masks the test J&F is {evaluation['test_sam2_masks']['overall']['J&F']:.3f}" in readme


def test_readme_paragraphs_on_the_bundle_are_the_ones_its_evaluation_gives(tmp_path):
    from mpg_sam2.training.offline_readme import readme_sections, update_readme

    readme = BUNDLED_MODEL.parents[1] / "README.md"
    copy = tmp_path / "README.md"
    copy.write_text(readme.read_text(encoding="utf-8"), encoding="utf-8")
    # Up to date: regenerating from evaluation.json changes nothing.
    assert not update_readme(copy, BUNDLED_MODEL), "README.md is behind the bundle: python -m mpg_sam2.training.offline_readme"
    sections = readme_sections(BUNDLED_MODEL)
    for name, body in sections.items():
        assert f"<!-- offline-model:{name} -->\n{body}\n<!-- /offline-model:{name} -->" in copy.read_text(encoding="utf-8")
    # A stale paragraph is rewritten; a README without the markers is refused untouched.
    copy.write_text(copy.read_text(encoding="utf-8").replace(sections["clicks"], "stale"), encoding="utf-8")
    assert update_readme(copy, BUNDLED_MODEL) and sections["clicks"] in copy.read_text(encoding="utf-8")
    bare = tmp_path / "bare.md"
    bare.write_text("# nothing marked\n", encoding="utf-8")
    with pytest.raises(ValueError, match="has no '<!-- offline-model:summary -->'"):
        update_readme(bare, BUNDLED_MODEL)
    assert bare.read_text(encoding="utf-8") == "# nothing marked\n"


def test_bundled_clicks_paint_the_prior_and_the_card_and_readme_state_their_effect(evaluation):
    from mpg_sam2.checkpoint.pretrained import load_pretrained

    radius = load_pretrained(BUNDLED_MODEL, load_tokenizer_files=False).model.sam2.click_prior_radius
    assert radius == evaluation["click_radius"] == offline_recipe.CLICK_RADIUS > 0
    card = (BUNDLED_MODEL / "README.md").read_text(encoding="utf-8")
    after, gains = evaluation["test_clicks"]["after"], evaluation["test_clicks"]["gains"]
    types = ["overall", "appearance", "motion", "relation", "time"]
    for n, rows in after.items():
        assert f"| {n} | " + " | ".join(f"{rows[t]['J&F']:.3f}" for t in types) + " |" in card
    assert len(gains) == offline_recipe.EVALUATION_CLICKS
    overall = [after[str(n)]["overall"]["J&F"] for n in range(offline_recipe.EVALUATION_CLICKS + 1)]
    readme = " ".join((BUNDLED_MODEL.parents[1] / "README.md").read_text(encoding="utf-8").split())
    assert f"J&F goes from {overall[0]:.3f} to " + " / ".join(f"{v:.3f}" for v in overall[1:]) in readme


def test_app_offers_the_bundled_model_offline(monkeypatch):
    from mpg_sam2.app import models

    monkeypatch.delenv(models.LOCAL_MODEL_ENV, raising=False)
    monkeypatch.setattr(models, "_cached_releases", lambda: [])
    assert [c.source for c in models.available_models(offer_downloads=False)] == [str(BUNDLED_MODEL)]


@pytest.mark.parametrize("overall, says", [(0.36, "does not read the sentence yet"),
                                           (0.52, "reads the sentence, far from perfectly"),
                                           (0.81, "reads the sentence:")])
def test_app_note_on_the_bundled_model_follows_its_evaluation(tmp_path, overall, says):
    from mpg_sam2.app.models import bundled_model_note

    row = {"J": 0.0, "F": 0.0, "expressions": 1}
    (tmp_path / "evaluation.json").write_text(json.dumps({
        "test": {"overall": {**row, "J&F": overall}, "appearance": {**row, "J&F": 0.9}},
        "test_random_object": {"overall": {**row, "J&F": 0.35}},
    }))
    note = bundled_model_note(tmp_path)
    assert says in note and f"test J&F {overall:.2f} (appearance 0.90) against 0.35" in note
    (tmp_path / "evaluation.json").write_text("{}")
    assert "J&F" not in bundled_model_note(tmp_path) and "README.md" in bundled_model_note(tmp_path)


def test_bundled_model_reaches_its_stated_jf_on_freshly_generated_clips(evaluation, tmp_path):
    from mpg_sam2.data.synthetic import load_synthetic
    from mpg_sam2.evaluation.aggregate import summarize
    from mpg_sam2.evaluation.expression_scores import score_expressions
    from mpg_sam2.checkpoint.pretrained import load_pretrained

    stated = evaluation["regression_set"]
    assert {k: stated[k] for k in offline_recipe.REGRESSION_SET} == offline_recipe.REGRESSION_SET
    root = offline_model.regression_dataset(tmp_path / "regression")
    pretrained = load_pretrained(BUNDLED_MODEL)
    summary = summarize(score_expressions(pretrained.model, pretrained.tokenizer, load_synthetic(root, "test"))).overall
    assert summary.count == stated["expressions"]
    assert summary.jf >= stated["J&F"] - JF_TOLERANCE, f"J&F {summary.jf:.4f}, the card states {stated['J&F']:.4f}"


def test_a_failing_parallel_run_stops_the_build_and_names_the_run(tmp_path, monkeypatch):
    """Runs go on in worker processes; one that fails (here: a schedule TrainConfig refuses) raises
    in the build, naming its folder, and no worker is left running."""
    import multiprocessing

    monkeypatch.setattr(offline_recipe, "PARALLEL_RUNS", 2)
    settings = {**offline_recipe.RECIPE, "lr_schedule": "no-such-schedule"}
    jobs = [(tmp_path / "data", tmp_path / name, 1, False, False, tmp_path / "warm", settings) for name in ("run-a", "run-b")]
    with pytest.raises(RuntimeError, match=r"training .*run-(a|b) failed \(exit code 1"):
        offline_model._train_all(jobs)
    assert not multiprocessing.active_children()
    # One run leaves a place free: the tail scorings start there, waiting for a checkpoint that
    # never comes, and stop with the run.
    tail = [offline_model._ScoreJob(tmp_path / "run-a" / "step-000001", tmp_path / "data", "valid", split="valid")]
    with pytest.raises(RuntimeError, match=r"training .*run-a failed"):
        offline_model._train_all(jobs[:1], tail)
    assert not multiprocessing.active_children()


def test_the_main_run_is_the_full_row_only_with_a_constant_learning_rate(tmp_path, monkeypatch):
    """A cosine rate depends on the run's length: the main run's step-N checkpoint is then not an
    N-step run, and the full model's row trains on its own like the others."""
    constant = {**offline_recipe.RECIPE, "seed": 0, "lr_schedule": "constant"}
    monkeypatch.setattr(offline_recipe, "RECIPE", constant)
    assert offline_model._ablation_run(tmp_path, "main", 0) == tmp_path / "main"
    assert offline_model._ablation_run(tmp_path, "main", 2) == tmp_path / "abl_main-seed2"
    assert offline_model._ablation_run(tmp_path, "abl_hga", 0) == tmp_path / "abl_hga"
    monkeypatch.setattr(offline_recipe, "RECIPE", {**constant, "lr_schedule": "cosine"})
    assert offline_model._ablation_run(tmp_path, "main", 0) == tmp_path / "abl_main"


def test_scorings_run_in_worker_processes_and_a_failing_one_stops_them(tmp_path, monkeypatch):
    """The build's scorings go on in worker processes; a checkpoint that cannot be loaded (here:
    no weights) raises in the build with its own error, no cache is written and no worker is left
    running."""
    import multiprocessing

    monkeypatch.setattr(offline_recipe, "PARALLEL_RUNS", 2)
    jobs = []
    for name in ("ck-a", "ck-b", "ck-c"):
        (tmp_path / name).mkdir()
        jobs.append(offline_model._ScoreJob(tmp_path / name, tmp_path / "data", "test"))
    with pytest.raises(FileNotFoundError, match="no weights in .*ck-"):
        offline_model._score_all(jobs)
    assert not multiprocessing.active_children()
    assert not any(path.name.startswith(("expressions_", "scores_", ".expressions_")) for path in tmp_path.rglob("*"))


def test_tail_scorings_wait_for_each_checkpoint_and_skip_what_is_scored(tmp_path, monkeypatch):
    """Beside the last training run, each scoring starts once its checkpoint is complete (its
    training state written last), in the order given; one already cached is not run again, and
    one that fails is reported and left to the build."""
    import os
    import threading

    from mpg_sam2.training.checkpointing import TRAINING_STATE_FILE

    monkeypatch.setattr(offline_model, "TAIL_POLL_SECONDS", 0.01)
    jobs = [offline_model._ScoreJob(tmp_path / name, tmp_path / "data", "valid", split="valid")
            for name in ("step-000002", "step-000001", "scored", "broken")]
    for job in jobs:
        job.checkpoint.mkdir()
    for name in ("step-000001", "scored", "broken"):
        (tmp_path / name / TRAINING_STATE_FILE).touch()
    jobs[2].cache().write_text("[]")
    ran = []

    def run(job):
        ran.append(job.checkpoint.name)
        if job.checkpoint.name == "broken":
            raise RuntimeError("no weights")
        if job.checkpoint.name == "step-000001":
            # The later checkpoint is saved while the earlier one is scored.
            threading.Timer(0.05, (tmp_path / "step-000002" / TRAINING_STATE_FILE).touch).start()

    monkeypatch.setattr(offline_model._ScoreJob, "run", run)
    offline_model._score_in_tail(os.getpid(), jobs)
    assert ran == ["step-000001", "broken", "step-000002"]


def test_the_readout_is_the_best_on_the_validation_split_and_the_first_listed_on_a_tie(tmp_path, monkeypatch):
    from mpg_sam2.evaluation.aggregate import MeanScores

    choices = tuple({"object_score_threshold": bar, "component_prior_ratio": 0.8} for bar in (0.0, 1.0, 2.0, 3.0))
    validation = {0.0: 0.60, 1.0: 0.65, 2.0: 0.65, 3.0: 0.62}
    monkeypatch.setattr(offline_recipe, "READOUT_CHOICES", choices)
    monkeypatch.setattr(offline_model, "_score_all", lambda jobs: None)
    monkeypatch.setattr(offline_model, "_score", lambda checkpoint, data, name, split, readout: {
        "overall": MeanScores(0.0, 0.0, validation[readout["object_score_threshold"]], 10)})
    readout, scores = offline_model._select_readout(tmp_path / "data", tmp_path / "step-000001")
    assert readout == choices[1] and scores == [0.60, 0.65, 0.65, 0.62]
