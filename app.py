"""MPG-SAM 2 demo: segment the object a sentence refers to, in every frame of a video.

Widgets and handlers only; the work is in ``mpg_sam2`` (pipeline, exports, app helpers).
Runs on a ZeroGPU Space, a dedicated GPU or a CPU: ``python app.py``.

One run: check and decode in this process -> ``segment_on_gpu`` (on ZeroGPU, a GPU worker
forked from this process; it gets frames and token ids, returns arrays) -> exports, inspector
and summary in this process. A click correction ("Re-run with clicks") takes the same path with
one expression and its clicks: read the result back -> ``segment_on_gpu`` -> a new result folder.
"""
from __future__ import annotations

# `spaces` must be imported before torch on ZeroGPU Spaces; elsewhere it is optional.
try:
    import spaces  # noqa: F401
except ImportError:  # running locally without the package: the GPU function runs in-process
    spaces = None

from mpg_sam2.app.sam2_install import ensure_sam2

ensure_sam2()  # on a Space, sam2 is installed now rather than at build time (see that module)

import os
from pathlib import Path

import gradio as gr
import torch

from mpg_sam2.app.clicks import ClickOutside, add_click, describe_pending, draw_clicks, dump_pending, parse_pending
from mpg_sam2.app.corrections import finish_correction, prepare_correction
from mpg_sam2.app.examples import example_folder, example_output_root, load_examples
from mpg_sam2.app.gpu_job import GpuJob, run_gpu_job
from mpg_sam2.app.models import ModelPool, available_models
from mpg_sam2.app.requests import (
    MAX_FRAMES,
    MAX_UPLOAD,
    OUTPUT_ROOT,
    OVERLAYS,
    UserInputError,
    finish_request,
    prepare_request,
)
from mpg_sam2.app.request_record import applied_corrections
from mpg_sam2.app.results import (
    INSPECTOR_DIR,
    InspectorMissing,
    frame_size,
    inspect_frame,
    inspector_frames,
    inspector_open_frame,
    inspector_texts,
)
from mpg_sam2.pipeline.clicks import NEGATIVE, POSITIVE, ClickError
from mpg_sam2.app.zerogpu import gpu_function, on_zerogpu, run_concurrency
from mpg_sam2.pipeline.devices import select_device
from mpg_sam2.pipeline.segmentation import VideoSegmentation

# Built once, at import: on ZeroGPU the weights moved to "cuda" here are what `spaces` moves
# into every GPU worker; elsewhere they stay on this process's device for every request.
DEVICE = select_device("auto")
POOL = ModelPool(DEVICE)
MODELS = POOL.preload(available_models())
EXAMPLES = load_examples(MODELS)
_MAIN_PID = os.getpid()


def _reserved_seconds(job: GpuJob, *args, **kwargs) -> int:
    return job.gpu_seconds  # computed from measured per-frame costs in prepare_request


@gpu_function(duration=_reserved_seconds)
def segment_on_gpu(job: GpuJob, progress=None) -> VideoSegmentation:
    """The app's only GPU work: no file is read or written and no model is loaded here."""
    report = None if progress is None else (lambda fraction, message: progress(fraction, desc=message))
    if os.getpid() != _MAIN_PID:
        # A forked ZeroGPU worker inherits this process's OpenMP state but not its threads: a
        # multi-threaded CPU op (the frames' resizing) would wait forever for them.
        torch.set_num_threads(1)
    try:
        return run_gpu_job(job, POOL.get(job.model_source), progress=report)
    except torch.cuda.OutOfMemoryError:
        # gr.Error is the one exception ZeroGPU carries back with its message.
        raise gr.Error("The GPU ran out of memory; lower the frame cap or the number of expressions.") from None
    except Exception as error:
        raise gr.Error(f"The run failed: {type(error).__name__}: {error}") from None


def _pretrained(source: str):
    if not any(choice.source == source for choice in MODELS):
        raise UserInputError(f"Unknown model {source!r}; pick one from the Model list.")
    try:  # loaded at import, or a released checkpoint offered for download (never on ZeroGPU)
        return POOL.load(source)
    except Exception as error:
        raise UserInputError(f"The model {source} could not be loaded: {error}") from None


