"""The ablation table over seeds (mpg_sam2/training/ablation_table.py): means and spreads over
seeds, and the paired difference from the baseline per expression averaged over seeds."""
from __future__ import annotations

import json

import numpy as np
import pytest

from mpg_sam2.evaluation.aggregate import ExpressionScore
from mpg_sam2.training.ablation_table import AblationRow, summarize_ablation

TYPES = {("v0", "0"): "appearance", ("v0", "1"): "motion", ("v1", "0"): "appearance", ("v1", "1"): "motion"}


def scores(jf_by_key: dict[tuple[str, str], float]) -> list[ExpressionScore]:
    """J = F = the given J&F, so J&F is exactly that value."""
    return [ExpressionScore(video, expression, jf, jf, 8) for (video, expression), jf in jf_by_key.items()]


@pytest.fixture()
def table():
    keys = list(TYPES)
    base = {seed: scores(dict(zip(keys, [0.2, 0.4, 0.3, 0.5]))) for seed in (0, 1, 2)}
    # The full row gains 0.1 on appearance in every seed, and 0.3 / 0 / 0.3 on motion (seed 0 / 1 / 2).
    full = {seed: scores(dict(zip(keys, [0.3, 0.4 + m, 0.4, 0.5 + m]))) for seed, m in ((0, 0.3), (1, 0.0), (2, 0.3))}
    return summarize_ablation({"abl_baseline": base, "main": full}, TYPES, baseline="abl_baseline")


def test_means_and_spreads_over_seeds(table):
    base, full = table["abl_baseline"], table["main"]
    assert base.mean["overall"].jf == pytest.approx(0.35) and base.spread["overall"] == 0.0
    assert base.versus_baseline is None and base.mean["overall"].count == 4
    assert full.mean["appearance"].jf == pytest.approx(0.35) and full.spread["appearance"] == pytest.approx(0.0)
    # motion J&F per seed: 0.75, 0.45, 0.75 -> mean 0.65, sample standard deviation 0.1732
    assert [full.seeds[s]["motion"].jf for s in (0, 1, 2)] == pytest.approx([0.75, 0.45, 0.75])
    assert full.mean["motion"].jf == pytest.approx(0.65)
    assert full.spread["motion"] == pytest.approx(np.std([0.75, 0.45, 0.75], ddof=1))


def test_difference_from_the_baseline_pairs_expressions_averaged_over_seeds(table):
    versus = table["main"].versus_baseline
    assert versus["appearance"].mean == pytest.approx(0.1) and versus["appearance"].count == 2
    assert versus["appearance"].low == pytest.approx(0.1) and versus["appearance"].high == pytest.approx(0.1)
    assert versus["motion"].mean == pytest.approx(0.2)
    assert versus["overall"].mean == pytest.approx(0.15) and versus["overall"].count == 4
    assert versus["overall"].low <= 0.15 <= versus["overall"].high and versus["overall"].low > 0


def test_json_round_trip(table):
    for row in table.values():
        assert AblationRow.from_json(json.loads(json.dumps(row.to_json()))) == row


def test_rows_scored_on_other_expressions_or_without_baseline_are_refused():
    keys = list(TYPES)
    complete = {0: scores(dict(zip(keys, [0.1] * 4)))}
    partial = {0: scores(dict(zip(keys[:3], [0.1] * 3)))}
    with pytest.raises(ValueError, match="'main' seed 0 was scored on other expressions"):
        summarize_ablation({"abl_baseline": complete, "main": partial}, TYPES, baseline="abl_baseline")
    with pytest.raises(ValueError, match="baseline row 'abl_baseline' is not among"):
        summarize_ablation({"main": complete}, TYPES, baseline="abl_baseline")
    with pytest.raises(ValueError, match="'main' has no scored seed"):
        summarize_ablation({"abl_baseline": complete, "main": {}}, TYPES, baseline="abl_baseline")
