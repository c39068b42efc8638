"""J and F (davis2017-evaluation conventions) and their aggregation."""
from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from mpg_sam2.evaluation import (
    ExpressionScore,
    boundary_f_measure,
    boundary_map,
    format_table,
    read_results_json,
    region_similarity,
    score_expression,
    summarize,
    write_results_csv,
    write_results_json,
)
from mpg_sam2.evaluation.metrics import boundary_tolerance, dilate, disk


def blank(h: int = 20, w: int = 30) -> np.ndarray:
    return np.zeros((h, w), dtype=bool)


# --- an independent, loop-by-loop re-derivation of the reference's definitions -----------------


def slow_boundary(seg: np.ndarray) -> np.ndarray:
    """A pixel is on the boundary if it differs from its E, S or SE neighbour; the last row only
    compares E, the last column only S, the bottom-right corner never counts."""
    h, w = seg.shape
    out = np.zeros((h, w), dtype=bool)
    for y in range(h):
        for x in range(w):
            if y == h - 1 and x == w - 1:
                continue
            if y == h - 1:
                out[y, x] = seg[y, x] != seg[y, x + 1]
            elif x == w - 1:
                out[y, x] = seg[y, x] != seg[y + 1, x]
            else:
                out[y, x] = seg[y, x] != seg[y, x + 1] or seg[y, x] != seg[y + 1, x] or seg[y, x] != seg[y + 1, x + 1]
    return out


