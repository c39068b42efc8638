"""The ablation table over several seeds: per row, the mean and spread over seeds, and how sure
its difference from the baseline row is.

Each row of the paper's Table 3 (``recipe.ABLATIONS``) is trained once per seed at one budget
and scored on the same test expressions. Per row and expression type:

* ``mean``: J, F and J&F averaged over the seeds (each seed's score is itself a mean over the
  expressions);
* ``spread``: the sample standard deviation of that J&F over the seeds (what another seed
  would move it by);
* ``versus_baseline``: each expression's J&F averaged over the seeds, minus the baseline row's,
  with the paired bootstrap interval over the expressions (:mod:`mpg_sam2.evaluation.paired_bootstrap`).
  Averaging the seeds first keeps the pairs one per expression; the interval covers which
  expressions the split holds, and the seeds' noise only through their mean (``spread`` shows it).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from mpg_sam2.evaluation.aggregate import ExpressionScore, MeanScores
from mpg_sam2.evaluation.expression_scores import summarize_by_group
from mpg_sam2.evaluation.paired_bootstrap import PairedDifference, paired_bootstrap

__all__ = ["AblationRow", "summarize_ablation"]


@dataclass(frozen=True)
class AblationRow:
    seeds: dict[int, dict[str, MeanScores]]  # seed -> scores by expression type ("overall" first)
    mean: dict[str, MeanScores]  # by type: J, F, J&F averaged over the seeds
    spread: dict[str, float]  # by type: sample standard deviation of J&F over the seeds (0 for one seed)
    versus_baseline: dict[str, PairedDifference] | None  # by type; None for the baseline row itself

    def to_json(self) -> dict[str, Any]:
        def rows(by_type: dict[str, MeanScores]) -> dict[str, dict[str, float]]:
            return {name: {"J": s.j, "F": s.f, "J&F": s.jf, "expressions": s.count} for name, s in by_type.items()}

        return {
            "seeds": {str(seed): rows(by_type) for seed, by_type in self.seeds.items()},
            "mean": rows(self.mean),
            "spread": self.spread,
            "versus_baseline": None if self.versus_baseline is None else
            {name: dataclasses.asdict(d) for name, d in self.versus_baseline.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "AblationRow":
        def rows(by_type: dict[str, dict[str, float]]) -> dict[str, MeanScores]:
            return {k: MeanScores(v["J"], v["F"], v["J&F"], v["expressions"]) for k, v in by_type.items()}

        versus = data["versus_baseline"]
        return cls({int(seed): rows(by_type) for seed, by_type in data["seeds"].items()}, rows(data["mean"]),
                   dict(data["spread"]), None if versus is None else {k: PairedDifference(**v) for k, v in versus.items()})


def summarize_ablation(
    scores: Mapping[str, Mapping[int, Sequence[ExpressionScore]]],
    types: Mapping[tuple[str, str], str],
    baseline: str,
) -> dict[str, AblationRow]:
    """``scores[row][seed]`` the row's per-expression scores for that seed (every row and seed
    scored on the same expressions); ``types`` maps (video id, expression id) to its type."""
    keys = None
    for row, by_seed in scores.items():
        if not by_seed:
            raise ValueError(f"ablation row {row!r} has no scored seed")
        for seed, expressions in by_seed.items():
            seen = sorted((e.video_id, e.expression_id) for e in expressions)
            if keys is None:
                keys = seen
            elif seen != keys:
                raise ValueError(f"ablation row {row!r} seed {seed} was scored on other expressions than the first row")
    if baseline not in scores:
        raise ValueError(f"the baseline row {baseline!r} is not among the rows {list(scores)}")

    def seed_mean_jf(row: str) -> dict[tuple[str, str], float]:
        per_key: dict[tuple[str, str], list[float]] = {}
        for expressions in scores[row].values():
            for e in expressions:
                per_key.setdefault((e.video_id, e.expression_id), []).append(e.jf)
        return {key: float(np.mean(values)) for key, values in per_key.items()}

    base = seed_mean_jf(baseline)
    table = {}
    for row, by_seed in scores.items():
        seeds = {seed: summarize_by_group(list(expressions), types) for seed, expressions in sorted(by_seed.items())}
        names = list(next(iter(seeds.values())))
        mean = {name: MeanScores(*(float(np.mean([getattr(s[name], field) for s in seeds.values()])) for field in ("j", "f", "jf")),
                                 next(iter(seeds.values()))[name].count) for name in names}
        spread = {name: float(np.std([s[name].jf for s in seeds.values()], ddof=1)) if len(seeds) > 1 else 0.0
                  for name in names}
        versus = None
        if row != baseline:
            ours = seed_mean_jf(row)
            versus = {}
            for name in names:
                members = [k for k in ours if name == "overall" or types[k] == name]
                versus[name] = paired_bootstrap([ours[k] for k in members], [base[k] for k in members])
        table[row] = AblationRow(seeds, mean, spread, versus)
    return table
