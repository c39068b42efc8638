"""The evaluation runner end to end on tiny datasets in the benchmarks' on-disk formats.

One test runs the tiny synthetic-weight model; the others swap ``segment_video`` for a fast
deterministic stand-in (masks drawn from the text, or the ground truth itself) so that layouts,
resuming, sharding, matching and the zips are checked in seconds.
"""
from __future__ import annotations

import itertools
import json
import zipfile
import zlib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from dataset_factory import HEIGHT, WIDTH, write_mevis, write_ref_davis17, write_ref_youtube_vos
from mpg_sam2.cli import main
from mpg_sam2.evaluation import boundary_f_measure, read_results_json, region_similarity
from mpg_sam2.evaluation import davis_unsupervised, runner
from mpg_sam2.evaluation.runner import EvaluationConfig, run_evaluation
from mpg_sam2.evaluation.shards import resolve_shard
from mpg_sam2.checkpoint.pretrained import load_pretrained
from tiny_model import save_tiny_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny"), seed=7)


@pytest.fixture(scope="module")
def pretrained(checkpoint):
    return load_pretrained(str(checkpoint))


def text_masks(text: str, t: int, h: int, w: int) -> np.ndarray:
    """A box placed by the text's hash, moving one pixel a frame."""
    seed = zlib.crc32(text.encode())
    y, x = seed % (h - 10), (seed >> 8) % (w - 14)
    m = np.zeros((t, h, w), dtype=bool)
    for i in range(t):
        m[i, y : y + 9, x + i % 4 : x + i % 4 + 10] = True
    return m


def fake_segmenter(calls: list, by_text=None):
    """Stands in for segment_video; records the texts of each call."""

    def segment(frames, expressions, model, tokenizer=None, *, options=None, **_):
        texts = [e.text for e in expressions]
        calls.append(texts)
        t, h, w = frames.shape[:3]
        made = [(by_text or {}).get(text) for text in texts]
        masks = [m if m is not None else text_masks(text, t, h, w) for m, text in zip(made, texts)]
        return SimpleNamespace(expressions=[SimpleNamespace(text=x, masks=m[:t]) for x, m in zip(texts, masks)])

    return segment


def config(dataset: str, root: Path, out: Path, **kw) -> EvaluationConfig:
    return EvaluationConfig(dataset=dataset, root=root, out=out, model="tiny-test", device="cpu", **kw)