def _run(video, expressions, model, max_frames, fps, threshold, overlays, progress, folder: Path | None):
    def work():
        pretrained = _pretrained(model)
        request = prepare_request(video, expressions, model, pretrained, max_frames, fps, threshold, overlays,
                                  enforce_gpu_budget=on_zerogpu())
        segmentation = segment_on_gpu(request.job, progress)
        return finish_request(request, segmentation, str(DEVICE), folder)

    return _outputs(_guarded(work))


def _guarded(work):
    """``work()``, with what the user can fix and any other failure as ``gr.Error``."""
    try:
        return work()
    except UserInputError as error:
        raise gr.Error(str(error)) from None
    except gr.Error:
        raise
    except Exception as error:  # never a traceback in the page
        raise gr.Error(f"The run failed: {type(error).__name__}: {error}") from None


def _outputs(result):
    for notice in result.notices:
        gr.Warning(notice)
    return (str(result.side_by_side) if result.side_by_side else None, [str(p) for p in result.downloads],
            result.summary, result.scores, result.stage_text, str(result.inspector))


def segment(video, expressions, model, max_frames, fps, threshold, overlays, progress=gr.Progress()):
    """Segment ``video`` for each expression; returns the videos, summary and inspector folder."""
    return _run(video, expressions, model, max_frames, fps, threshold, overlays, progress, folder=None)


def segment_example(video, expressions, model):
    """An example with the default settings, into a folder that outlives the hourly cleanup."""
    return _run(video, expressions, model, 64, 0, 0.5, list(OVERLAYS), None,
                folder=example_folder(video, expressions, model))


def _inspector_path(inspector: str | None) -> Path | None:
    """The inspector folder, if it is one of this app's (the value comes from the page)."""
    if not inspector:
        return None
    path = Path(inspector).resolve()
    # Strictly inside a root, and an inspector folder: its parent (the result) is read too.
    if path.name != INSPECTOR_DIR or not any(
        path.parent != root.resolve() and path.parent.is_relative_to(root.resolve()) for root in (OUTPUT_ROOT, example_output_root())
    ):
        return None
    return path


def show_frame(inspector, index, clicks=None):
    """The four panels of one frame, with the waiting clicks on it as dots; reads that frame only."""
    path = _inspector_path(inspector)
    if path is None:
        return None, None, None, None
    try:
        original, prior, final, attention = inspect_frame(path, int(index or 0))
    except InspectorMissing as error:
        gr.Warning(str(error))
        return None, None, None, None
    on_frame = [c for c in parse_pending(clicks) if c.frame == int(index or 0)]
    return draw_clicks(original, on_frame), prior, draw_clicks(final, on_frame), attention


def open_inspector(inspector):
    """A new result: the slider spans its frames, the panels show its first frame (a corrected
    result: the clicked one), the expressions to correct are its own and no click waits."""
    path = _inspector_path(inspector)
    try:
        num_frames = inspector_frames(path) if path is not None else 0
        first, texts = (inspector_open_frame(path), inspector_texts(path)) if num_frames else (0, [])
    except InspectorMissing as error:
        gr.Warning(str(error))
        num_frames, first, texts = 0, 0, []
    slider = gr.update(minimum=0, maximum=max(1, num_frames - 1), value=first, interactive=num_frames > 1)
    choices = gr.update(choices=[(text, k) for k, text in enumerate(texts)], value=0 if texts else None)
    applied = _describe_applied(path.parent, texts) if texts else ""
    return (slider, *show_frame(inspector, first), choices, "[]", describe_pending([]), applied)


def _describe_applied(folder: Path, texts: list[str]) -> str:
    try:
        corrections = applied_corrections(folder)
        described = [texts[c.expression] for c in corrections]
    except (ClickError, KeyError, IndexError, TypeError) as error:
        gr.Warning(f"The record of this result's clicks is unreadable ({error}); segment the video again to correct it.")
        return ""
    if not corrections:
        return ""
    parts = [f"“{text}”: {len(c.points)} point{'s' if len(c.points) > 1 else ''} on frame {c.frame}"
             for text, c in zip(described, corrections)]
    return "**Corrections applied:** " + "; ".join(parts) + "."


