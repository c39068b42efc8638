"""The bundled offline model: data, training, ablations, evaluation and model card, one command.

    python -m mpg_sam2.training.offline_model --work runs/offline --out checkpoints/offline

1. generates the synthetic benchmark (seed 0: 400 train / 40 valid / 60 test clips) in
   ``WORK/data`` unless it is there already;
2. warms up the grounding path (BEiT-3 and the mask prior generator on the prior loss alone,
   :mod:`mpg_sam2.training.prior_warmup`) from random weights in the stages of
   :data:`WARMUP_STAGES`, each in ``WORK/prior_warmup/stage-<n>`` and continuing from the one
   before. Trained whole from random weights, the network learns to segment and track *an*
   object and stops reading the caption before it learns to read it; after the warm-up the
   prior already picks the described object more often than chance;
3. trains the whole ``nano`` model from the warm-up checkpoint with :data:`RECIPE` in
   ``WORK/main`` to ``--steps`` and scores every saved checkpoint on the validation split; the
   best one is the bundled model (the learning rate is constant, so consecutive checkpoints
   differ by several points of J&F);
4. trains the three ablations of the paper's Table 3 (no mask prior as dense prompt, no
   aggregator, neither) from the same checkpoint with the same recipe, seed and
   ``--ablation-steps`` in ``WORK/abl_*``, and scores all four at that step on the test split;
5. copies the final weights and tokenizer to ``--out`` and writes ``evaluation.json`` and a model
   card (``README.md``) with the test-split J&F overall and per expression type next to the
   random-object reference, the ablation table, and the J&F on a small regression set (other
   seed) that a regression test can regenerate and check.

Every stage resumes: runs continue from their newest checkpoint, finished runs (and a finished
warm-up) are not touched, so rerunning the command after an interruption (or to only rewrite the
card) is cheap. An interrupted warm-up starts again.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpg_sam2.checkpoint.evaluation import EVALUATION_FILE, GROUNDING_MARGIN
from mpg_sam2.evaluation.aggregate import MeanScores

__all__ = ["ABLATIONS", "DATA", "RECIPE", "REGRESSION_SET", "WARMUP_STAGES", "build_offline_model", "main", "regression_dataset"]

# The benchmark the model is trained and tested on.
DATA = {"seed": 0, "train": 400, "val": 40, "test": 60}
# A second, small test split (other seed: clips the model never saw) for the CI regression test.
REGRESSION_SET = {"seed": 1, "test": 12}
# Warm-up settings (python -m mpg_sam2.training.prior_warmup flags), from random weights: batches
# of 4 whole videos (every expression of a video on the same 2 frames, so a prior that ignores the
# caption can fit only one of them). A later stage continues from the one before (--init-from)
# with a fresh optimizer; its seed gives it a new data order.
WARMUP_STAGES: list[dict[str, Any]] = [{
    "dataset": "synthetic",
    "preset": "nano",
    "steps": 1900,
    "batch_size": 4,
    "frames": 2,
    "lr": 5e-4,
    "weight_decay": 5e-4,
    "grad_clip": 1.0,
    "seed": 0,
    "by_video": True,
    "threads": 2,
    "val_every": 100,
    "val_expressions": 40,
}]
# Training settings (python -m mpg_sam2 train flags), from the warm-up checkpoint. SAM 2 starts
# from random weights, so its image encoder trains too and the object-score and prior losses are on.
RECIPE: dict[str, Any] = {
    "dataset": "synthetic",
    "preset": "nano",
    "frames": 4,
    "train_image_encoder": True,
    "lr": 2e-4,
    "lr_fusion": 2e-4,
    "object_score_loss": 1.0,
    "prior_loss": 1.0,
    "seed": 0,
    "threads": 1,
    "val_every": 500,
    "val_expressions": 40,
    "save_every": 500,
    "keep_last": 40,
    "log_every": 100,
}
# Run folder -> (no_mask_prior, no_aggregator), in the order of the paper's Table 3.
ABLATIONS = {
    "abl_baseline": (True, True),
    "abl_mpg": (False, True),
    "abl_hga": (True, False),
    "main": (False, False),
}
ROW_NAMES = {"abl_baseline": "baseline (SAM 2 + text prompt)", "abl_mpg": "+ MPG", "abl_hga": "+ HGA", "main": "+ MPG + HGA"}


def regression_dataset(root: str | Path) -> Path:
    """Write (or reuse) the regression clips under ``root``; returns ``root``."""
    from mpg_sam2.data.synthetic import write_dataset

    root = Path(root)
    if not (root / "synthetic_info.json").exists():
        write_dataset(root, seed=REGRESSION_SET["seed"], train=0, val=0, test=REGRESSION_SET["test"])
    return root


def _dataset(root: Path) -> Path:
    from mpg_sam2.data.synthetic import write_dataset

    info = root / "synthetic_info.json"
    if info.exists():
        meta = json.loads(info.read_text(encoding="utf-8"))
        counts = {split: meta["splits"][name]["videos"] for split, name in (("train", "train"), ("val", "valid"), ("test", "test"))}
        if meta["seed"] != DATA["seed"] or counts != {k: DATA[k] for k in counts}:
            raise ValueError(f"{root} holds another synthetic dataset (seed {meta['seed']}, {counts}); use a fresh --work folder")
        return root
    print(f"generating the synthetic benchmark in {root}", flush=True)
    return write_dataset(root, seed=DATA["seed"], train=DATA["train"], val=DATA["val"], test=DATA["test"])


def _step(checkpoint: Path) -> int:
    return int(checkpoint.name.split("-")[1])  # step-000500 -> 500


def _step_of(run: Path) -> int:
    from mpg_sam2.training.checkpointing import checkpoint_dirs

    found = checkpoint_dirs(run) if run.is_dir() else []
    return _step(found[-1]) if found else 0


def _stage_folders(folder: Path) -> list[Path]:
    return [folder / f"stage-{n}" for n in range(1, len(WARMUP_STAGES) + 1)]


def _warm_up(data: Path, folder: Path) -> Path:
    """The last warm-up stage's checkpoint; stages that finished with the same settings are kept."""
    from mpg_sam2.training.prior_warmup import PriorWarmupConfig, warm_up_prior

    previous = None
    for stage, stage_folder in zip(WARMUP_STAGES, _stage_folders(folder)):
        final = stage_folder / "final"
        settings = final / "prior_warmup_args.json"
        if settings.is_file():
            saved = json.loads(settings.read_text(encoding="utf-8"))
            differ = {k: saved.get(k) for k in stage if saved.get(k) != stage[k]}
            if differ:
                raise ValueError(f"{stage_folder} holds a warm-up with other settings ({differ}); use a fresh --work folder")
        else:
            print(f"warming up BEiT-3 and the mask prior generator in {stage_folder}", flush=True)
            warm_up_prior(PriorWarmupConfig(data=data, out=stage_folder, init_from=previous, **stage))
        previous = final
    return previous


