"""The report of a build of the offline model and the model card written from it.

:class:`OfflineModelReport` holds what :func:`~mpg_sam2.training.offline_model.build_offline_model`
measured; ``to_json`` is the bundle's ``evaluation.json`` and :func:`model_card` its
``README.md``, which states exactly those numbers (the tests compare the two).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from mpg_sam2.evaluation.aggregate import MeanScores
from mpg_sam2.evaluation.paired_bootstrap import PairedDifference
from mpg_sam2.checkpoint.evaluation import GROUNDING_MARGIN
from mpg_sam2.config import get_preset
from mpg_sam2.training import offline_recipe as recipe
from mpg_sam2.training.ablation_table import AblationRow

__all__ = ["ClickScores", "OfflineModelReport", "model_card", "scores_json", "verdict"]

ROW_NAMES = {"abl_baseline": "baseline (SAM 2 + text prompt)", "abl_mpg": "+ MPG", "abl_hga": "+ HGA", "main": "+ MPG + HGA"}


def scores_json(rows: dict[str, MeanScores]) -> dict[str, dict[str, float]]:
    # Unrounded: the card prints these with 3 decimals and the tests compare the two.
    return {name: {"J": s.j, "F": s.f, "J&F": s.jf, "expressions": s.count} for name, s in rows.items()}


def _rows(data: dict[str, dict[str, float]]) -> dict[str, MeanScores]:
    return {k: MeanScores(v["J"], v["F"], v["J&F"], v["expressions"]) for k, v in data.items()}


@dataclass(frozen=True)
class ClickScores:
    """The simulated-click protocol on the test split (mpg_sam2.evaluation.simulated_clicks)."""

    after: dict[int, dict[str, MeanScores]]  # clicks per expression -> scores by expression type
    gains: list[dict[str, PairedDifference]]  # gains[k - 1]: J&F after k clicks minus none, by type

    def to_json(self) -> dict[str, Any]:
        return {"after": {str(n): scores_json(rows) for n, rows in self.after.items()},
                "gains": [{name: dataclasses.asdict(g) for name, g in rows.items()} for rows in self.gains]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ClickScores":
        return cls({int(n): _rows(rows) for n, rows in data["after"].items()},
                   [{name: PairedDifference(**g) for name, g in rows.items()} for rows in data["gains"]])


@dataclass
class OfflineModelReport:
    steps: int
    selected_step: int  # the bundled checkpoint, chosen on the validation split
    validation: dict[int, float]  # validation J&F of every checkpoint of the main run
    warmup_seconds: float  # logged step time of all warm-up stages (validation and saving excluded)
    training_seconds: float  # the same for the main run up to ``steps``
    test: dict[str, MeanScores]
    chance: dict[str, MeanScores]  # segmenting a random object of the clip (no language)
    regression: MeanScores
    ablation_steps: int | None = None
    ablations: dict[str, AblationRow] | None = None  # by row of recipe.ABLATIONS, over recipe.ABLATION_SEEDS
    # The click fine-tuning (recipe.CLICK_STAGE) after the selected checkpoint; None without it.
    click_steps: int | None = None
    click_seconds: float | None = None  # its logged step time
    click_validation: dict[int, float] | None = None  # validation J&F (no clicks) of its checkpoints
    before_clicks_test: dict[str, MeanScores] | None = None  # the selected checkpoint on the test split
    # Simulated-click protocol on the test split, clicks painting the prior at
    # recipe.CLICK_RADIUS: for the bundled model, and for the selected checkpoint before the
    # click fine-tuning (with it only).
    clicks: ClickScores | None = None
    clicks_before_tuning: ClickScores | None = None
    # The bundled model on the test splits of recipe.HELD_OUT's seeds (never trained or selected
    # on), and segmenting a random object of those clips; by seed, then expression type.
    held_out: dict[int, dict[str, MeanScores]] | None = None
    held_out_chance: dict[int, dict[str, MeanScores]] | None = None
    # The bundled weights on the test split with SAM 2's own masks (the default readout), when
    # the bundle reads its masks out otherwise (``readout``).
    test_own_masks: dict[str, MeanScores] | None = None
    # The bundle's MaskReadoutConfig fields, chosen among recipe.READOUT_CHOICES on the validation
    # split, and the validation J&F of each choice (in that order).
    readout: dict[str, float] | None = None
    readout_validation: list[float] | None = None
    parameters: int | None = None  # the bundled model's parameter count

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "data": recipe.DATA,
            "warmup_stages": recipe.WARMUP_STAGES,
            "recipe": recipe.RECIPE,
            "steps": self.steps,
            "selected_step": self.selected_step,
            "validation_jf": {str(step): jf for step, jf in self.validation.items()},
            "warmup_seconds": round(self.warmup_seconds),
            "training_seconds": round(self.training_seconds),
            "test": scores_json(self.test),
            "test_random_object": scores_json(self.chance),
            "regression_set": {**recipe.REGRESSION_SET, **scores_json({"overall": self.regression})["overall"]},
        }
        if self.parameters is not None:
            out["parameters"] = self.parameters
        if self.readout is not None:
            out["readout"] = self.readout
        if self.readout_validation is not None:
            out["readout_validation"] = [{**choice, "J&F": jf} for choice, jf in zip(recipe.READOUT_CHOICES, self.readout_validation)]
        if self.test_own_masks is not None:
            out["test_sam2_masks"] = scores_json(self.test_own_masks)
        if self.click_seconds is not None:
            out["click_stage"] = {**recipe.CLICK_STAGE, "steps": self.click_steps}
            out["click_seconds"] = round(self.click_seconds)
            out["click_validation_jf"] = {str(step): jf for step, jf in (self.click_validation or {}).items()}
        if self.before_clicks_test is not None:
            out["test_before_click_tuning"] = scores_json(self.before_clicks_test)
        if self.clicks is not None:
            out["click_radius"] = recipe.CLICK_RADIUS
        for key, runs in (("test_clicks", self.clicks), ("test_clicks_before_tuning", self.clicks_before_tuning)):
            if runs is not None:
                out[key] = runs.to_json()
        if self.held_out is not None:
            out["held_out"] = {str(seed): {"test": scores_json(rows), "test_random_object": scores_json(self.held_out_chance[seed])}
                               for seed, rows in self.held_out.items()}
        if self.ablations is not None:
            out["ablation_steps"] = self.ablation_steps
            out["ablation_seeds"] = list(recipe.ABLATION_SEEDS)
            out["ablations"] = {name: row.to_json() for name, row in self.ablations.items()}
        return out


def verdict(report: OfflineModelReport) -> str:
    """The card's first sentence: does the model read the sentence, judged against the random-object level."""
    model, chance = report.test["overall"].jf, report.chance["overall"].jf
    if model < chance + GROUNDING_MARGIN:
        return (f"**It does not understand the sentence yet.** On the test split it scores J&F {model:.3f}, the level of "
                f"segmenting a random object of the clip ({chance:.3f}): it finds, segments and tracks shapes, but the "
                "text does not decide which. Use it to try the app and the pipeline offline, not to judge the method.")
    text = (f"**It reads the sentence, far from perfectly.** On the test split it scores J&F {model:.3f}, "
            f"{model - chance:.3f} above segmenting a random object of the clip perfectly ({chance:.3f}).")
    types = [t for t in report.test if t != "overall" and t in report.chance]
    behind = [t for t in types if report.test[t].jf < report.chance[t].jf + GROUNDING_MARGIN]
    if behind:
        text += " Not yet above that level on: " + ", ".join(
            f"{t} expressions ({report.test[t].jf:.3f} against {report.chance[t].jf:.3f})" for t in behind) + "."
    return text