def pngs(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.array(image)


def direct_scores(fake, out: Path) -> tuple[float, float]:
    """J and F means over expressions computed here from the written PNGs and the factory's truth."""
    js, fs = [], []
    for (video, exp_id), _ in sorted(fake.expressions.items()):
        if not video.startswith("valid_u"):
            continue
        target = fake.target(video, exp_id)
        frames = fake.frames[video]
        preds = [read_png(out / "Annotations" / video / exp_id / f"{n}.png") > 0 for n in frames]
        js.append(np.mean([region_similarity(g, p) for g, p in zip(target, preds)]))
        fs.append(np.mean([boundary_f_measure(g, p) for g, p in zip(target, preds)]))
    return float(np.mean(js)), float(np.mean(fs))


# --- the model end to end --------------------------------------------------------------------------


def test_mevis_valid_u_with_the_tiny_model(tmp_path, pretrained, monkeypatch):
    fake = write_mevis(tmp_path / "mevis")
    out = tmp_path / "out"
    report = run_evaluation(config("mevis-valid-u", fake.root, out), pretrained=pretrained, progress=False)
    # 2 videos: 5 frames x 3 expressions + 3 frames x 1 expression, binary 0/255 "L" PNGs.
    expected = [f"{v}/{e}/{n}.png" for (v, e) in sorted(fake.expressions) if v.startswith("valid_u")
                for n in fake.frames[v]]
    assert pngs(out / "Annotations") == sorted(expected) and len(expected) == 18
    first = Image.open(out / "Annotations" / expected[0])
    assert first.mode == "L" and first.size == (WIDTH, HEIGHT)
    values = np.unique(np.concatenate([read_png(out / "Annotations" / p).ravel() for p in expected]))
    assert set(values.tolist()) <= {0, 255} and 255 in values
    assert report.predicted == 4 and report.skipped == 0 and report.submission is None

    j, f = direct_scores(fake, out)
    overall = report.table.overall
    assert overall.count == 4
    assert overall.j == pytest.approx(j, abs=1e-12) and overall.f == pytest.approx(f, abs=1e-12)
    assert overall.jf == pytest.approx((j + f) / 2, abs=1e-12)
    assert read_results_json(out / "results.json").overall == overall
    assert (out / "results.csv").read_text().splitlines()[1].startswith("dataset,")

    # Everything is on disk: a rerun predicts nothing and gives the same table.
    monkeypatch.setattr(runner, "segment_video", lambda *a, **k: pytest.fail("finished expressions were recomputed"))
    again = run_evaluation(config("mevis-valid-u", fake.root, out), pretrained=pretrained, progress=False)
    assert again.predicted == 0 and again.skipped == 4 and again.table.overall == overall


# --- layouts and zips ------------------------------------------------------------------------------


def test_submission_zips(tmp_path, pretrained, monkeypatch):
    calls: list = []
    monkeypatch.setattr(runner, "segment_video", fake_segmenter(calls))
    ytvos = write_ref_youtube_vos(tmp_path / "ytvos")
    report = run_evaluation(config("ref-youtube-vos", ytvos.root, tmp_path / "y"), pretrained=pretrained, progress=False)
    assert report.table is None and report.submission == tmp_path / "y" / "submission.zip"
    assert len(calls) == 2  # one call per video, both expressions at once
    with zipfile.ZipFile(report.submission) as archive:
        files = sorted(n for n in archive.namelist() if not n.endswith("/"))
        folders = {n for n in archive.namelist() if n.endswith("/")}
        png = np.array(Image.open(archive.open("Annotations/v_a/1/00002.png")))
    # The 202-video valid set: the test video is not in the zip; Annotations/ at the root.
    assert files == [f"Annotations/{v}/{e}/{n:05d}.png" for v in ("v_a", "v_b") for e in "01" for n in range(3)]
    assert {"Annotations/", "Annotations/v_a/", "Annotations/v_a/0/"} <= folders
    np.testing.assert_array_equal(png, text_masks("a car in v_a", 3, HEIGHT, WIDTH)[2].astype(np.uint8) * 255)

    mevis = write_mevis(tmp_path / "mevis")
    report = run_evaluation(config("mevis", mevis.root, tmp_path / "m"), pretrained=pretrained, progress=False)
    with zipfile.ZipFile(report.submission) as archive:
        files = sorted(n for n in archive.namelist() if not n.endswith("/"))
    # MeViS packs the video folders directly (no Annotations/ level), as its guideline says.
    want = [f"{v}/{e}/{n}.png" for (v, e) in mevis.expressions if v.startswith("valid_v") for n in mevis.frames[v]]
    assert files == sorted(want) and len(files) == 5 * 3 + 3 * 1


def test_resume_skips_finished_expressions(tmp_path, pretrained, monkeypatch):
    calls: list = []
    monkeypatch.setattr(runner, "segment_video", fake_segmenter(calls))
    fake = write_mevis(tmp_path / "mevis")
    out = tmp_path / "out"
    first = run_evaluation(config("mevis-valid-u", fake.root, out), pretrained=pretrained, progress=False)
    assert len(calls) == 2 and first.predicted == 4
    state = json.loads((out / "evaluation_state" / "shard-0-of-1.json").read_text())
    assert state["finished"] and state["config"]["model"] == "tiny-test"

    calls.clear()
    assert run_evaluation(config("mevis-valid-u", fake.root, out), pretrained=pretrained, progress=False).predicted == 0
    assert calls == []

    # A lost expression folder and a folder missing one frame are predicted again, nothing else.
    import shutil

    shutil.rmtree(out / "Annotations" / "valid_u_v2" / "1")
    (out / "Annotations" / "valid_u_v1" / "0" / "00002.png").unlink()
    again = run_evaluation(config("mevis-valid-u", fake.root, out), pretrained=pretrained, progress=False)
    assert sorted(map(tuple, calls)) == [(fake.expressions[("valid_u_v1", "0")],), (fake.expressions[("valid_u_v2", "1")],)]
    assert again.predicted == 2 and again.skipped == 2
    assert again.table.overall == first.table.overall

    with pytest.raises(ValueError, match=r"holds predictions of another run \(threshold 0.5 -> 0.6"):
        run_evaluation(config("mevis-valid-u", fake.root, out, threshold=0.6), pretrained=pretrained, progress=False)


def test_repeated_expression_texts_are_segmented_once(tmp_path, pretrained, monkeypatch):
    calls: list = []
    monkeypatch.setattr(runner, "segment_video", fake_segmenter(calls))
    fake = write_mevis(tmp_path / "mevis")
    meta_path = fake.root / "valid_u" / "meta_expressions.json"
    meta = json.loads(meta_path.read_text())
    exps = meta["videos"]["valid_u_v2"]["expressions"]
    exps["1"]["exp"] = exps["0"]["exp"] + "  "  # the same text, as real datasets repeat them
    exps["2"]["exp"] = exps["0"]["exp"].upper()  # differs in case only: its own tokens, its own masks
    meta_path.write_text(json.dumps(meta))
    out = tmp_path / "out"
    report = run_evaluation(config("mevis-valid-u", fake.root, out), pretrained=pretrained, progress=False)
    assert report.predicted == 4
    v2 = [c for c in calls if len(c) > 1][0]
    assert v2 == [exps["0"]["exp"], exps["0"]["exp"].upper()]
    folder = out / "Annotations" / "valid_u_v2"
    for name in fake.frames["valid_u_v2"]:
        np.testing.assert_array_equal(read_png(folder / "0" / f"{name}.png"), read_png(folder / "1" / f"{name}.png"))
    assert not np.array_equal(read_png(folder / "0" / "00000.png"), read_png(folder / "2" / "00000.png"))


def test_two_shards_and_merge_equal_one_run(tmp_path, pretrained, monkeypatch):
    calls: list = []
    monkeypatch.setattr(runner, "segment_video", fake_segmenter(calls))
    fake = write_mevis(tmp_path / "mevis")
    single = run_evaluation(config("mevis-valid-u", fake.root, tmp_path / "one"), pretrained=pretrained, progress=False)

    out = tmp_path / "sharded"
    first = run_evaluation(config("mevis-valid-u", fake.root, out, shard_index=0, shard_count=2), pretrained=pretrained, progress=False)
    assert first.table is None and first.pending_shards == [1] and first.predicted == 1
    assert not (out / "results.json").exists()
    last = run_evaluation(config("mevis-valid-u", fake.root, out, shard_index=1, shard_count=2), pretrained=pretrained, progress=False)
    assert last.merged and last.predicted == 3 and last.pending_shards == []
    assert pngs(out / "Annotations") == pngs(tmp_path / "one" / "Annotations")
    assert last.table.overall == single.table.overall
    assert last.table.expressions == single.table.expressions

    # --merge by hand, scoring in 2 processes, gives the same table.
    merged = run_evaluation(config("mevis-valid-u", fake.root, out, merge=True, workers=2), progress=False)
    assert merged.table.expressions == single.table.expressions


def test_torchrun_environment_picks_the_shard():
    assert resolve_shard(None, None, {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}) == (1, 2, 1)
    assert resolve_shard(0, 3, {"RANK": "1", "WORLD_SIZE": "2"}) == (0, 3, None)
    assert resolve_shard(None, None, {}) == (0, 1, None)
    with pytest.raises(ValueError, match="both --shard-index and --shard-count"):
        resolve_shard(1, None, {})
    with pytest.raises(ValueError, match=r"shard index must be in \[0, shard count\)"):
        EvaluationConfig("mevis", "r", "o", shard_index=2, shard_count=2)


# --- Ref-DAVIS17 -----------------------------------------------------------------------------------


def test_ref_davis17_matching_and_annotator_average(tmp_path, pretrained, monkeypatch):
    """Annotator 0 exact, 1 exact but with objects given swapped, 2 misses one object, 3 predicts nothing."""
    fake = write_ref_davis17(tmp_path / "davis")
    by_text = {}
    for (video, exp_id), text in fake.expressions.items():
        annotator, obj = int(exp_id) % 4, fake.targets[(video, exp_id)][0]
        truth = fake.target(video, exp_id)
        if annotator == 1 and video == "bike-packing":
            truth = fake.objects[(video, 3 - obj)]  # the other object
        elif (annotator == 2 and obj == 2) or annotator == 3:
            truth = np.zeros_like(truth)
        by_text[text] = truth
    calls: list = []
    monkeypatch.setattr(runner, "segment_video", fake_segmenter(calls, by_text))
    out = tmp_path / "out"
    report = run_evaluation(config("ref-davis17", fake.root, out), pretrained=pretrained, progress=False)
    assert len(calls) == 2 and report.submission is None

    # One palette label map per annotator, video and frame: label k + 1 = the annotator's k-th object.
    assert pngs(out) == sorted(f"anno_{a}/{v}/{n}.png" for a in range(4) for v in fake.frames for n in fake.frames[v])
    labels = Image.open(out / "anno_1" / "bike-packing" / "00000.png")
    assert labels.mode == "P"
    np.testing.assert_array_equal(np.array(labels), 1 * fake.objects[("bike-packing", 2)][0] + 2 * fake.objects[("bike-packing", 1)][0])

    table = report.table
    per = {a: m.jf for a, m in table.per_annotator.items()}
    assert per[0] == pytest.approx(1.0) and per[1] == pytest.approx(1.0)  # the swap is undone by the matching
    assert per[2] == pytest.approx(2 / 3) and per[3] == pytest.approx(0.0)  # 3 objects; missed ones score 0
    assert table.overall.jf == pytest.approx((1 + 1 + 2 / 3 + 0) / 4)
    assert table.per_annotator[0].count == 3  # ground-truth objects, not expressions
    swapped = [s.expression_id for s in table.expressions if s.annotator == 1 and s.video_id == "bike-packing"]
    assert swapped == ["5", "1"]  # object 1 matched to the expression written for object 2, and back
    missed = [s.expression_id for s in table.expressions if s.annotator == 2 and s.j == 0]
    assert missed == ["none (object 2)"]


def brute_force_unsupervised(gt: np.ndarray, pred: np.ndarray) -> list[tuple[float, float]]:
    """davis2017's unsupervised scores by trying every assignment (no void in these cases)."""
    n_gt, n_pred = int(gt[0].max()), int(pred.max())
    rows = max(n_gt, n_pred)
    score = {}
    for r, c in itertools.product(range(rows), range(n_gt)):
        g, p = gt == c + 1, pred == r + 1
        score[r, c] = (np.mean([region_similarity(a, b) for a, b in zip(g, p)]),
                       np.mean([boundary_f_measure(a, b) for a, b in zip(g, p)]))
    best = max(itertools.permutations(range(rows), n_gt), key=lambda perm: sum(sum(score[r, c]) for c, r in enumerate(perm)))
    return [score[r, c] for c, r in enumerate(best)]


def test_davis_matching_equals_brute_force_with_extra_predictions():
    rng = np.random.default_rng(3)
    gt = np.zeros((3, 20, 24), np.uint8)
    gt[:, 2:9, 3:12], gt[:, 11:18, 6:20] = 1, 2
    pred = np.zeros_like(gt)
    pred[:, 12:19, 5:21], pred[:, 1:8, 4:10], pred[:, 0:3, 0:3] = 1, 3, 2  # 3 predictions for 2 objects
    pred[rng.random(pred.shape) < 0.05] = 2
    matches = davis_unsupervised.match_objects(gt, pred)
    assert [m.gt_id for m in matches] == [1, 2] and [m.pred_id for m in matches] == [3, 1]
    for m, (j, f) in zip(matches, brute_force_unsupervised(gt, pred)):
        assert np.mean(m.j) == pytest.approx(j) and np.mean(m.f) == pytest.approx(f)
    # Void pixels (255) are ignored and do not count as an object.
    gt[:, 0, :] = 255
    assert len(davis_unsupervised.match_objects(gt, pred)) == 2


# --- the command line ------------------------------------------------------------------------------


def test_cli_evaluate(tmp_path, checkpoint, monkeypatch, capsys):
    calls: list = []
    monkeypatch.setattr(runner, "segment_video", fake_segmenter(calls))
    fake = write_ref_davis17(tmp_path / "davis", layout="davis")
    out = tmp_path / "out"
    code = main(["evaluate", "--dataset", "ref-davis17", "--root", str(fake.root), "--model", str(checkpoint),
                 "--out", str(out), "--device", "cpu", "--workers", "1", "--no-progress"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "ref-davis17 valid: 12 expressions predicted, 0 already done" in captured.out
    assert "J&F" in captured.out and "annotator 3" in captured.out and "results:" in captured.out
    assert "Annotations_unsupervised" in captured.err  # the DAVIS layout here has only the semi-supervised ids
    assert (out / "results.json").is_file() and len(calls) == 2


@pytest.mark.parametrize(("args", "message"), [
    (["--dataset", "ref-youtube-vos", "--root", "{missing}"], "Ref-YouTube-VOS root folder"),
    (["--dataset", "a2d", "--root", "{tmp}"], "choose one of ref-youtube-vos, mevis, mevis-valid-u, ref-davis17"),
    (["--dataset", "mevis", "--root", "{tmp}"], "meta_expressions.json is missing; expected layout"),
])
def test_cli_evaluate_errors(tmp_path, capsys, args, message):
    args = [a.format(missing=tmp_path / "nowhere", tmp=tmp_path) for a in args]
    assert main(["evaluate", *args, "--out", str(tmp_path / "out"), "--model", "tiny", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and message in err and "Traceback" not in err


def test_a_model_in_another_precision_is_refused_before_any_output(tmp_path, pretrained):
    """The fingerprint records the configured precision, so a model that does not hold it is
    refused rather than labelled wrongly; nothing is written."""
    fake = write_mevis(tmp_path / "mevis")
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"holds fp32 weights but the evaluation is configured for bf16"):
        run_evaluation(config("mevis-valid-u", fake.root, out, precision="bf16"), pretrained=pretrained, progress=False)
    assert not out.exists()