def slow_f(gt: np.ndarray, pred: np.ndarray, bound_th: float = 0.008) -> float:
    h, w = gt.shape
    r = bound_th if bound_th >= 1 else math.ceil(bound_th * math.sqrt(h * h + w * w))
    bg, bp = slow_boundary(gt.astype(bool)), slow_boundary(pred.astype(bool))
    gt_pts, pred_pts = np.argwhere(bg), np.argwhere(bp)
    if len(gt_pts) == 0 and len(pred_pts) == 0:
        return 1.0
    if len(gt_pts) == 0 or len(pred_pts) == 0:
        return 0.0

    def matched(points, others):  # within Euclidean distance r of some boundary pixel of the other
        d2 = ((points[:, None, :] - others[None, :, :]) ** 2).sum(-1)
        return int((d2.min(axis=1) <= r * r).sum())

    precision = matched(pred_pts, gt_pts) / len(pred_pts)
    recall = matched(gt_pts, pred_pts) / len(gt_pts)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def random_mask(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    kind = rng.integers(0, 5)
    if kind == 0:
        return rng.random((h, w)) < rng.random()
    if kind == 1:
        yy, xx = np.mgrid[:h, :w]
        cy, cx, r = rng.random() * h, rng.random() * w, rng.random() * max(h, w) / 2
        return (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
    if kind == 2:
        m = blank(h, w)
        y0, x0 = rng.integers(0, h), rng.integers(0, w)
        m[y0 : y0 + rng.integers(1, h + 1), x0 : x0 + rng.integers(1, w + 1)] = True
        return m
    if kind == 3:  # thin lines
        m = blank(h, w)
        m[rng.integers(0, h), :] = True
        m[:, rng.integers(0, w)] = True
        return m
    return blank(h, w) if rng.random() < 0.5 else ~blank(h, w)


def test_matches_loop_rederivation_on_random_masks():
    rng = np.random.default_rng(0)
    for _ in range(120):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        gt, pred = random_mask(rng, h, w), random_mask(rng, h, w)
        np.testing.assert_array_equal(boundary_map(gt), slow_boundary(gt))
        bound_th = float(rng.choice([0.008, 0.05, 0.1, 1, 2, 3]))
        assert boundary_f_measure(gt, pred, bound_th) == pytest.approx(slow_f(gt, pred, bound_th), abs=1e-15)
        inter, union = (gt & pred).sum(), (gt | pred).sum()
        assert region_similarity(gt, pred) == (1.0 if union == 0 else inter / union)


# --- J ------------------------------------------------------------------------------------------


def test_region_similarity_hand_values():
    gt, pred = blank(), blank()
    assert region_similarity(gt, pred) == 1.0  # both empty: the davis convention
    gt[2:6, 2:6] = True  # 16 px
    assert region_similarity(gt, pred) == 0.0
    pred[4:8, 4:8] = True  # 16 px, overlap 4
    assert region_similarity(gt, pred) == 4 / 28
    assert region_similarity(gt, gt) == 1.0
    assert region_similarity(~blank(), blank()) == 0.0


def test_region_similarity_void():
    gt, pred, void = blank(), blank(), blank()
    gt[0:4, 0:4] = True
    pred[0:4, 2:6] = True
    void[:, 4:] = True  # hides the prediction's extra columns
    assert region_similarity(gt, pred, void=void) == 8 / 16
    assert region_similarity(blank(), pred, void=~blank()) == 1.0  # everything void: empty union


# --- F ------------------------------------------------------------------------------------------


def test_tolerance_is_ceil_of_fraction_of_diagonal():
    assert boundary_tolerance((480, 854)) == 8.0  # 0.008 * 979.6 = 7.84
    assert boundary_tolerance((720, 1280)) == 12.0  # 0.008 * 1468.6 = 11.75
    assert boundary_tolerance((32, 48)) == 1.0
    assert boundary_tolerance((100, 100), 0.0) == 0.0
    assert boundary_tolerance((100, 100), 3) == 3  # >= 1 means pixels
    with pytest.raises(ValueError, match="bound_th"):
        boundary_tolerance((10, 10), -0.1)


def test_boundary_of_one_pixel_is_offset_towards_origin():
    seg = blank(5, 5)
    seg[2, 2] = True
    expected = blank(5, 5)
    expected[1:3, 1:3] = True
    np.testing.assert_array_equal(boundary_map(seg), expected)


def test_full_and_empty_masks():
    full, empty = ~blank(), blank()
    assert not boundary_map(full).any()  # the frame edge is not a boundary
    assert boundary_f_measure(empty, empty) == 1.0
    assert boundary_f_measure(full, full) == 1.0
    assert boundary_f_measure(full, empty) == 1.0  # both boundaries empty, while J is 0
    box = blank()
    box[5:10, 5:10] = True
    assert boundary_f_measure(box, empty) == 0.0  # prediction has no boundary: P=1, R=0
    assert boundary_f_measure(empty, box) == 0.0  # ground truth has none: P=0, R=1
    assert boundary_f_measure(box, box) == 1.0


def test_one_pixel_objects_hand_value():
    gt, pred = blank(32, 48), blank(32, 48)  # tolerance 1: a plus-shaped disk
    gt[10, 10] = True
    pred[10, 12] = True
    # Boundaries are the 2x2 blocks ending at each pixel; half of each lies next to the other.
    assert boundary_f_measure(gt, pred) == 0.5
    pred[10, 12], pred[10, 11] = False, True
    assert boundary_f_measure(gt, pred) == 1.0
    pred[10, 11], pred[20, 40] = False, True
    assert boundary_f_measure(gt, pred) == 0.0


def test_thin_lines_and_border():
    gt = blank(21, 33)
    gt[7, :] = True  # one-pixel line across the frame, touching both borders
    pred = gt.copy()
    assert boundary_f_measure(gt, pred) == 1.0
    shifted = np.roll(gt, 1, axis=0)  # one row down: still within the 1-pixel tolerance
    assert boundary_tolerance(gt.shape) == 1.0
    assert boundary_f_measure(gt, shifted) == 1.0
    far = np.roll(gt, 3, axis=0)
    assert boundary_f_measure(gt, far) == 0.0
    corner = blank(21, 33)
    corner[-3:, -3:] = True  # touching the bottom-right corner
    np.testing.assert_array_equal(boundary_map(corner), slow_boundary(corner))
    assert boundary_f_measure(corner, corner) == 1.0


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (2, 3), (13, 17), (31, 47)])
def test_odd_and_tiny_sizes(shape):
    rng = np.random.default_rng(sum(shape))
    for _ in range(5):
        gt, pred = rng.random(shape) < 0.4, rng.random(shape) < 0.4
        assert boundary_f_measure(gt, pred) == pytest.approx(slow_f(gt, pred), abs=1e-15)


