"""The simulated-click protocol: which click a simulated user makes, and J&F after k clicks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mpg_sam2.data.synthetic import load_synthetic, write_dataset
from mpg_sam2.evaluation import expression_scores
from mpg_sam2.evaluation.aggregate import score_expression
from mpg_sam2.evaluation.expression_scores import score_expressions_with_clicks
from mpg_sam2.evaluation.simulated_clicks import SimulatedClick, click_expression, next_click, region_centre, worst_frame
from mpg_sam2.evaluation.synthetic_report import evaluate_synthetic, format_click_table
from mpg_sam2.pipeline.segmentation import SegmentationRun
from tiny_model import tiny_model, tiny_tokenizer


def empty(t: int = 1, h: int = 20, w: int = 30) -> np.ndarray:
    return np.zeros((t, h, w), dtype=bool)


def test_largest_false_negative_region_gets_a_positive_click_at_its_centre():
    truth, pred = empty(), empty()
    truth[0, 2:9, 3:10] = True  # 7 x 7 = 49 pixels missed, centre (6, 5)
    truth[0, 15:18, 20:23] = True  # 9 pixels missed
    pred[0, 12:14, 0:5] = True  # 10 false-positive pixels
    assert next_click(truth, pred) == SimulatedClick(frame=0, x=6, y=5, label=1, region_pixels=49)


def test_largest_false_positive_region_gets_a_negative_click():
    truth, pred = empty(), empty()
    truth[0, 0:4, 0:4] = True
    pred[0, 0:4, 0:4] = True
    pred[0, 10:15, 20:25] = True  # 25 false-positive pixels, centre (22, 12)
    truth[0, 18:20, 0:3] = True  # 6 false-negative pixels
    assert next_click(truth, pred) == SimulatedClick(frame=0, x=22, y=12, label=0, region_pixels=25)


def test_equal_regions_favour_the_false_negative():
    truth, pred = empty(), empty()
    truth[0, 0:3, 0:3] = True
    pred[0, 10:13, 10:13] = True
    assert next_click(truth, pred).label == 1


def test_components_are_four_connected():
    truth, pred = empty(), empty()
    truth[0, 5, 5] = truth[0, 6, 6] = True  # diagonal neighbours: two regions of one pixel
    assert next_click(truth, pred).region_pixels == 1


def test_centre_is_farthest_from_the_boundary_and_the_frame_edge():
    region = np.zeros((9, 12), dtype=bool)
    region[1:8, :7] = True  # 7 x 7 on the left edge: the edge is a boundary, the centre is (3, 4)
    region[4, 7:12] = True  # a thin arm does not pull the centre
    assert region_centre(region) == (3, 4)
    # An L shape: the thick part, not the corner of the bounding box.
    ell = np.zeros((20, 20), dtype=bool)
    ell[2:18, 2:8] = True
    ell[12:18, 2:18] = True
    x, y = region_centre(ell)
    assert ell[y, x]


def test_worst_frame_is_the_lowest_j_earliest_on_ties():
    truth, pred = empty(4), empty(4)  # frame 0: both empty (J 1)
    truth[1, :10] = True
    pred[1, :5] = True  # J 0.5
    truth[2, :10] = True
    pred[2, :2] = True  # J 0.2
    truth[3, :10] = True
    pred[3, 8:10] = True  # J 0.2 as well: frame 2 is earlier
    assert worst_frame(truth, pred) == 2
    assert next_click(truth, pred).frame == 2


def test_a_perfect_result_gets_no_click():
    truth = empty(3)
    truth[1, 4:8, 4:8] = True
    assert worst_frame(truth, truth.copy()) is None
    assert next_click(truth, truth.copy()) is None
    assert next_click(empty(2), empty(2)) is None  # nothing to find, nothing found


class FakeRun:
    """A run whose correction paints the clicked pixel's whole row of the clicked frame."""

    def __init__(self, truth: np.ndarray, masks: np.ndarray) -> None:
        self.truth, self.masks, self.corrections = truth, masks, []

    def result(self):
        from types import SimpleNamespace

        return SimpleNamespace(expressions=[SimpleNamespace(masks=self.masks)])

    def correct(self, correction):
        self.corrections.append(correction)
        x, y, _ = correction.points[-1]
        self.masks[correction.frame, int(y)] = self.truth[correction.frame, int(y)]
        yield None


def test_protocol_accumulates_points_per_frame_and_stops_when_perfect():
    truth = empty(2, 6, 8)
    truth[0, 0:3, :] = True  # three rows of 8 missed on frame 0
    run = FakeRun(truth, empty(2, 6, 8))
    score = lambda masks: score_expression("v", "e", truth, masks)  # noqa: E731
    clicked = click_expression(run, 0, truth, 5, score)
    assert len(clicked.scores) == 6 and len(clicked.clicks) == 3
    assert [c.frame for c in run.corrections] == [0, 0, 0]
    # Each correction of a frame holds every click on it so far, oldest first.
    assert [len(c.points) for c in run.corrections] == [1, 2, 3]
    assert run.corrections[2].points[:2] == run.corrections[1].points
    assert clicked.scores[3].jf == 1.0 and clicked.scores[4:] == (clicked.scores[3],) * 2
    assert [s.j for s in clicked.scores[:3]] == sorted(s.j for s in clicked.scores[:3])


# -- with the tiny model on a tiny synthetic split -------------------------------------------


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    write_dataset(root, 3, 0, 0, 3, frames=4, size=64)
    return root