def _rate(settings: dict[str, Any]) -> str:
    """``lr 0.0005``, with its schedule and initialisation where they are not the defaults."""
    text = f"lr {settings['lr']:g}"
    if settings.get("lr_schedule", "constant") != "constant":
        text += f" ({settings['lr_schedule']} decay to 0 after {settings.get('warmup_steps', 0)} linear warm-up steps)"
    elif settings.get("warmup_steps", 0):
        text += f" (constant after {settings['warmup_steps']} linear warm-up steps)"
    if settings.get("embedding_init", "default") == "small":
        text += ", BEiT-3's embeddings drawn from N(0, 0.02)"
    return text


def _warm_up_line(seconds: float) -> str:
    first = recipe.WARMUP_STAGES[0]
    steps = " + ".join(str(stage["steps"]) for stage in recipe.WARMUP_STAGES)
    stages = f" in {len(recipe.WARMUP_STAGES)} stages (each a fresh optimizer and data order)" if len(recipe.WARMUP_STAGES) > 1 else ""
    return (f"- warm-up from random weights (`mpg_sam2.training.prior_warmup`): {steps} AdamW steps{stages} on BEiT-3 "
            f"and the mask prior generator alone,\n  batches of {first['batch_size']} whole videos (every expression of a "
            f"video on the same {first['frames']} frames), {_rate(first)},\n  focal + dice on the prior{_head_losses(first)}; "
            f"{seconds / 60:.0f} min of step time on the 2-core CPU")