def _warm_up_seconds(folder: Path) -> float:
    """Wall time of all warm-up stages (each log's last cumulative time, validation included)."""
    total = 0.0
    for stage_folder in _stage_folders(folder):
        lines = (stage_folder / "log.jsonl").read_text(encoding="utf-8").splitlines()
        total += float(json.loads(lines[-1])["seconds"]) if lines else 0.0
    return total


def _train(data: Path, run: Path, steps: int, no_mask_prior: bool, no_aggregator: bool, init_from: Path) -> Path:
    from mpg_sam2.training.checkpointing import checkpoint_name
    from mpg_sam2.training.trainer import TrainConfig, train

    if _step_of(run) < steps:
        resume = run if _step_of(run) else None
        config = TrainConfig(data=data, out=run, steps=steps, no_mask_prior=no_mask_prior, no_aggregator=no_aggregator,
                             resume=resume, init_from=init_from, **RECIPE)
        train(config)
    checkpoint = run / checkpoint_name(steps)
    if not checkpoint.is_dir():
        raise FileNotFoundError(f"{checkpoint} is missing (was it pruned? keep_last is {RECIPE['keep_last']})")
    return checkpoint


def _select_checkpoint(data: Path, run: Path, steps: int) -> tuple[int, dict[int, float]]:
    """The step whose checkpoint scores the best J&F on the validation split (the earliest on a
    tie), and the validation J&F of every checkpoint of ``run`` up to ``steps``."""
    from mpg_sam2.training.checkpointing import checkpoint_dirs

    scores = {}
    for checkpoint in checkpoint_dirs(run):
        step = _step(checkpoint)
        if step <= steps:
            print(f"scoring {run.name} step {step} on the validation split", flush=True)
            scores[step] = _score(checkpoint, data, "valid", split="valid")["overall"].jf
    best = max(scores.items(), key=lambda item: (item[1], -item[0]))[0]
    return best, scores


