"""MPG-SAM 2 demo: segment the object a sentence refers to, in every frame of a video.

Widgets and handlers only; the work is in ``mpg_sam2`` (pipeline, exports, app helpers).
Runs on a ZeroGPU Space, a dedicated GPU or a CPU: ``python app.py``.
"""
from __future__ import annotations

# `spaces` must be imported before torch on ZeroGPU Spaces; elsewhere it is optional.
try:
    import spaces
except ImportError:  # running locally without the package: GPU decorator is a no-op
    spaces = None

import json
from pathlib import Path

import gradio as gr

from mpg_sam2.app.models import available_models
from mpg_sam2.app.requests import MAX_FRAMES, MAX_UPLOAD, OVERLAYS, UserInputError, gpu_seconds, parse_expressions, run_request
from mpg_sam2.app.results import inspect_frame

EXAMPLES_FILE = Path(__file__).parent / "examples" / "examples.json"


def _gpu_duration(video, expressions, model, max_frames, fps, threshold, overlays, progress=None) -> int:
    try:
        count = len(parse_expressions(expressions))
    except UserInputError:
        count = 1
    return gpu_seconds(video, int(max_frames or 1), count)


def _on_gpu(fn):
    if spaces is None:
        return fn
    return spaces.GPU(duration=_gpu_duration)(fn)


@_on_gpu
def segment(video, expressions, model, max_frames, fps, threshold, overlays, progress=gr.Progress()):
    """Segment ``video`` for each expression; returns the videos, inspector state and summary."""
    try:
        result = run_request(video, expressions, model, max_frames, fps, threshold, overlays,
                             progress=lambda fraction, message: progress(fraction, desc=message))
    except UserInputError as error:
        raise gr.Error(str(error)) from None
    except Exception as error:  # never a traceback in the page
        raise gr.Error(f"The run failed: {type(error).__name__}: {error}") from None
    for notice in result.notices:
        gr.Warning(notice)
    return (
        str(result.side_by_side) if result.side_by_side else None,
        [str(p) for p in result.downloads],
        result.summary,
        result.scores,
        result.stage_text,
        str(result.inspector),
        gr.Slider(minimum=0, maximum=max(1, result.num_frames - 1), value=0, step=1, interactive=result.num_frames > 1),
        *show_frame(str(result.inspector), 0),
    )


def show_frame(inspector, index):
    if not inspector:
        return None, None, None, None
    return inspect_frame(inspector, int(index or 0))


def _examples() -> list[list[object]]:
    if not EXAMPLES_FILE.exists():
        return []
    rows = []
    for item in json.loads(EXAMPLES_FILE.read_text()).get("examples", []):
        video = EXAMPLES_FILE.parent / item["video"]
        if video.exists():
            rows.append([str(video), "\n".join(item["expressions"])])
    return rows


MODELS = available_models()

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
                                   label="Model")
            with gr.Accordion("Advanced settings", open=False):
                max_frames_in = gr.Slider(1, MAX_FRAMES, value=64, step=1, label="Frame cap")
                fps_in = gr.Number(value=0, label="Sample at fps (0: every frame)", minimum=0)
                threshold_in = gr.Slider(0.05, 0.95, value=0.5, step=0.05, label="Mask threshold")
                overlays_in = gr.CheckboxGroup(list(OVERLAYS), value=list(OVERLAYS), label="Overlays")
            run = gr.Button("Segment", variant="primary")
            model_note = gr.Markdown(f"**Model:** {MODELS[0].label} — {MODELS[0].note}")
        with gr.Column(scale=2):
            side_by_side = gr.Video(label="Original | mask prior | final masks | attention", autoplay=False,
                                    elem_id="side-by-side")
            stage_times = gr.Markdown()
            with gr.Tab("Frame inspector"):
                frame_slider = gr.Slider(0, 1, value=0, step=1, label="Frame", interactive=False)
                with gr.Row():
                    panel_original = gr.Image(label="Original", type="numpy")
                    panel_prior = gr.Image(label="Mask prior", type="numpy")
                    panel_final = gr.Image(label="Final masks", type="numpy")
                    panel_attention = gr.Image(label="Attention to the text", type="numpy")
            with gr.Tab("Summary"):
                summary = gr.Dataframe(headers=["colour", "expression", "frames with object", "first", "last",
                                                "mean area"], interactive=False)
                scores_plot = gr.LinePlot(x="frame", y="object score", color="expression",
                                          title="Object score per frame (> 0: object present)")
            downloads = gr.File(label="Downloads (zip of everything, videos, COCO RLE)", file_count="multiple",
                                elem_id="downloads")
    inspector_state = gr.State(None)

    model_in.change(
        lambda source: next((f"**Model:** {m.label} — {m.note}" for m in MODELS if m.source == source), ""),
        model_in, model_note, api_visibility="private",
    )
    run.click(
        segment,
        inputs=[video_in, expressions_in, model_in, max_frames_in, fps_in, threshold_in, overlays_in],
        outputs=[side_by_side, downloads, summary, scores_plot, stage_times, inspector_state, frame_slider,
                 panel_original, panel_prior, panel_final, panel_attention],
        api_name="segment",
        concurrency_limit=1,
    )
    frame_slider.change(show_frame, [inspector_state, frame_slider],
                        [panel_original, panel_prior, panel_final, panel_attention], api_visibility="private")
    examples = _examples()
    if examples:
        # Cached for everyone after the first click on each example (lazy), with default settings.
        gr.Examples(
            examples,
            inputs=[video_in, expressions_in],
            outputs=[side_by_side, downloads, summary, scores_plot, stage_times, inspector_state, frame_slider,
                     panel_original, panel_prior, panel_final, panel_attention],
            fn=lambda video, expressions: segment(video, expressions, MODELS[0].source, 64, 0, 0.5, list(OVERLAYS)),
            cache_examples=True,
            cache_mode="lazy",
            api_visibility="private",
        )

demo.queue(default_concurrency_limit=1, max_size=16)

if __name__ == "__main__":
    demo.launch(max_file_size=MAX_UPLOAD)