def _main_stage_lines(report: OfflineModelReport) -> list[str]:
    """The whole-model stage as :data:`recipe.RECIPE` has it: what trains and on which losses."""
    settings = recipe.RECIPE
    if settings.get("train_scope", "all") == "sam2":
        what = ("SAM 2 with the aggregator and the text projections, its image encoder from scratch; BEiT-3 and the "
                "mask prior generator keep the warm-up's weights (`--train-scope sam2`)")
    else:
        what = "the whole model, the image encoder from scratch"
    extra = [f"an object-score BCE (weight {settings['object_score_loss']:g})"] if settings.get("object_score_loss") else []
    if settings.get("prior_loss"):
        extra.append(f"focal + dice on the mask prior (weight {settings['prior_loss']:g})")
    losses = "focal 2 + dice 5 + sim 2 (the paper's losses)"
    if extra:
        # Not the authors' terms: say why they are there.
        losses += (" plus " + " and ".join(extra) + ", which a model trained from scratch needs "
                   "(`mpg_sam2.training.losses.LossWeights`)")
    clip = f"one {settings['frames']}-frame clip"
    if settings.get("frame_sampling") == "span":
        clip += " (the video's first and last frame and random ones between, `--frame-sampling span`)"
    return [
        f"- then from the warm-up checkpoint: {report.steps} AdamW steps of {clip}, "
        f"{_rate(settings)} for every group;",
        f"  trained: {what};",
        f"  {losses}; seed {settings['seed']}, float32 on one CPU thread",
    ]


def _head_losses(stage: dict) -> str:
    """The warm-up's training-time head losses, as the card words them (" only" without any)."""
    parts = []
    if stage.get("attribute_loss"):
        parts.append(f"{stage['attribute_loss']:g} x a per-patch attribute loss\n  (colour, shape, size, texture and objectness "
                     "of the object under each BEiT-3 patch, from the synthetic benchmark's object table;\n  "
                     "`mpg_sam2.training.attribute_loss`, a training-time head that the bundle does not hold)")
    if stage.get("caption_loss"):
        parts.append(f"{stage['caption_loss']:g} x a caption loss\n  (the caption's template and the words describing its "
                     "target and reference, said by a head on BEiT-3's class token of each frame;\n  "
                     "`mpg_sam2.training.caption_loss`, a training-time head that the bundle does not hold)")
    if stage.get("motion_loss"):
        parts.append(f"{stage['motion_loss']:g} x a motion loss\n  (the motion of the object under each patch, said by a head on "
                     "the space-time layer's tokens;\n  `mpg_sam2.training.motion_loss`, a training-time head that the "
                     "bundle does not hold)")
    return " plus " + "\n  and ".join(parts) if parts else " only"