@pytest.fixture(scope="module")
def model_and_tokenizer(tmp_path_factory):
    model = tiny_model(seed=5).eval()
    with torch.no_grad():  # the object present on every frame, so masks are not all empty
        model.sam2.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(5.0)
    return model, tiny_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def reports(dataset, model_and_tokenizer):
    """The plain report and the report with 2 clicks of the first 4 expressions."""
    model, tokenizer = model_and_tokenizer
    plain = evaluate_synthetic(model, tokenizer, dataset, "test", max_expressions=4)
    return plain, evaluate_synthetic(model, tokenizer, dataset, "test", max_expressions=4, clicks=2)


def test_protocol_with_the_tiny_model(reports):
    plain, report = reports
    assert len(report.clicked) == len(plain.expressions) == 4
    for c, p in zip(report.clicked, plain.expressions):
        assert c.scores[0] == p  # 0 clicks: the plain report's scores, bit for bit
        assert len(c.scores) == 3 and len(c.clicks) <= 2
        assert {(s.video_id, s.expression_id) for s in c.scores} == {(p.video_id, p.expression_id)}
        for click in c.clicks:
            assert 0 <= click.frame < p.num_frames and click.label in (0, 1)
        if len(c.clicks) < 2:  # stopped: perfect, and the score carries over
            assert c.scores[-1].j == 1.0


def test_clicks_rescore_with_the_report_scoring(dataset, model_and_tokenizer, monkeypatch):
    """The J&F after k clicks is score_expression's, on the run's corrected masks."""
    model, tokenizer = model_and_tokenizer
    split = load_synthetic(dataset, "test")
    seen = []
    original = expression_scores.score_expression
    monkeypatch.setattr(expression_scores, "score_expression", lambda *a: seen.append(a[1]) or original(*a))
    clicked = score_expressions_with_clicks(model, tokenizer, split, 1, max_expressions=2)
    assert len(clicked) == 2 and len(seen) == 2 * 1 + sum(len(c.clicks) for c in clicked)


def test_report_with_clicks(reports):
    plain, report = reports
    assert report.by_type == plain.by_type == report.after_clicks[0]
    assert report.expressions == plain.expressions
    assert len(report.after_clicks) == 3 and all(set(r) == set(plain.by_type) for r in report.after_clicks)
    payload = report.to_json()
    assert len(payload["clicks"]["after"]) == 3 and payload["clicks"]["after"][0] == payload["scores"]
    assert len(payload["clicks"]["expressions"]) == len(report.expressions)
    assert all(len(e["J&F"]) == 3 for e in payload["clicks"]["expressions"])
    table = format_click_table(report.after_clicks, "test")
    assert "| test | count | 0 clicks | 1 click | 2 clicks |" in table and "| overall |" in table
    assert "clicks" not in plain.to_json()
    # The gain after k clicks is the mean paired difference per row, with its bootstrap interval.
    assert len(report.gains) == 2 and all(set(g) == set(plain.by_type) for g in report.gains)
    for k, rows in enumerate(report.gains, start=1):
        overall = rows["overall"]
        assert overall.count == 4
        assert overall.mean == pytest.approx(report.after_clicks[k]["overall"].jf - report.after_clicks[0]["overall"].jf)
        assert overall.low <= overall.mean <= overall.high
    assert payload["clicks"]["gains"][0]["overall"]["mean"] == report.gains[0]["overall"].mean
    with_gains = format_click_table(report.after_clicks, "test", report.gains)
    assert f"| overall | 4 | {report.gains[0]['overall']} | {report.gains[1]['overall']} |" in with_gains


def test_paired_bootstrap_interval():
    from mpg_sam2.evaluation.paired_bootstrap import paired_bootstrap

    rng = np.random.default_rng(0)
    before = rng.uniform(0, 1, 400)
    shifted = paired_bootstrap(before + 0.05 + rng.normal(0, 0.1, 400), before)
    assert shifted.mean == pytest.approx(0.05, abs=0.015) and 0 < shifted.low < shifted.mean < shifted.high < 0.1
    # The interval is about 1.96 standard errors each side (0.1 / sqrt(400) = 0.005).
    assert shifted.high - shifted.low == pytest.approx(2 * 1.96 * 0.005, rel=0.15)
    noise = paired_bootstrap(before + rng.normal(0, 0.1, 400), before)
    assert noise.low < 0 < noise.high
    assert paired_bootstrap([1.0, 0.5], [0.5, 0.5]) == paired_bootstrap([1.0, 0.5], [0.5, 0.5])  # seeded
    assert str(paired_bootstrap([0.5, 0.5], [0.25, 0.25])) == "+0.250 [+0.250, +0.250]"
    with pytest.raises(ValueError, match="equally long"):
        paired_bootstrap([1.0], [1.0, 2.0])


def test_clicks_work_on_a_correctable_run(model_and_tokenizer):
    """The protocol drives a real SegmentationRun: masks change, its corrections are recorded."""
    model, tokenizer = model_and_tokenizer
    frames = np.random.default_rng(0).integers(0, 256, (4, 32, 48, 3), dtype=np.uint8)
    run = SegmentationRun(frames, ["the red circle"], model, tokenizer, correctable=True)
    list(run.segment())
    truth = empty(4, 32, 48)
    truth[:, 8:24, 10:30] = True
    before = run.result().expressions[0].object_scores.copy()
    clicked = click_expression(run, 0, truth, 2, lambda m: score_expression("v", "e", truth, m))
    after = run.result().expressions[0]
    assert len(after.corrections) == len(clicked.clicks) == 2
    assert [c.frame for c in after.corrections] == [clicked.clicks[0].frame, clicked.clicks[1].frame]
    assert not np.array_equal(before, after.object_scores)  # re-tracked with the clicks