def _training_seconds(run: Path, steps: int) -> float:
    """Sum of the logged step times up to ``steps`` (validation and saving excluded)."""
    seconds = {}
    for line in (run / "log.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        seconds[record["step"]] = record["seconds"]  # a resumed run may log a step twice
    return sum(s for step, s in seconds.items() if step <= steps)


def _score(checkpoint: Path, data: Path, name: str, split: str = "test") -> dict[str, MeanScores]:
    """Scores by expression type, kept in ``checkpoint/scores_<name>.json`` (a checkpoint never
    changes, so a rerun reads them back instead of segmenting the split again)."""
    from mpg_sam2.evaluation.synthetic_report import evaluate_synthetic
    from mpg_sam2.checkpoint.pretrained import load_pretrained

    cache = checkpoint / f"scores_{name}.json"
    if cache.is_file():
        rows = json.loads(cache.read_text(encoding="utf-8"))
        return {k: MeanScores(v["J"], v["F"], v["J&F"], v["expressions"]) for k, v in rows.items()}
    pretrained = load_pretrained(checkpoint)
    rows = evaluate_synthetic(pretrained.model, pretrained.tokenizer, data, split).by_type
    cache.write_text(json.dumps(_as_json(rows), indent=1) + "\n", encoding="utf-8")
    return rows


def _as_json(rows: dict[str, MeanScores]) -> dict[str, dict[str, float]]:
    # Unrounded: the card prints these with 3 decimals and the tests compare the two.
    return {name: {"J": s.j, "F": s.f, "J&F": s.jf, "expressions": s.count} for name, s in rows.items()}


@dataclass
class OfflineModelReport:
    steps: int
    selected_step: int  # the bundled checkpoint, chosen on the validation split
    validation: dict[int, float]  # validation J&F of every checkpoint of the main run
    warmup_seconds: float
    training_seconds: float
    test: dict[str, MeanScores]
    chance: dict[str, MeanScores]  # segmenting a random object of the clip (no language)
    regression: MeanScores
    ablation_steps: int | None = None
    ablations: dict[str, dict[str, MeanScores]] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "data": DATA,
            "warmup_stages": WARMUP_STAGES,
            "recipe": RECIPE,
            "steps": self.steps,
            "selected_step": self.selected_step,
            "validation_jf": {str(step): jf for step, jf in self.validation.items()},
            "warmup_seconds": round(self.warmup_seconds),
            "training_seconds": round(self.training_seconds),
            "test": _as_json(self.test),
            "test_random_object": _as_json(self.chance),
            "regression_set": {**REGRESSION_SET, **_as_json({"overall": self.regression})["overall"]},
        }
        if self.ablations is not None:
            out["ablation_steps"] = self.ablation_steps
            out["ablations"] = {name: _as_json(rows) for name, rows in self.ablations.items()}
        return out


def _verdict(report: OfflineModelReport) -> str:
    model, chance = report.test["overall"].jf, report.chance["overall"].jf
    if model < chance + GROUNDING_MARGIN:
        return (f"**It does not understand the sentence yet.** On the test split it scores J&F {model:.3f}, the level of "
                f"segmenting a random object of the clip ({chance:.3f}): it finds, segments and tracks shapes, but the "
                "text does not decide which. Use it to try the app and the pipeline offline, not to judge the method.")
    verdict = (f"**It reads the sentence, far from perfectly.** On the test split it scores J&F {model:.3f}, "
               f"{model - chance:.3f} above segmenting a random object of the clip perfectly ({chance:.3f}).")
    types = [t for t in report.test if t != "overall" and t in report.chance]
    behind = [t for t in types if report.test[t].jf < report.chance[t].jf + GROUNDING_MARGIN]
    if behind:
        verdict += " Not yet above that level on: " + ", ".join(
            f"{t} expressions ({report.test[t].jf:.3f} against {report.chance[t].jf:.3f})" for t in behind) + "."
    return verdict