def _architecture_lines(readout: dict[str, float] | None = None) -> list[str]:
    """Where the bundle's architecture departs from the paper's (config fields the recipe turns
    on, and the build's ``readout``)."""
    lines = []
    if any(stage.get("motion_features") for stage in recipe.WARMUP_STAGES):
        lines += [
            "Not in the paper: its mask prior generator also reads patch motion, measured by soft correspondence",
            "of each BEiT-3 patch with the neighbouring frames' and added to the patches before the space-time",
            "layer (`mask_prior.motion_features` in its config.json, `mpg_sam2.model.patch_motion`; off for the",
            "release presets, whose layout is the authors').",
        ]
    stems = {tuple(stage["conv_stem"]) for stage in recipe.WARMUP_STAGES if stage.get("conv_stem")}
    if stems:
        widths = ", ".join(" / ".join(str(c) for c in stem) for stem in sorted(stems))
        lines += [
            f"Not in BEiT-3{' either' if lines else ''}: beside its linear 16 px patch projection, its BEiT-3 has a small convolutional",
            f"stem (3 x 3 stride-2 convolutions, {widths} channels, then one to its width) whose output is added",
            "to each patch token, so a patch also sees the 31 px around it and a small object's shape",
            "(`beit3.conv_stem` in its config.json, `mpg_sam2.model.conv_stem`; off for the release presets).",
        ]
    readout = readout or {}
    if any(readout.values()):
        lines += [
            f"Not in the paper{' either' if lines else ''}: its masks are read out as its config.json's `readout` section says",
            "(chosen on the validation split; the output masks only, not SAM 2's memory; off for the release presets):",
        ]
    if readout.get("object_score_threshold"):
        lines.append(f"- a frame's mask is empty unless SAM 2's object score exceeds {readout['object_score_threshold']:g} "
                     "(SAM 2's own gate is 0);")
    if readout.get("component_prior_ratio"):
        lines += [
            "- each frame's mask keeps only its connected parts whose mean mask prior is at least "
            f"{readout['component_prior_ratio']:g} of the best part's,",
            "  since its SAM 2 paints every object the prior lights (`mpg_sam2.pipeline.prior_components`).",
        ]
    return lines


def _readout_choice_lines(report: OfflineModelReport) -> list[str]:
    """Which mask readout the build chose on the validation split, against the others."""
    if report.readout_validation is None or report.readout not in recipe.READOUT_CHOICES:
        return []
    chosen = list(recipe.READOUT_CHOICES).index(report.readout)
    others = [f"{c['object_score_threshold']:g} / {c['component_prior_ratio']:g}: {jf:.3f}"
              for c, jf in zip(recipe.READOUT_CHOICES, report.readout_validation)]
    return [f"- the mask readout (object-score bar / share of the best part's prior; 0 / 0 is SAM 2's own masks) is the",
            f"  best of {len(others)} on the validation split, {others[chosen]} (" + ", ".join(o for k, o in enumerate(others) if k != chosen) + ")"]


def _own_mask_lines(report: OfflineModelReport) -> list[str]:
    if report.test_own_masks is None:
        return []
    types = [t for t in ("overall", "appearance", "motion", "relation", "time") if t in report.test_own_masks]
    return ["", "The same weights with SAM 2's own masks (the default `readout`), J&F: " + ", ".join(
        f"{t} {report.test_own_masks[t].jf:.3f}" for t in types) + "."]


def _click_stage_lines(report: OfflineModelReport) -> list[str]:
    if report.click_seconds is None:
        return [f"- the bundled weights are step {report.selected_step}"]
    stage = recipe.CLICK_STAGE
    lines = [
        f"- then the click fine-tuning from step {report.selected_step} (`mpg_sam2.training.click_training`): "
        f"{report.click_steps} steps of one {stage['frames']}-frame clip,",
        f"  lr {stage['lr']:g}, the same losses; on {stage['click_probability']:.0%} of the clips one random frame is "
        f"corrected by {stage['clicks_per_frame']} simulated clicks that also paint its prior (radius {stage['click_radius']:g})",
        "  (each drawn uniformly from the error left by the ones before, as SAM 2's training does) and the clip is",
        f"  tracked on from the corrected memory; {report.click_seconds / 3600:.2f} h of step time on one core",
    ]
    if report.click_validation:
        lines.append("  (validation J&F without clicks, on the expressions the run validates on: " + ", ".join(
            f"{step}: {jf:.3f}" for step, jf in report.click_validation.items()) + ")")
    lines.append(f"- the bundled weights are the click fine-tuning's last step ({report.click_steps})")
    return lines


