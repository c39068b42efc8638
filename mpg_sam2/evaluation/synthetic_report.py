"""J&F of a checkpoint on a split of the synthetic benchmark, overall and per expression type.

    python -m mpg_sam2.evaluation.synthetic_report --model checkpoints/offline --data data/synthetic --split test

prints a Markdown table (rows: overall, appearance, motion, relation, time) and, with ``--json``,
writes the numbers and every expression's score. ``--diagnose`` adds a second table: how often
the masks and the mask prior alone pick the referred object (hit rate), J&F when they do, and the
same for the sentences whose description alone does not single out the target. ``--clicks N``
adds the simulated-click protocol (:mod:`.simulated_clicks`): J&F per type after 0, 1, ..., N
corrective clicks per expression (after 0 clicks: the plain numbers). ``--prior-only`` scores
the mask prior alone instead, without SAM 2 (:mod:`.prior_only`): the quick measure of a prior
warm-up checkpoint.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mpg_sam2.data.synthetic import load_synthetic, read_expression_types
from mpg_sam2.data.types import ReferringSample
from mpg_sam2.evaluation.aggregate import ExpressionScore, MeanScores, score_expression
from mpg_sam2.evaluation.expression_scores import score_expressions, score_expressions_with_clicks, summarize_by_group
from mpg_sam2.evaluation.grounding import (
    GroundingScore,
    GroundingSummary,
    expression_groups,
    format_grounding_table,
    grounding_score,
    read_label_maps,
    summarize_grounding,
)
from mpg_sam2.evaluation.paired_bootstrap import PairedDifference, paired_bootstrap
from mpg_sam2.evaluation.simulated_clicks import ClickedExpression
from mpg_sam2.model.mpg_sam2 import MPGSAM2
from mpg_sam2.pipeline.segmentation import ExpressionSegmentation
from mpg_sam2.tokenizer import ReferringTokenizer

__all__ = ["SyntheticReport", "chance_level", "click_gains", "evaluate_synthetic", "format_click_table", "format_table", "main"]


@dataclass(frozen=True)
class SyntheticReport:
    split: str
    by_type: dict[str, MeanScores]  # "overall" first, then each expression type
    expressions: list[ExpressionScore]
    seconds: float
    # With diagnose: object choice per type and per "<type>, phrase needed" subset (.grounding).
    grounding: dict[str, GroundingSummary] | None = None
    # With clicks: after_clicks[k] is by_type after k simulated clicks (after_clicks[0] == by_type);
    # clicked[i] is expressions[i] after 0..N clicks and the clicks made.
    after_clicks: list[dict[str, MeanScores]] | None = None
    clicked: list[ClickedExpression] | None = None
    # With clicks: gains[k - 1] is, per row of by_type, J&F after k clicks minus J&F without,
    # with its paired bootstrap interval over the row's expressions.
    gains: list[dict[str, PairedDifference]] | None = None

    def to_json(self) -> dict:
        out = {
            "split": self.split,
            "seconds": round(self.seconds, 1),
            "scores": _scores_json(self.by_type),
            "expressions": [{**asdict(e), "J&F": e.jf} for e in self.expressions],
        }
        if self.grounding is not None:
            out["grounding"] = {name: asdict(g) for name, g in self.grounding.items()}
        if self.after_clicks is not None and self.clicked is not None:
            out["clicks"] = {
                "after": [_scores_json(by_type) for by_type in self.after_clicks],
                "gains": [{name: asdict(g) for name, g in rows.items()} for rows in self.gains or []],
                "expressions": [
                    {"video_id": c.scores[0].video_id, "expression_id": c.scores[0].expression_id,
                     "J&F": [s.jf for s in c.scores], "clicks": [asdict(click) for click in c.clicks]}
                    for c in self.clicked
                ],
            }
        return out


def _scores_json(by_type: dict[str, MeanScores]) -> dict[str, dict]:
    return {name: {"J": s.j, "F": s.f, "J&F": s.jf, "expressions": s.count} for name, s in by_type.items()}


def evaluate_synthetic(
    model: MPGSAM2,
    tokenizer: ReferringTokenizer,
    root: str | Path,
    split: str = "test",
    max_expressions: int | None = None,
    progress: bool = False,
    diagnose: bool = False,
    clicks: int = 0,
) -> SyntheticReport:
    """Score every expression of ``split`` (or the first ``max_expressions``) and group by type.

    ``diagnose`` adds the object-choice diagnostic (:mod:`.grounding`): per type, how often the
    masks and the mask prior alone pick the referred object, and the same for the sentences whose
    description alone does not single out their target (their phrase is needed). ``clicks`` > 0
    runs the simulated-click protocol and adds the scores after 1, ..., ``clicks`` clicks.
    """
    if clicks < 0:
        raise ValueError(f"clicks must be >= 0, got {clicks}")
    dataset = load_synthetic(root, split)
    types = read_expression_types(root, split)
    start = time.perf_counter()

    def say(done: int, total: int) -> None:
        print(f"\r{done}/{total} expressions", end="" if done < total else "\n", file=sys.stderr, flush=True)

    choices: list[GroundingScore] = []
    labels_of: dict[str, np.ndarray] = {}  # the last video's label maps: read once per video

    def choose(sample: ReferringSample, result: ExpressionSegmentation) -> None:
        if sample.video_id not in labels_of:
            labels_of.clear()
            labels_of[sample.video_id] = read_label_maps(sample.masks)
        choices.append(grounding_score(sample, result, labels_of[sample.video_id]))

    on_result = choose if diagnose else None
    clicked = after_clicks = gains = None
    if clicks:
        clicked = score_expressions_with_clicks(
            model, tokenizer, dataset, clicks, max_expressions, progress=say if progress else None,
            on_result=on_result,
        )
        scores = [c.scores[0] for c in clicked]
        after_clicks = [summarize_by_group([c.scores[k] for c in clicked], types) for k in range(clicks + 1)]
        gains = click_gains(clicked, types)
    else:
        scores = score_expressions(
            model, tokenizer, dataset, max_expressions, progress=say if progress else None, on_result=on_result
        )
    grounding = None
    if diagnose:
        jf = {(s.video_id, s.expression_id): s.jf for s in scores}
        grounding = summarize_grounding(choices, jf, expression_groups(root, split))
    return SyntheticReport(
        split, summarize_by_group(scores, types), scores, time.perf_counter() - start, grounding, after_clicks, clicked, gains
    )


def click_gains(clicked: list[ClickedExpression], types: dict[tuple[str, str], str]) -> list[dict[str, PairedDifference]]:
    """Per number of clicks k >= 1: ``{"overall": ..., type: ...}``, the J&F gain over no
    clicks with its paired bootstrap interval (:mod:`.paired_bootstrap`)."""
    rows: dict[str, list[ClickedExpression]] = {"overall": list(clicked)}
    for c in clicked:
        rows.setdefault(types[(c.scores[0].video_id, c.scores[0].expression_id)], []).append(c)
    names = ["overall", *sorted(n for n in rows if n != "overall")]
    return [
        {name: paired_bootstrap([c.scores[k].jf for c in rows[name]], [c.scores[0].jf for c in rows[name]]) for name in names}
        for k in range(1, len(clicked[0].scores))
    ] if clicked else []


def chance_level(root: str | Path, split: str = "test") -> dict[str, MeanScores]:
    """What segmenting one object of the clip picked at random scores, overall and per type.

    For each expression, the mean over the clip's annotated objects of the J and F of predicting
    exactly that object's masks (right with probability 1/n). A model that segments *an* object
    well but does not understand the sentence scores about this.
    """
    from mpg_sam2.data.types import PaletteMaskSource, load_masks
    from mpg_sam2.mask_io.png import read_label_png

    dataset = load_synthetic(root, split)
    types = read_expression_types(root, split)
    scores = []
    for video in dataset.videos:
        samples = [s for s in video.expressions if isinstance(s.masks, PaletteMaskSource)]
        if not samples:
            continue
        labels = np.stack([read_label_png(p) for p in samples[0].masks.paths])
        objects = [int(i) for i in np.unique(labels) if i != 0]
        per_object = {i: labels == i for i in objects}
        for sample in samples:
            truth = load_masks(sample.masks)
            picks = [score_expression(video.video_id, sample.expression_id, truth, per_object[i]) for i in objects]
            j, f = float(np.mean([p.j for p in picks])), float(np.mean([p.f for p in picks]))
            scores.append(ExpressionScore(video.video_id, sample.expression_id, j, f, len(truth)))
    return summarize_by_group(scores, types)


def format_table(rows: dict[str, MeanScores], title: str = "expressions") -> str:
    lines = [f"| {title} | count | J | F | J&F |", "|---|---|---|---|---|"]
    for name, s in rows.items():
        lines.append(f"| {name} | {s.count} | {s.j:.3f} | {s.f:.3f} | {s.jf:.3f} |")
    return "\n".join(lines)


def format_click_table(
    after_clicks: list[dict[str, MeanScores]], title: str = "expressions", gains: list[dict[str, PairedDifference]] | None = None
) -> str:
    """J&F per row after 0, 1, ..., N clicks (``after_clicks[k]``: the rows after k clicks); with
    ``gains``, a second table of the gain after k clicks and its 95% paired bootstrap interval."""
    heads = [f"{k} click{'' if k == 1 else 's'}" for k in range(len(after_clicks))]
    lines = [f"| {title} | count | " + " | ".join(heads) + " |", "|---|---|" + "---|" * len(heads)]
    for name, first in after_clicks[0].items():
        lines.append(f"| {name} | {first.count} | " + " | ".join(f"{rows[name].jf:.3f}" for rows in after_clicks) + " |")
    if gains:
        lines += ["", "| gain over no clicks [95% paired bootstrap] | count | " + " | ".join(heads[1:]) + " |",
                  "|---|---|" + "---|" * len(gains)]
        for name, first in after_clicks[0].items():
            lines.append(f"| {name} | {first.count} | " + " | ".join(str(rows[name]) for rows in gains) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mpg_sam2.evaluation.synthetic_report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="checkpoint folder (with its tokenizer files)")
    parser.add_argument("--data", required=True, type=Path, help="synthetic dataset root (python -m mpg_sam2.data.synthetic)")
    parser.add_argument("--split", default="test", choices=["train", "valid", "test"])
    parser.add_argument("--max-expressions", type=int, help="only the first N expressions")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--json", type=Path, help="also write the numbers and per-expression scores here")
    parser.add_argument("--chance", action="store_true", help="print the random-object reference instead (no model)")
    parser.add_argument("--diagnose", action="store_true",
                        help="also report which object the masks and the prior pick (hit rates), and the phrase-needed subsets")
    parser.add_argument("--clicks", type=int, default=0,
                        help="also report J&F per type after 1..N simulated corrective clicks per expression")
    parser.add_argument("--prior-only", action="store_true",
                        help="score the mask prior alone (hit rate and J&F per type, no SAM 2), e.g. of a prior warm-up checkpoint")
    args = parser.parse_args(argv)
    if args.clicks < 0:
        parser.error(f"--clicks must be >= 0, got {args.clicks}")
    if args.prior_only and (args.diagnose or args.clicks or args.max_expressions or args.chance):
        parser.error("--prior-only scores every expression's prior alone; drop --diagnose, --clicks, --max-expressions and --chance")
    if args.chance:
        print(format_table(chance_level(args.data, args.split), f"{args.split} split, a random object"))
        return 0
    if args.model is None:
        parser.error("--model is required (or --chance)")

    import torch

    from mpg_sam2.checkpoint.pretrained import load_pretrained

    if args.threads:
        torch.set_num_threads(args.threads)
    pretrained = load_pretrained(args.model)
    try:
        tokenizer = pretrained.text_tokenizer()
    except RuntimeError as error:
        parser.error(str(error))
    if args.prior_only:
        from mpg_sam2.evaluation.prior_only import evaluate_priors, format_prior_table

        start = time.perf_counter()
        priors = evaluate_priors(pretrained.model, tokenizer, args.data, args.split)
        print(format_prior_table(priors, f"{args.split} split, mask prior alone"))
        print(f"({time.perf_counter() - start:.0f} s)")
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({"split": args.split, "prior": {k: asdict(v) for k, v in priors.items()}}, indent=1) + "\n",
                                 encoding="utf-8")
        return 0
    report = evaluate_synthetic(
        pretrained.model, tokenizer, args.data, args.split, args.max_expressions, progress=True, diagnose=args.diagnose,
        clicks=args.clicks,
    )
    print(format_table(report.by_type, f"{args.split} split"))
    if report.grounding is not None:
        print()
        print(format_grounding_table(report.grounding, f"{args.split} split, object choice"))
    if report.after_clicks is not None:
        print()
        print(format_click_table(report.after_clicks, f"{args.split} split, J&F after clicks", report.gains))
    print(f"({report.seconds:.0f} s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report.to_json(), indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