def test_invariances():
    rng = np.random.default_rng(3)
    for _ in range(20):
        gt, pred = random_mask(rng, 23, 37), random_mask(rng, 23, 37)
        f = boundary_f_measure(gt, pred)
        assert boundary_f_measure(pred, gt) == f  # F is symmetric (P and R swap)
        assert boundary_f_measure(gt.T, pred.T) == f  # E/S swap under transposition
        np.testing.assert_array_equal(boundary_map(gt.T), boundary_map(gt).T)
        # any nonzero value is foreground, whatever the dtype
        assert boundary_f_measure(gt.astype(np.uint8) * 255, pred.astype(np.float32) * 0.3) == f
        assert region_similarity(gt.astype(np.uint8) * 7, pred) == region_similarity(gt, pred)
        assert region_similarity(pred, gt) == region_similarity(gt, pred)


def test_f_measure_void_removes_pixels_before_boundaries():
    gt, pred, void = blank(), blank(), blank()
    gt[5:10, 5:10] = True
    pred[5:10, 5:10] = True
    pred[5:10, 20:25] = True  # a false positive...
    void[:, 18:] = True  # ...inside the void region
    assert boundary_f_measure(gt, pred) < 1.0
    assert boundary_f_measure(gt, pred, void=void) == 1.0


def test_errors():
    with pytest.raises(ValueError, match="differ in shape"):
        region_similarity(blank(4, 5), blank(5, 4))
    with pytest.raises(ValueError, match="one 2-D frame"):
        boundary_f_measure(np.zeros((2, 4, 5)), np.zeros((2, 4, 5)))
    with pytest.raises(ValueError, match="no pixels"):
        region_similarity(np.zeros((0, 3)), np.zeros((0, 3)))
    with pytest.raises(ValueError, match="void"):
        region_similarity(blank(), blank(), void=blank(3, 3))


def test_boundary_map_resized_like_the_reference():
    seg = blank(4, 6)
    seg[0, 0] = True  # boundary: pixel (0, 0) only
    out = boundary_map(seg, width=3, height=2)
    assert out.dtype == np.float64 and out.shape == (2, 3)
    expected = np.zeros((2, 3))
    expected[0, 0] = 1  # row 1 + floor(-1 + 2/4) = 0, col 1 + floor(-1 + 3/4) = 0
    np.testing.assert_array_equal(out, expected)
    seg[3, 2] = True
    with pytest.raises(ValueError, match="outside the map"):
        boundary_map(seg, width=3, height=2)
    assert boundary_map(seg, 6, 4).dtype == bool


# --- the morphology, against the libraries the reference calls ---------------------------------


def test_disk_and_dilation_match_skimage_and_cv2():
    cv2 = pytest.importorskip("cv2")
    morphology = pytest.importorskip("skimage.morphology")
    rng = np.random.default_rng(4)
    for radius in [0, 1, 1.5, 2, 2.5, 3, 7.0, 12]:
        kernel = morphology.disk(radius)
        assert kernel.shape == disk(radius).shape
        np.testing.assert_array_equal(disk(radius), kernel.astype(bool))
        for shape in [(1, 1), (5, 9), (40, 31)]:
            m = rng.random(shape) < 0.05
            expected = cv2.dilate(m.astype(np.uint8), kernel.astype(np.uint8)).astype(bool)
            np.testing.assert_array_equal(dilate(m, disk(radius)), expected)
    for _ in range(30):  # arbitrary (asymmetric, even-sized) kernels: the anchor convention
        kernel = rng.random(tuple(rng.integers(1, 7, 2))) < 0.5
        m = rng.random((17, 23)) < 0.1
        expected = cv2.dilate(m.astype(np.uint8), kernel.astype(np.uint8)).astype(bool)
        np.testing.assert_array_equal(dilate(m, kernel), expected)