def _click_rows(scores: ClickScores, types: list[str]) -> list[str]:
    lines = ["| clicks | " + " | ".join(types) + " |", "|---|" + "---|" * len(types)]
    for n, rows in scores.after.items():
        lines.append(f"| {n} | " + " | ".join(f"{rows[t].jf:.3f}" for t in types) + " |")
    for n, rows in enumerate(scores.gains, start=1):
        lines.append(f"| gain after {n} | " + " | ".join(str(rows[t]) for t in types) + " |")
    return lines


def _click_table_lines(report: OfflineModelReport) -> list[str]:
    if report.clicks is None:
        return []
    types = [t for t in report.clicks.after[0] if t in report.chance]
    grid = get_preset(recipe.RECIPE["preset"]).beit3.grid_size
    lines = [
        "",
        "## Correcting with clicks (test split, simulated clicks)",
        "",
        ("Its SAM 2 decoder never learned points (it was trained on captions alone), so a click also sets a"
         if report.click_seconds is None else
         "Its SAM 2 decoder learned points only in the click fine-tuning above, so a click also sets a"),
        f"disk of {recipe.CLICK_RADIUS:g} cells of the clicked frame's {grid} x {grid} mask prior to 1 (positive) or 0 (negative)",
        "(`mask_prior.click_radius` in its config.json; not in the paper, 0 for the release presets).",
        "Per expression: click at the centre of the largest error region of the worst frame (positive on a",
        "missed part, negative on a false one), track the video again from that frame both ways, repeat",
        "(`python -m mpg_sam2.evaluation.synthetic_report --clicks 3`). J&F after each number of clicks, and",
        "the gain over none with its 95% paired bootstrap interval over the expressions:",
        "",
        *_click_rows(report.clicks, types),
    ]
    if report.clicks_before_tuning is not None:
        lines += ["", f"The same protocol on step {report.selected_step}, before the click fine-tuning:", "",
                  *_click_rows(report.clicks_before_tuning, types)]
    return lines


def _held_out_lines(report: OfflineModelReport) -> list[str]:
    if not report.held_out:
        return []
    types = ["overall", "appearance", "motion", "relation", "time"]
    seeds = ", ".join(str(seed) for seed in report.held_out)
    lines = ["", f"## Test splits of other seeds ({seeds}; {recipe.HELD_OUT['test']} clips each, never trained or selected on)", "",
             "J&F of the bundled model, and in brackets of segmenting a random object of each clip perfectly:", "",
             "| seed | expressions | " + " | ".join(types) + " |", "|---|---|" + "---|" * len(types)]
    for seed, rows in report.held_out.items():
        chance = report.held_out_chance[seed]
        lines.append(f"| {seed} | {rows['overall'].count} | " + " | ".join(
            f"{rows[t].jf:.3f} ({chance[t].jf:.3f})" if t in rows else "-" for t in types) + " |")
    return lines


def _parameter_count(report: OfflineModelReport) -> str:
    return "" if report.parameters is None else f" ({report.parameters / 1e6:.1f} M parameters)"


