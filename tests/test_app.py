"""The Gradio app: handlers (including every bad input) and the named API endpoint via gradio_client."""
from __future__ import annotations

import math
import time
import zipfile
from pathlib import Path

import gradio as gr
import numpy as np
import pytest

from app_fixtures import import_app, make_checkpoint, make_video
from mpg_sam2.app import requests as app_requests


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("app_ckpt"))


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("app_video"))


@pytest.fixture(scope="module")
def app(checkpoint):
    return import_app(checkpoint)


def test_app_imports_without_launching(app, checkpoint):
    assert app.demo is not None and not app.demo.is_running
    assert app.MODELS[0].source == str(checkpoint)


def test_handler_runs_and_exports(app, video):
    outputs = app.segment(str(video), "the man in the red shirt\nthe black dog", app.MODELS[0].source, 4, 0, 0.5,
                          ["mask prior", "attention"], progress=None)
    side_by_side, downloads, summary, scores, stage_text, inspector = outputs
    assert Path(side_by_side).exists() and Path(inspector).is_dir()
    zips = [d for d in downloads if d.endswith(".zip")]
    assert len(zips) == 1 and all(Path(d).exists() for d in downloads)
    assert len(summary) == 2 and list(scores.columns) == ["frame", "time_s", "expression", "object score"]
    assert "4 frames" in stage_text
    slider, *panels = app.open_inspector(inspector)
    assert slider["maximum"] == 3 and slider["value"] == 0 and slider["interactive"] is True
    original, prior, final, attention = app.show_frame(inspector, 3)
    assert original.shape == prior.shape == final.shape == attention.shape == (62, 98, 3)
    np.testing.assert_array_equal(panels[0], app.show_frame(inspector, 0)[0])
    with zipfile.ZipFile(zips[0]) as archive:
        assert "manifest.json" in archive.namelist()


def test_inspector_reads_one_frame_per_change(app, video, monkeypatch):
    """Moving the slider maps the arrays; it never reads (or decompresses) a whole one."""
    import numpy.lib.format as npy_format

    inspector = app.segment(str(video), "the black dog", app.MODELS[0].source, 6, 0, 0.5, [], progress=None)[5]
    frames = np.load(Path(inspector) / "frames.npy")

    def whole_array_read(*args, **kwargs):
        raise AssertionError("the inspector read a whole array")

    monkeypatch.setattr(npy_format, "read_array", whole_array_read)
    for index in (5, 0, 3):
        original, _, final, attention = app.show_frame(inspector, index)
        np.testing.assert_array_equal(original, frames[index])
        assert final.shape == original.shape and attention is None  # attention was not asked for


def test_inspector_refuses_folders_that_are_not_results(app, tmp_path):
    assert app.show_frame(str(tmp_path), 0) == (None, None, None, None)
    assert app.show_frame("/etc", 0) == (None, None, None, None)


def test_failed_run_leaves_no_folder_behind(app, video, monkeypatch, tmp_path):
    from mpg_sam2.app import requests

    def broken_export(*args, **kwargs):
        raise OSError("disk full")

    # A folder of its own: other runs on this machine write to the shared temp folder meanwhile.
    monkeypatch.setattr(requests, "OUTPUT_ROOT", tmp_path / "outputs")
    monkeypatch.setattr(requests, "export_segmentation", broken_export)
    with pytest.raises(gr.Error, match="disk full"):
        app.segment(str(video), "the black dog", app.MODELS[0].source, 3, 0, 0.5, [], progress=None)
    assert not requests.OUTPUT_ROOT.exists() or not any(requests.OUTPUT_ROOT.iterdir())


def test_old_outputs_are_cleaned(tmp_path, monkeypatch):
    monkeypatch.setattr(app_requests, "OUTPUT_ROOT", tmp_path)
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    app_requests.clean_old_outputs(now=time.time() + app_requests.KEEP_OUTPUTS_S + 10)
    assert not old.exists() and not new.exists()
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    app_requests.clean_old_outputs()
    assert fresh.exists()