def test_non_integer_pixel_tolerance_uses_off_centre_kernel():
    gt, pred = blank(), blank()
    gt[5, 5] = True
    pred[5, 6] = True
    assert boundary_f_measure(gt, pred, 1) == 1.0  # plus-shaped disk: every boundary pixel matched
    # disk(1.5) is a 2x2 kernel anchored at its bottom-right cell, so it only grows down/right:
    # all of pred's boundary is within gt's dilation (P = 1), half of gt's within pred's (R = 1/2).
    assert boundary_f_measure(gt, pred, 1.5) == 2 * 1.0 * 0.5 / 1.5
    assert boundary_f_measure(pred, gt, 1.5) == 2 * 1.0 * 0.5 / 1.5


# --- aggregation --------------------------------------------------------------------------------


def test_score_expression_means_over_frames():
    gt = [blank(), blank(), blank()]
    gt[0][0:4, 0:4] = True
    gt[1][0:4, 0:4] = True
    pred = [g.copy() for g in gt]
    pred[1][:] = False  # J 0, F 0 on frame 1; frame 2 both empty: J 1, F 1
    score = score_expression("v", "0", gt, pred)
    assert score.num_frames == 3
    assert score.j == pytest.approx(2 / 3) and score.f == pytest.approx(2 / 3) and score.jf == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="prediction ends after 2 frames"):
        score_expression("v", "0", gt, pred[:2])


def _scores():
    return [
        ExpressionScore("a", "0", 0.5, 0.7, 3),
        ExpressionScore("a", "1", 0.9, 0.9, 3),
        ExpressionScore("b", "0", 0.1, 0.2, 5),
    ]


def test_summarize_means_over_expressions_not_videos():
    table = summarize(_scores(), "mevis")
    assert table.overall.j == pytest.approx(0.5) and table.overall.f == pytest.approx(0.6)
    assert table.overall.jf == pytest.approx(0.55) and table.overall.count == 3
    assert table.per_video["a"].j == pytest.approx(0.7) and table.per_video["b"].count == 1
    assert table.per_annotator == {}


def test_summarize_averages_annotators_for_ref_davis():
    scores = [
        ExpressionScore("v", str(4 * k + a), 0.1 * (a + 1), 0.2 * (a + 1), 4, annotator=a) for k in range(2) for a in range(4)
    ]
    table = summarize(scores, "ref-davis17")
    assert sorted(table.per_annotator) == [0, 1, 2, 3]
    assert table.per_annotator[2].j == pytest.approx(0.3) and table.per_annotator[2].count == 2
    assert table.overall.j == pytest.approx(0.25) and table.overall.f == pytest.approx(0.5)
    assert table.overall.jf == pytest.approx(np.mean([(0.1 * n + 0.2 * n) / 2 for n in range(1, 5)]))
    with pytest.raises(ValueError, match="annotator"):
        summarize(scores + [ExpressionScore("w", "0", 1, 1, 1)])
    with pytest.raises(ValueError, match="no expression scores"):
        summarize([])


def test_results_json_and_csv(tmp_path):
    table = summarize(_scores(), "ref-youtube-vos")
    back = read_results_json(write_results_json(table, tmp_path / "out" / "results.json"))
    assert back == table
    rows = list(csv.DictReader(open(write_results_csv(table, tmp_path / "results.csv"))))
    assert [r["level"] for r in rows] == ["dataset", "video", "video", "expression", "expression", "expression"]
    assert float(rows[0]["J&F"]) == table.overall.jf
    assert rows[3]["video"] == "a" and rows[3]["frames"] == "3"
    text = format_table(table)
    assert "ref-youtube-vos" in text and "55.0" in text
    with pytest.raises(FileNotFoundError):
        read_results_json(tmp_path / "missing.json")