def model_card(report: OfflineModelReport, command: str) -> str:
    """The bundle's README.md: front matter, verdict, training, test tables, ablation table."""
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
        f"aggregator) at the `nano` size{_parameter_count(report)} trained from random weights on the package's",
        "synthetic clips of moving shapes. **It knows only that world** (shapes, colours, sizes, textures,",
        "simple motions, the benchmark's 38 words); on real videos its masks mean nothing.",
        *_architecture_lines(report.readout),
        "",
        verdict(report),
        "",
        "## Training",
        "",
        f"- data: `python -m mpg_sam2.data.synthetic` with seed {recipe.DATA['seed']}: {recipe.DATA['train']} train / "
        f"{recipe.DATA['val']} valid / {recipe.DATA['test']} test clips of 8 frames at 256 x 256, up to 4 expressions each",
        _warm_up_line(report.warmup_seconds),
        *_main_stage_lines(report),
        f"- training time: {report.training_seconds / 3600:.2f} h of step time on one core of a 2-core CPU "
        "(validation and checkpoints excluded), after the warm-up",
        f"- step {report.selected_step} is the checkpoint with the best J&F on the validation split "
        f"({recipe.DATA['val']} clips;",
        "  " + ", ".join(f"{step}: {jf:.3f}" for step, jf in report.validation.items()) + ")",
        *_click_stage_lines(report),
        *_readout_choice_lines(report),
        f"- reproduce everything on this card: `{command}`",
        "",
        f"## Test split ({recipe.DATA['test']} clips, never seen in training)",
        "",
        format_table(report.test, "expression type"),
        *_own_mask_lines(report),
        "",
        "For reference, segmenting a random object of each clip perfectly (no language understanding):",
        "",
        format_table(report.chance, "expression type"),
        "",
        f"Regression set (seed {recipe.REGRESSION_SET['seed']}, {recipe.REGRESSION_SET['test']} test clips, for "
        f"the regression test): J&F {report.regression.jf:.3f} over {report.regression.count} expressions.",
        *_held_out_lines(report),
        *_click_table_lines(report),
    ]
    if report.ablations is not None:
        seeds = ", ".join(str(seed) for seed in recipe.ABLATION_SEEDS)
        lines += [
            "",
            f"## Ablation (paper's Table 3 shape; every row {report.ablation_steps} steps from the same warm-up checkpoint, "
            f"seeds {seeds})",
            "",
            f"J, F and each J&F are test-split means over the {len(recipe.ABLATION_SEEDS)} seeds; ± is the standard deviation",
            "of J&F over the seeds. The last column is each row's J&F minus the baseline's, per expression",
            "averaged over the seeds, with its 95% paired bootstrap interval over the test expressions: an",
            "interval that excludes 0 is a difference this split supports; it covers which expressions the",
            "split holds, not which seeds were drawn (the ± says how much those move a row).",
            "",
            "| model | MPG | HGA | J | F | J&F | appearance J&F | motion J&F | relation J&F | time J&F | J&F minus baseline |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, row in report.ablations.items():
            no_prior, no_agg = recipe.ABLATIONS[name]
            o = row.mean["overall"]
            cells = " | ".join(f"{row.mean[t].jf:.3f} ± {row.spread[t]:.3f}" if t in row.mean else "-"
                               for t in ("overall", "appearance", "motion", "relation", "time"))
            versus = "-" if row.versus_baseline is None else str(row.versus_baseline["overall"])
            lines.append(f"| {ROW_NAMES[name]} | {'' if no_prior else 'x'} | {'' if no_agg else 'x'} | "
                         f"{o.j:.3f} | {o.f:.3f} | {cells} | {versus} |")
        chance = report.chance["overall"].jf
        if all(row.mean["overall"].jf < chance + GROUNDING_MARGIN for row in report.ablations.values()):
            lines += ["", f"At this budget no row is clearly above the random-object level ({chance:.3f})."]
        lines += [
            "",
            "Without MPG, SAM 2 gets its learned no-mask embedding as the dense prompt (the generator still",
            "runs: its global context feeds the aggregator); without HGA the image embedding and mask tokens",
            "reach SAM 2's two-way transformer unchanged. The text reaches SAM 2 in every row as the sparse prompt.",
        ]
        if report.test_own_masks is not None:
            lines.append("The rows are scored on SAM 2's own masks (the default `readout`).")
    return "\n".join(lines) + "\n"