def _redrawn(inspector, index, clicks):
    """What a change of the waiting clicks updates: the clicks, the two panels with dots, the line."""
    original, _, final, _ = show_frame(inspector, index, dump_pending(clicks))
    return dump_pending(clicks), original, final, describe_pending(clicks)


def add_point(inspector, index, clicks, label, evt: gr.SelectData):
    """A click on the Original or Final masks picture: one more point on the shown frame."""
    path = _inspector_path(inspector)
    pending = parse_pending(clicks)
    if path is None:
        gr.Warning("Segment a video first; then click on its frames to correct the masks.")
        return _redrawn(inspector, index, pending)
    try:
        pending = add_click(pending, int(index or 0), evt.index, int(label), frame_size(path))
    except ClickOutside as error:
        gr.Warning(str(error))
    except InspectorMissing as error:
        gr.Warning(str(error))
    return _redrawn(inspector, index, pending)


def undo_point(inspector, index, clicks):
    """Drop the last point (on whichever frame it is)."""
    pending = parse_pending(clicks)
    if not pending:
        gr.Warning("There is no point to undo.")
    return _redrawn(inspector, index, pending[:-1])


def reset_points(inspector, index):
    """Drop every waiting point."""
    return _redrawn(inspector, index, [])


def correct(inspector, expression, clicks, progress=gr.Progress()):
    """Re-run the chosen expression alone with its clicks; the other expressions stay as they are."""
    path = _inspector_path(inspector)
    if path is None:
        raise gr.Error("Segment a video first; then click on its frames to correct the masks.")

    def work():
        prepared = prepare_correction(path.parent, expression, parse_pending(clicks), _pretrained,
                                      enforce_gpu_budget=on_zerogpu())
        corrected = segment_on_gpu(prepared.request.job, progress)
        return finish_correction(prepared, corrected, str(DEVICE))

    return _outputs(_guarded(work))


def _model_note(source: str) -> str:
    return next((f"**Model:** {m.label} — {m.note}" for m in MODELS if m.source == source), "")