def test_gpu_budget_from_measured_costs():
    from mpg_sam2.app import gpu_budget as budget

    one, four = budget.estimate_gpu_seconds(64, 1), budget.estimate_gpu_seconds(64, 4)
    assert one < four <= budget.MAX_GPU_SECONDS
    per_frame = budget.IMAGE_ENCODER_S_PER_FRAME + budget.EXPRESSION_S_PER_FRAME
    assert one == math.ceil((budget.WORKER_START_S + 64 * per_frame) * budget.SAFETY_FACTOR)
    for k in (1, 3, 8):
        frames = budget.max_frames_within_budget(k)
        assert budget.plan_gpu_budget(frames, k).fits
        with pytest.raises(budget.BudgetExceeded, match=f"lower the frame cap to {frames} or less"):
            budget.plan_gpu_budget(frames + 1, k)
    # The largest request the sliders allow is refused with what to lower.
    with pytest.raises(budget.BudgetExceeded, match=r"300 frames x 8 expressions .* keep \d expressions?"):
        budget.plan_gpu_budget(300, 8)


def test_concurrency_follows_the_hardware(monkeypatch):
    from mpg_sam2.app import zerogpu

    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert zerogpu.run_concurrency() == 1
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert zerogpu.run_concurrency() == zerogpu.ZEROGPU_CONCURRENCY > 1


def test_examples_run_with_their_own_model(app):
    from mpg_sam2.app.examples import load_examples
    from mpg_sam2.app.models import BUNDLED_MODEL

    assert app.EXAMPLES, "the bundled model is offered, so the synthetic examples must be listed"
    assert all(e.model_source == str(BUNDLED_MODEL) and "synthetic" in e.video.name for e in app.EXAMPLES)
    photo_only = [c for c in app.MODELS if c.source != str(BUNDLED_MODEL)]
    assert load_examples(photo_only) == []


def test_example_results_outlive_the_cleanup(app, tmp_path, monkeypatch):
    """An example's result folder sits in Gradio's example cache, out of the hourly cleanup's
    reach, and its inspector still opens after that cleanup has run."""
    monkeypatch.setenv("GRADIO_EXAMPLES_CACHE", str(tmp_path / "cached_examples"))
    example = app.EXAMPLES[0]
    inspector = app.segment_example(str(example.video), example.expressions, example.model_source)[5]
    assert Path(inspector).is_relative_to(tmp_path / "cached_examples")
    app_requests.clean_old_outputs(now=time.time() + app_requests.KEEP_OUTPUTS_S + 10)
    slider, original, *_ = app.open_inspector(inspector)
    assert slider["maximum"] == 23 and original.shape == (256, 256, 3)
    # The same example gives the same folder (a rerun replaces it rather than adding one).
    again = app.segment_example(str(example.video), example.expressions, example.model_source)[5]
    assert again == inspector and len(list((tmp_path / "cached_examples" / "mpg_sam2_results").iterdir())) == 1


def test_gradio_client_end_to_end(app, video):
    from gradio_client import Client, handle_file

    app.demo.launch(server_name="127.0.0.1", server_port=0 or None, prevent_thread_lock=True, quiet=True,
                    max_file_size=app_requests.MAX_UPLOAD)
    try:
        client = Client(app.demo.local_url, verbose=False)
        outputs = client.predict(
            handle_file(str(video)), "the man in the red shirt", app.MODELS[0].source, 3, 0, 0.5, ["mask prior"],
            api_name="/segment",
        )
        side_by_side, downloads = outputs[0], outputs[1]
        video_path = side_by_side["video"] if isinstance(side_by_side, dict) else side_by_side
        assert Path(video_path).exists() and Path(video_path).stat().st_size > 0
        assert any(str(d).endswith(".zip") for d in downloads)
        with pytest.raises(Exception, match="at least one referring expression"):
            client.predict(handle_file(str(video)), "   ", app.MODELS[0].source, 3, 0, 0.5, [], api_name="/segment")
    finally:
        app.demo.close()


