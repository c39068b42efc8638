"""The app under ZeroGPU's process model (each GPU call in a forked child, see zerogpu_double):
no model load and no file access inside the GPU function, the same results as in-process, bad
input refused before any GPU call, and concurrent requests that do not mix."""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch

from app_fixtures import import_app, make_checkpoint, make_video
from video_factory import pattern_frames, write_video
from zerogpu_double import ForkedGpu

TEXTS = "the man in the red shirt\nthe black dog"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    return import_app(make_checkpoint(tmp_path_factory.mktemp("zerogpu_ckpt")))


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("zerogpu_video"))


@pytest.fixture
def forked(app, monkeypatch) -> ForkedGpu:
    double = ForkedGpu("app:segment_on_gpu")
    double.in_process = app.segment_on_gpu
    monkeypatch.setattr(app, "segment_on_gpu", double)
    return double


def _run(app, video, texts=TEXTS, frames=4, overlays=("mask prior", "attention")):
    return app.segment(str(video), texts, app.MODELS[0].source, frames, 0, 0.5, list(overlays), progress=None)


def _arrays(outputs) -> dict[str, np.ndarray]:
    inspector = Path(outputs[5])
    return {p.stem: np.load(p) for p in sorted(inspector.glob("*.npy"))}


def test_gpu_call_loads_no_model_and_touches_no_file(app, video, forked):
    outputs = _run(app, video)
    assert forked.calls == 1
    report = forked.reports[0]
    assert report.model_loads == []
    assert report.file_events == [], report.file_events[:10]
    assert Path(outputs[0]).is_file() and any(str(p).endswith(".zip") for p in outputs[1])


def careless_gpu_function(marker: str, source: str) -> str:
    """Writes a file and loads a model: what the GPU function must not do."""
    import app

    Path(marker).write_text("x")
    app.POOL.load(source)
    return "done"


def test_the_double_sees_file_access_and_model_loads(app, tmp_path):
    """The checks above can fail: a GPU function that writes a file and loads a model is seen."""
    marker = tmp_path / "written_on_the_gpu.txt"
    double = ForkedGpu("test_zerogpu_contract:careless_gpu_function")
    assert double(str(marker), app.MODELS[0].source) == "done"
    assert ("open", str(marker)) in double.reports[0].file_events
    assert double.reports[0].model_loads == [app.MODELS[0].source]
    assert marker.read_text() == "x"


def test_forked_results_equal_in_process_results(app, video, forked, monkeypatch):
    in_child = _run(app, video)
    monkeypatch.setattr(app, "segment_on_gpu", forked.in_process)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the worker (see app.segment_on_gpu): the same sums, in the same order
    try:
        in_process = _run(app, video)
    finally:
        torch.set_num_threads(threads)
    assert forked.calls == 1
    a, b = _arrays(in_child), _arrays(in_process)
    assert set(a) == {"frames", "masks", "priors", "attention"}
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert in_child[2] == in_process[2]  # summary rows
    assert in_child[3].equals(in_process[3])  # object scores per frame


@pytest.mark.parametrize(("video_kind", "text", "cap", "message"), [
    ("none", "the dog", 8, "Upload a video"),
    ("good", "  \n ", 8, "at least one referring expression"),
    ("good", "\n".join(f"object {i}" for i in range(9)), 8, "At most 8 expressions"),
    ("good", "the dog", 0, "frame cap"),
    ("text", "the dog", 8, "could not open"),
    ("good", "the dog\nThe dog", 8, "repeats expression 1"),
])
def test_bad_input_is_refused_before_the_gpu_call(app, video, forked, tmp_path, video_kind, text, cap, message):
    path = {"none": None, "good": str(video)}.get(video_kind)
    if video_kind == "text":
        path = str(tmp_path / "notes.mp4")
        Path(path).write_text("not a video")
    with pytest.raises(gr.Error, match=message):
        app.segment(path, text, app.MODELS[0].source, cap, 0, 0.5, [], progress=None)
    assert forked.calls == 0


def test_over_budget_request_is_refused_before_the_gpu_call(app, video, forked, monkeypatch):
    from mpg_sam2.app import gpu_budget

    monkeypatch.setattr(app, "on_zerogpu", lambda: True)
    monkeypatch.setattr(gpu_budget, "MAX_GPU_SECONDS", 20)  # 6 frames: 2 expressions need 21 s, one 20 s
    with pytest.raises(gr.Error, match=r"reserves at most 20 s.*lower the frame cap to \d+ or less"):
        _run(app, video, frames=6)
    assert forked.calls == 0
    outputs = _run(app, video, texts="the black dog", frames=6)  # one expression fits
    assert forked.calls == 1 and Path(outputs[0]).is_file()


def test_concurrent_requests_do_not_mix(app, tmp_path, forked):
    videos = [write_video(tmp_path / f"clip{i}.mp4", pattern_frames(5 + i, 98 - 16 * i, 62), fps=10)
              for i in range(2)]
    texts = ["the man in the red shirt", "a black dog running across the grass\nla girafe à gauche"]
    alone = [_arrays(_run(app, videos[i], texts[i])) for i in range(2)]
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(lambda i: _arrays(_run(app, videos[i], texts[i])), range(2)))
    assert forked.calls == 4
    for solo, mixed in zip(alone, together):
        assert set(solo) == set(mixed)
        for name in solo:
            np.testing.assert_array_equal(solo[name], mixed[name], err_msg=name)


def test_correction_is_its_own_gpu_call_without_files_or_model_loads(app, video, forked, monkeypatch):
    """A click correction goes through the same split: one more forked GPU call (one expression and
    its clicks in, arrays out), its result equal to the same correction run in-process."""
    outputs = _run(app, video)
    clicks = '[{"frame": 1, "x": 40, "y": 30, "label": 1}, {"frame": 1, "x": 10, "y": 50, "label": 0}]'
    corrected = app.correct(outputs[5], 1, clicks, progress=None)
    assert forked.calls == 2
    report = forked.reports[1]
    assert report.model_loads == [] and report.file_events == [], report.file_events[:10]
    monkeypatch.setattr(app, "segment_on_gpu", forked.in_process)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the worker
    try:
        in_process = app.correct(outputs[5], 1, clicks, progress=None)
    finally:
        torch.set_num_threads(threads)
    a, b = _arrays(corrected), _arrays(in_process)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    np.testing.assert_array_equal(a["masks"][0], _arrays(outputs)["masks"][0])  # the other expression


def test_correction_over_budget_is_refused_before_the_gpu_call(app, video, forked, monkeypatch):
    outputs = _run(app, video, texts="the black dog", frames=6)
    monkeypatch.setattr(app, "on_zerogpu", lambda: True)
    from mpg_sam2.app import gpu_budget

    # The cap fits the expression alone; each corrected frame adds a tracking pass (6 frames: 0.6 s).
    monkeypatch.setattr(gpu_budget, "MAX_GPU_SECONDS", gpu_budget.estimate_gpu_seconds(6, 1))
    assert gpu_budget.estimate_gpu_seconds(6, 1, 4) > gpu_budget.MAX_GPU_SECONDS
    clicks = json.dumps([{"frame": t, "x": 40, "y": 30, "label": 1} for t in (0, 1, 3, 5)])
    with pytest.raises(gr.Error, match="4 corrected frames .* click on fewer frames"):
        app.correct(outputs[5], 0, clicks, progress=None)
    assert forked.calls == 1
