"""The Gradio app: handlers (including every bad input) and the named API endpoint via gradio_client."""
from __future__ import annotations

import time
import zipfile
from pathlib import Path

import pytest

from app_fixtures import import_app, make_checkpoint, make_video
from mpg_sam2.app import requests as app_requests
from mpg_sam2.app.requests import UserInputError, gpu_seconds, run_request
from mpg_sam2.app.results import inspect_frame


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


def test_handler_runs_and_exports(checkpoint, video):
    progress = []
    result = run_request(str(video), "the man in the red shirt\nthe black dog", str(checkpoint), 4, 0, 0.5,
                         ["mask prior", "attention"], progress=lambda f, m: progress.append(f))
    assert result.num_frames == 4 and result.folder.exists()
    assert result.side_by_side.exists() and result.zip.exists() and result.zip in result.downloads
    assert len(result.summary) == 2 and list(result.scores.columns) == ["frame", "time_s", "expression", "object score"]
    assert any("4" in n for n in result.notices)  # the frame cap trimmed the 6-frame video
    assert progress == sorted(progress) and progress[-1] == pytest.approx(1.0)
    original, prior, final, attention = inspect_frame(result.inspector, 3)
    assert original.shape == prior.shape == final.shape == attention.shape == (62, 98, 3)
    with zipfile.ZipFile(result.zip) as archive:
        assert "manifest.json" in archive.namelist()


@pytest.mark.parametrize(("video_kind", "text", "cap", "message"), [
    ("none", "the dog", 8, "Upload a video"),
    ("good", "  \n ", 8, "at least one referring expression"),
    ("good", "\n".join(f"object {i}" for i in range(9)), 8, "At most 8 expressions"),
    ("good", "the dog", 0, "frame cap"),
    ("text", "the dog", 8, "could not open"),
    ("good", "the dog\nThe dog", 8, "repeats expression 1"),
])
def test_bad_inputs_are_user_errors(checkpoint, video, tmp_path, video_kind, text, cap, message):
    path = {"none": None, "good": str(video)}.get(video_kind)
    if video_kind == "text":
        path = str(tmp_path / "notes.mp4")
        Path(path).write_text("not a video")
    before = set(app_requests.OUTPUT_ROOT.iterdir()) if app_requests.OUTPUT_ROOT.exists() else set()
    with pytest.raises(UserInputError, match=message):
        run_request(path, text, str(checkpoint), cap, 0, 0.5, [])
    after = set(app_requests.OUTPUT_ROOT.iterdir()) if app_requests.OUTPUT_ROOT.exists() else set()
    assert after == before, "a failed request left files behind"


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


def test_gpu_duration_grows_with_work(video):
    one = gpu_seconds(str(video), 64, 1)
    four = gpu_seconds(str(video), 64, 4)
    assert 60 <= one <= four <= 300
    assert gpu_seconds(None, 300, 8) == 300


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


def test_app_and_model_never_import_training_code(checkpoint):
    import subprocess
    import sys

    code = ("import sys, app; bad = sorted(m for m in sys.modules if m.startswith('mpg_sam2.training')); "
            "assert not bad, bad")
    env = {**__import__("os").environ, "MPG_SAM2_MODEL": str(checkpoint), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