def test_app_and_model_never_import_training_or_evaluation_code(checkpoint):
    import subprocess
    import sys

    # Nor the evaluation package: the app reads the bundled model's evaluation.json through
    # mpg_sam2.checkpoint.evaluation.
    code = ("import sys, app; bad = sorted(m for m in sys.modules if m.startswith(('mpg_sam2.training', "
            "'mpg_sam2.evaluation'))); assert not bad, bad")
    env = {**__import__("os").environ, "MPG_SAM2_MODEL": str(checkpoint), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_app_import_makes_no_network_call(checkpoint, tmp_path):
    """Imported online (no HF_HUB_OFFLINE) with every socket refused: a released checkpoint in the
    Hub cache is loaded from the cache alone, the others are offered for download, and not one
    connection or name lookup is attempted."""
    import json
    import os
    import shutil
    import subprocess
    import sys

    from mpg_sam2.checkpoint.registry import HUB_REPO

    repo = tmp_path / "hf" / "hub" / f"models--{HUB_REPO.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)  # no newline: huggingface_hub reads the hash as is
    shutil.copytree(checkpoint, repo / "snapshots" / commit / "models" / "mpg_sam2_tiny")
    script = """
import json, socket
attempts = []
def refuse(*args, **kwargs):
    attempts.append(repr(args[:2]))
    raise OSError("network refused by the test")
socket.socket.connect = socket.socket.connect_ex = refuse
socket.create_connection = socket.getaddrinfo = refuse
import app
print(json.dumps({"attempts": attempts, "models": [[m.source, m.on_disk] for m in app.MODELS]}))
"""
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "MPG_SAM2_MODEL", "SPACES_ZERO_GPU", "HF_HUB_CACHE")}
    # Gradio's own usage analytics are not the app's calls; they are off on the Space too.
    env.update(HF_HOME=str(tmp_path / "hf"), GRADIO_ANALYTICS_ENABLED="False")
    run = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[1], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["attempts"] == []
    models = dict((source, on_disk) for source, on_disk in result["models"])
    assert models["tiny"] is True  # from the cache, loaded at import
    assert models["mevis"] is False and models["ref-youtube-vos"] is False  # offered, not fetched


# ---- click corrections (#15) ----

class _Select:
    """What Gradio hands a ``.select`` listener of an image: the clicked pixel as ``[x, y]``."""

    def __init__(self, x: int, y: int) -> None:
        self.index = [x, y]


def _click(app, inspector, frame, clicks, x, y, label):
    return app.add_point(inspector, frame, clicks, label, _Select(x, y))


@pytest.fixture(scope="module")
def two_expressions(app, video):
    """A result with two expressions and attention (the inspector folder)."""
    return app.segment(str(video), "the man in the red shirt\nthe black dog", app.MODELS[0].source, 5, 0, 0.5,
                       ["mask prior", "attention"], progress=None)[5]


def test_clicks_add_toggle_undo_and_reset(app, two_expressions):
    import json

    from mpg_sam2.app.clicks import DOT_COLORS

    inspector = two_expressions
    clicks, original, final, line = _click(app, inspector, 2, "[]", 40, 30, 1)
    assert json.loads(clicks) == [{"frame": 2, "x": 40, "y": 30, "label": 1}] and "1 point waiting" in line
    clicks, original, final, line = _click(app, inspector, 2, clicks, 10, 50, 0)  # the toggle on "not on it"
    assert [c["label"] for c in json.loads(clicks)] == [1, 0] and "1 not on it" in line
    # The dots are drawn where the clicks are, in their colours, on both clickable panels.
    plain_original, _, plain_final, _ = app.show_frame(inspector, 2)
    for shown in (original, final):
        assert tuple(shown[30, 40]) == DOT_COLORS[1] and tuple(shown[50, 10]) == DOT_COLORS[0]
    np.testing.assert_array_equal(original[:20, 60:], plain_original[:20, 60:])  # nothing else changed
    # The slider shows the dots of its own frame only.
    assert tuple(app.show_frame(inspector, 2, clicks)[0][30, 40]) == DOT_COLORS[1]
    np.testing.assert_array_equal(app.show_frame(inspector, 3, clicks)[0], app.show_frame(inspector, 3)[0])
    clicks, original, final, line = app.undo_point(inspector, 2, clicks)
    assert json.loads(clicks) == [{"frame": 2, "x": 40, "y": 30, "label": 1}]
    np.testing.assert_array_equal(original[45:, :20], plain_original[45:, :20])  # the red dot is gone
    clicks, original, final, line = app.reset_points(inspector, 2)
    assert clicks == "[]" and "No points yet" in line
    np.testing.assert_array_equal(original, plain_original)
    np.testing.assert_array_equal(final, plain_final)