def _warm_up_line(seconds: float) -> str:
    first = WARMUP_STAGES[0]
    steps = " + ".join(str(stage["steps"]) for stage in WARMUP_STAGES)
    stages = f" in {len(WARMUP_STAGES)} stages (each a fresh optimizer and data order)" if len(WARMUP_STAGES) > 1 else ""
    return (f"- warm-up from random weights (`mpg_sam2.training.prior_warmup`): {steps} AdamW steps{stages} on BEiT-3 "
            f"and the mask prior generator alone,\n  batches of {first['batch_size']} whole videos (every expression of a "
            f"video on the same {first['frames']} frames), lr {first['lr']:g},\n  focal + dice on the prior only; "
            f"{seconds / 60:.0f} min on the 2-core CPU")


def _card(report: OfflineModelReport, command: str) -> str:
    from mpg_sam2.evaluation.synthetic_report import format_table

    lines = [
        "---",
        "license: apache-2.0",
        "tags: [referring-video-object-segmentation, mpg-sam2, synthetic]",
        "---",
        "# MPG-SAM 2 `nano`, trained on the synthetic benchmark",
        "",
        "The offline model the app offers when no released checkpoint can be downloaded. It is",
        "the whole MPG-SAM 2 architecture (BEiT-3, mask prior generator, SAM 2 with the global-historical",
        "aggregator) at the `nano` size (5.7 M parameters) trained from random weights on the package's",
        "synthetic clips of moving shapes. **It knows only that world** (shapes, colours, sizes, textures,",
        "simple motions, the benchmark's 38 words); on real videos its masks mean nothing.",
        "",
        _verdict(report),
        "",
        "## Training",
        "",
        f"- data: `python -m mpg_sam2.data.synthetic` with seed {DATA['seed']}: {DATA['train']} train / "
        f"{DATA['val']} valid / {DATA['test']} test clips of 8 frames at 256 x 256, up to 4 expressions each",
        _warm_up_line(report.warmup_seconds),
        f"- then the whole model from the warm-up checkpoint: {report.steps} AdamW steps of one {RECIPE['frames']}-frame clip, lr {RECIPE['lr']:g} for every group, the image encoder",
        "  trained (from scratch), focal 2 + dice 5 + sim 2 (the paper's losses) plus an object-score BCE and",
        "  focal + dice on the mask prior (weight 1 each; a model trained from scratch needs them, see",
        "  `mpg_sam2.training.losses.LossWeights`), seed 0, float32 on one CPU thread",
        f"- training time: {report.training_seconds / 3600:.2f} h of step time on one core of a 2-core CPU "
        "(validation and checkpoints excluded), after the warm-up",
        f"- the bundled weights are step {report.selected_step}, the checkpoint with the best J&F on the validation split "
        f"({DATA['val']} clips;",
        "  " + ", ".join(f"{step}: {jf:.3f}" for step, jf in report.validation.items()) + ")",
        f"- reproduce everything on this card: `{command}`",
        "",
        f"## Test split ({DATA['test']} clips, never seen in training)",
        "",
        format_table(report.test, "expression type"),
        "",
        "For reference, segmenting a random object of each clip perfectly (no language understanding):",
        "",
        format_table(report.chance, "expression type"),
        "",
        f"Regression set (seed {REGRESSION_SET['seed']}, {REGRESSION_SET['test']} test clips, for "
        f"the regression test): J&F {report.regression.jf:.3f} over {report.regression.count} expressions.",
    ]
    if report.ablations is not None:
        lines += [
            "",
            f"## Ablation (paper's Table 3 shape; every row {report.ablation_steps} steps from the same warm-up checkpoint, "
            "same data order and seed)",
            "",
            "| model | MPG | HGA | J | F | J&F | appearance J&F | motion J&F | relation J&F | time J&F |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, rows in report.ablations.items():
            no_prior, no_agg = ABLATIONS[name]
            o = rows["overall"]
            per_type = " | ".join(f"{rows[t].jf:.3f}" if t in rows else "-" for t in ("appearance", "motion", "relation", "time"))
            lines.append(f"| {ROW_NAMES[name]} | {'' if no_prior else 'x'} | {'' if no_agg else 'x'} | "
                         f"{o.j:.3f} | {o.f:.3f} | {o.jf:.3f} | {per_type} |")
        chance = report.chance["overall"].jf
        if all(rows["overall"].jf < chance + GROUNDING_MARGIN for rows in report.ablations.values()):
            lines += ["", f"At this budget no row is clearly above the random-object level ({chance:.3f})."]
        steps = sorted(report.validation)
        swing = max((abs(report.validation[b] - report.validation[a]) for a, b in zip(steps, steps[1:])), default=None)
        if swing is not None:
            lines += ["", f"For scale: consecutive checkpoints of the full run differ by up to {swing:.3f} in validation "
                          "J&F (constant learning rate, one seed), so smaller differences between rows are not evidence "
                          "for or against MPG or HGA."]
        lines += [
            "",
            "Without MPG, SAM 2 gets its learned no-mask embedding as the dense prompt (the generator still",
            "runs: its global context feeds the aggregator); without HGA the image embedding and mask tokens",
            "reach SAM 2's two-way transformer unchanged. The text reaches SAM 2 in every row as the sparse prompt.",
        ]
    return "\n".join(lines) + "\n"


def build_offline_model(work: Path, out: Path, steps: int, ablation_steps: int | None, command: str) -> OfflineModelReport:
    """Runs every stage that is not done yet (see the module docstring); returns what the card states."""
    from mpg_sam2.evaluation.synthetic_report import chance_level
    from mpg_sam2.checkpoint.pretrained import load_pretrained, save_pretrained
    from mpg_sam2.training.checkpointing import checkpoint_name

    work = Path(work)
    data = _dataset(work / "data")
    warm = _warm_up(data, work / "prior_warmup")
    ablations = None
    if ablation_steps is not None:
        if ablation_steps > steps:
            raise ValueError(f"--ablation-steps ({ablation_steps}) must not exceed --steps ({steps}): the full model's row is its step-{ablation_steps} checkpoint")
        # The full model's row is its own checkpoint at the ablation budget (constant learning rate).
        for name, (no_prior, no_agg) in ABLATIONS.items():
            if name != "main":
                _train(data, work / name, ablation_steps, no_prior, no_agg, warm)
    _train(data, work / "main", steps, False, False, warm)
    selected, validation = _select_checkpoint(data, work / "main", steps)
    final = work / "main" / checkpoint_name(selected)
    if ablation_steps is not None:
        ablations = {}
        for name in ABLATIONS:
            print(f"scoring {name} at step {ablation_steps} on the test split", flush=True)
            ablations[name] = _score(work / name / checkpoint_name(ablation_steps), data, "test")

    print(f"scoring the selected checkpoint (step {selected}) on the test split", flush=True)
    test = _score(final, data, "test")
    regression = _score(final, regression_dataset(work / "regression"), "regression")["overall"]
    report = OfflineModelReport(steps, selected, validation, _warm_up_seconds(work / "prior_warmup"), _training_seconds(work / "main", steps),
                                test, chance_level(data), regression, ablation_steps, ablations)

    pretrained = load_pretrained(final)
    save_pretrained(pretrained.model, out, pretrained.tokenizer, overwrite=True)
    (out / EVALUATION_FILE).write_text(json.dumps(report.to_json(), indent=1) + "\n", encoding="utf-8")
    (out / "README.md").write_text(_card(report, command), encoding="utf-8")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mpg_sam2.training.offline_model", description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("runs/offline"), help="data and training runs (default runs/offline)")
    parser.add_argument("--out", type=Path, default=Path("checkpoints/offline"), help="where the bundled model goes")
    parser.add_argument("--steps", type=int, default=5000, help="training steps of the bundled model (default 5000)")
    parser.add_argument("--ablation-steps", type=int, default=1000, help="steps of each ablation row (default 1000)")
    parser.add_argument("--no-ablations", action="store_true", help="skip the ablation runs and table")
    args = parser.parse_args(argv)
    command = f"python -m mpg_sam2.training.offline_model --steps {args.steps}" + (
        " --no-ablations" if args.no_ablations else f" --ablation-steps {args.ablation_steps}")
    start = time.perf_counter()
    report = build_offline_model(args.work, args.out, args.steps, None if args.no_ablations else args.ablation_steps, command)
    from mpg_sam2.evaluation.synthetic_report import format_table

    print(format_table(report.test, "test split"))
    print(f"regression set J&F {report.regression.jf:.3f}; wrote {args.out} ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