with gr.Blocks(title="MPG-SAM 2: referring video object segmentation", delete_cache=(3600, 3600)) as demo:
    gr.Markdown(
        "# MPG-SAM 2 — referring video object segmentation\n"
        "Upload a video, write one sentence per object (each gets a colour), and press **Segment**. "
        "You see the mask prior (where the model first looks), the final masks and the attention "
        "to your words side by side."
    )
    with gr.Row():
        with gr.Column(scale=1):
            video_in = gr.Video(label="Video", sources=["upload", "webcam"], elem_id="video-in")
            expressions_in = gr.Textbox(label="Referring expressions (one per line)", lines=3, elem_id="expressions",
                                        placeholder="the dog running to the left\nthe person in a red shirt")
            model_in = gr.Dropdown(choices=[(m.label, m.source) for m in MODELS], value=MODELS[0].source,
                                   label="Model", elem_id="model")
            with gr.Accordion("Advanced settings", open=False):
                max_frames_in = gr.Slider(1, MAX_FRAMES, value=64, step=1, label="Frame cap")
                fps_in = gr.Number(value=0, label="Sample at fps (0: every frame)", minimum=0)
                threshold_in = gr.Slider(0.05, 0.95, value=0.5, step=0.05, label="Mask threshold")
                overlays_in = gr.CheckboxGroup(list(OVERLAYS), value=list(OVERLAYS), label="Overlays")
            run = gr.Button("Segment", variant="primary")
            model_note = gr.Markdown(_model_note(MODELS[0].source))
        with gr.Column(scale=2):
            side_by_side = gr.Video(label="Original | mask prior | final masks | attention", autoplay=False,
                                    elem_id="side-by-side")
            stage_times = gr.Markdown(elem_id="stage-times")
            with gr.Tab("Frame inspector"):
                frame_slider = gr.Slider(0, 1, value=0, step=1, label="Frame", interactive=False,
                                         elem_id="frame-slider")
                with gr.Row():
                    panel_original = gr.Image(label="Original", type="numpy", elem_id="panel-original")
                    panel_prior = gr.Image(label="Mask prior", type="numpy")
                    panel_final = gr.Image(label="Final masks", type="numpy", elem_id="panel-final")
                    panel_attention = gr.Image(label="Attention to the text", type="numpy")
                gr.Markdown("**Correct with clicks:** click on the Original or Final masks picture to add a "
                            "point on this frame (points on several frames are fine), then re-run; only the "
                            "chosen expression is segmented again.")
                with gr.Row():
                    correct_expression = gr.Radio([], label="Expression to correct", type="value",
                                                  elem_id="correct-expression")
                    click_label = gr.Radio([("on the object (+)", POSITIVE), ("not on it (−)", NEGATIVE)],
                                           value=POSITIVE, label="A click is", elem_id="click-label")
                with gr.Row():
                    undo = gr.Button("Undo last point", size="sm")
                    reset = gr.Button("Reset clicks", size="sm")
                    rerun = gr.Button("Re-run with clicks", variant="primary", size="sm", elem_id="rerun")
                pending_text = gr.Markdown(describe_pending([]), elem_id="pending-clicks")
                applied_text = gr.Markdown(elem_id="applied-clicks")
            with gr.Tab("Summary"):
                summary = gr.Dataframe(headers=["colour", "expression", "frames with object", "first", "last",
                                                "mean area"], interactive=False, elem_id="summary")
                scores_plot = gr.LinePlot(x="frame", y="object score", color="expression",
                                          title="Object score per frame (> 0: object present)")
            downloads = gr.File(label="Downloads (zip of everything, videos, COCO RLE)", file_count="multiple",
                                elem_id="downloads")
    # The result's inspector folder: a plain value, because Gradio's example cache keeps plain
    # values but neither gr.State nor component updates (Gradio 6.31).
    inspector_key = gr.Textbox(visible="hidden", elem_id="inspector-key")
    # The clicks not applied yet, as JSON (mpg_sam2.app.clicks), for the same reason.
    clicks_key = gr.Textbox("[]", visible="hidden", elem_id="clicks-key")
    panels = [panel_original, panel_prior, panel_final, panel_attention]
    clicks_shown = [clicks_key, panel_original, panel_final, pending_text]
    results = [side_by_side, downloads, summary, scores_plot, stage_times, inspector_key]

    model_in.change(_model_note, model_in, model_note, api_visibility="private")
    run.click(
        segment,
        inputs=[video_in, expressions_in, model_in, max_frames_in, fps_in, threshold_in, overlays_in],
        outputs=results,
        api_name="segment",
        concurrency_limit=run_concurrency(),
        concurrency_id="segment",
    )
    inspector_key.change(open_inspector, inspector_key,
                         [frame_slider, *panels, correct_expression, clicks_key, pending_text, applied_text],
                         api_visibility="private")
    frame_slider.input(show_frame, [inspector_key, frame_slider, clicks_key], panels, api_visibility="private")
    for clickable in (panel_original, panel_final):
        clickable.select(add_point, [inspector_key, frame_slider, clicks_key, click_label], clicks_shown,
                         api_visibility="private")
    undo.click(undo_point, [inspector_key, frame_slider, clicks_key], clicks_shown, api_visibility="private")
    reset.click(reset_points, [inspector_key, frame_slider], clicks_shown, api_visibility="private")
    # A correction is a short run of its own: the same queue and GPU function as Segment.
    rerun.click(correct, [inspector_key, correct_expression, clicks_key], results, api_visibility="private",
                concurrency_limit=run_concurrency(), concurrency_id="segment")
    if EXAMPLES:
        # Cached for everyone after the first click on each example (lazy), with default settings
        # and the model each example was made for.
        gr.Examples(
            [example.row() for example in EXAMPLES],
            inputs=[video_in, expressions_in, model_in],
            outputs=results,
            fn=segment_example,
            cache_examples=True,
            cache_mode="lazy",
            example_labels=[example.title for example in EXAMPLES],
            api_visibility="private",
        )

demo.queue(default_concurrency_limit=run_concurrency(), max_size=16)

if __name__ == "__main__":
    demo.launch(max_file_size=MAX_UPLOAD)