def test_click_mistakes_are_warnings(app, two_expressions):
    inspector = two_expressions
    with pytest.warns(UserWarning, match="outside the 98 x 62 frame"):
        clicks = _click(app, inspector, 1, "[]", 98, 10, 1)[0]
    assert clicks == "[]"
    with pytest.warns(UserWarning, match="Segment a video first"):
        assert _click(app, "", 0, "[]", 5, 5, 1)[0] == "[]"
    with pytest.warns(UserWarning, match="no point to undo"):
        assert app.undo_point(inspector, 0, "[]")[0] == "[]"


@pytest.mark.parametrize(("inspector", "expression", "clicks", "message"), [
    ("", 0, '[{"frame": 1, "x": 5, "y": 5, "label": 1}]', "Segment a video first"),
    ("result", 0, "[]", "no points to apply"),
    ("result", None, '[{"frame": 1, "x": 5, "y": 5, "label": 1}]', "Choose which expression"),
    ("result", 0, '[{"frame": 9, "x": 5, "y": 5, "label": 1}]', "frame 9 does not exist"),
    ("result", 0, '[{"frame": 1, "x": 500, "y": 5, "label": 1}]', "outside the 98 x 62 frame"),
])
def test_bad_corrections_are_refused(app, two_expressions, inspector, expression, clicks, message):
    with pytest.raises(gr.Error, match=message):
        app.correct(two_expressions if inspector == "result" else inspector, expression, clicks, progress=None)


def test_rerun_with_clicks_changes_only_that_expression(app, two_expressions):
    """The corrected expression equals segment_video with the same clicks on the same frames; the
    other one, and the result that was corrected, stay as they were; clicks accumulate."""
    import json

    from mpg_sam2.pipeline.clicks import Correction, read_corrections
    from mpg_sam2.pipeline.segmentation import SegmentationOptions, segment_video

    before = Path(two_expressions)
    old = {name: np.load(before / f"{name}.npy") for name in ("frames", "masks", "priors", "attention")}
    clicks = "[]"
    for frame, x, y, label in ((2, 40, 30, 1), (4, 70, 12, 1), (2, 20, 50, 0)):
        clicks = _click(app, two_expressions, frame, clicks, x, y, label)[0]
    start = time.perf_counter()
    outputs = app.correct(two_expressions, 1, clicks, progress=None)
    seconds = time.perf_counter() - start
    print(f"one correction re-run (5 frames, 2 corrected frames): {seconds:.2f} s")
    side_by_side, downloads, summary, scores, stage_text, inspector = outputs
    after = Path(inspector)
    assert after.parent != before.parent and Path(side_by_side).is_file()
    new = {name: np.load(after / f"{name}.npy") for name in old}
    np.testing.assert_array_equal(new["frames"], old["frames"])
    for name in ("masks", "priors", "attention"):
        np.testing.assert_array_equal(new[name][0], old[name][0], err_msg=name)  # the other expression
    np.testing.assert_array_equal(np.load(before / "masks.npy"), old["masks"])  # the corrected folder is kept

    pretrained = app.POOL.get(app.MODELS[0].source)
    options = SegmentationOptions(threshold=0.5, record_attention=True)
    corrections = [Correction(0, 2, ((40.0, 30.0, 1), (20.0, 50.0, 0))), Correction(0, 4, ((70.0, 12.0, 1),))]
    expected = segment_video(old["frames"], ["the black dog"], pretrained.model, pretrained.tokenizer,
                             options=options, corrections=corrections).expressions[0]
    masks = np.unpackbits(new["masks"][1], axis=-1, count=98).astype(bool)
    np.testing.assert_array_equal(masks, expected.masks)
    assert not np.array_equal(new["masks"][1], old["masks"][1]), "the clicks changed nothing; pick other points"
    assert summary[1][1] == "the black dog" and summary[1][2] == f"{int((expected.object_scores > 0).sum())}/5"
    clicks_file = next(Path(d) for d in downloads if d.endswith("_clicks.json"))
    assert read_corrections(clicks_file) == [Correction(1, c.frame, c.points) for c in corrections]
    with zipfile.ZipFile(next(d for d in downloads if d.endswith(".zip"))) as archive:
        assert json.loads(archive.read("manifest.json"))["num_frames"] == 5
    slider, *_, applied = app.open_inspector(inspector)
    assert slider["value"] == 4 and "“the black dog”: 2 points on frame 2" in applied  # opens on the last clicked frame

    # A second re-run adds its clicks to the ones applied before: frame 2, clicked before, is
    # decoded with its two earlier points and the new one (SAM 2 adds points to a frame).
    more = _click(app, inspector, 2, "[]", 50, 40, 0)[0]
    second = app.correct(inspector, 1, more, progress=None)
    again = Path(second[5])
    replayed = [*corrections, Correction(0, 2, ((40.0, 30.0, 1), (20.0, 50.0, 0), (50.0, 40.0, 0)))]
    clicks_file = next(Path(d) for d in second[1] if d.endswith("_clicks.json"))
    assert read_corrections(clicks_file) == [Correction(1, c.frame, c.points) for c in replayed]
    expected = segment_video(old["frames"], ["the black dog"], pretrained.model, pretrained.tokenizer, options=options,
                             corrections=replayed).expressions[0]
    masks = np.unpackbits(np.load(again / "masks.npy")[1], axis=-1, count=98).astype(bool)
    np.testing.assert_array_equal(masks, expected.masks)
    np.testing.assert_array_equal(np.load(again / "masks.npy")[0], old["masks"][0])


def test_a_record_naming_a_removed_option_still_loads(two_expressions, tmp_path):
    """Records written before the precision moved onto the model carry "precision" in their
    options; they still load, with the options that remain."""
    import json
    import shutil

    from mpg_sam2.app.request_record import _INDEX, RECORD_DIR, load_record

    folder = shutil.copytree(Path(two_expressions).parent, tmp_path / "old")
    index_file = folder / RECORD_DIR / _INDEX
    index = json.loads(index_file.read_text(encoding="utf-8"))
    expected = load_record(folder).options
    index["options"]["precision"] = "fp32"
    index_file.write_text(json.dumps(index), encoding="utf-8")
    assert load_record(folder).options == expected


def test_correction_budget_counts_one_pass_per_correction():
    from mpg_sam2.app import gpu_budget as budget

    plain = budget.estimate_gpu_seconds(64, 1)
    assert budget.estimate_gpu_seconds(64, 1, 0) == plain
    two = budget.estimate_gpu_seconds(64, 1, 2)
    per_frame = budget.IMAGE_ENCODER_S_PER_FRAME + budget.EXPRESSION_S_PER_FRAME + 2 * budget.RETRACK_S_PER_FRAME
    assert two == math.ceil((budget.WORKER_START_S + 64 * per_frame) * budget.SAFETY_FACTOR) > plain
    with pytest.raises(budget.BudgetExceeded, match="300 frames with 9 corrected frames .* click on fewer frames"):
        budget.plan_gpu_budget(300, 1, 9)
