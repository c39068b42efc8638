"""What a finished request keeps so that it can be corrected with clicks later.

A click correction replays one expression on the request's decoded frames and rewrites every
export, so the result folder keeps, beside the inspector's files (which already hold the frames
and the masks bit for bit), the rest of the request at full precision::

    record/request.json   model, options, texts, timing, the source video's facts, clicks applied
    record/arrays.npz     float32 priors [K, T, g, g], object scores [K, T], attention
                          (text [K, T, h, w], prior [K, T, g, g]) when recorded, timestamps [T],
                          source frame indices [T]

Plain JSON and arrays (no pickle), because the folder's name comes back from the page.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mpg_sam2.app.results import INSPECTOR_DIR
from mpg_sam2.pipeline.clicks import Correction, parse_corrections
from mpg_sam2.pipeline.segmentation import ExpressionSegmentation, SegmentationOptions, VideoSegmentation
from mpg_sam2.video import DecodedVideo
from mpg_sam2.video.info import VideoInfo

RECORD_DIR = "record"
_INDEX = "request.json"
_ARRAYS = "arrays.npz"


class RecordMissing(FileNotFoundError):
    """The result has no record (cleaned up, or written before corrections existed)."""


@dataclass
class RequestRecord:
    """A finished request, read back from its result folder (T frames, K expressions)."""

    model_source: str
    options: SegmentationOptions
    video: DecodedVideo  # frames uint8 [T, H, W, 3] as segmented
    video_name: str
    segmentation: VideoSegmentation  # every expression, with the corrections applied to it
    notices: list[str]  # what changed since the request ran (e.g. its audio source is gone)


def save_record(folder: Path, model_source: str, options: SegmentationOptions, video: DecodedVideo,
                video_name: str, segmentation: VideoSegmentation) -> None:
    """Write ``record/`` under the result folder ``folder`` (the inspector is written beside it)."""
    target = folder / RECORD_DIR
    target.mkdir(parents=True, exist_ok=True)
    results = segmentation.expressions
    arrays = {
        "priors": np.stack([r.mask_priors for r in results]).astype(np.float32),
        "object_scores": np.stack([r.object_scores for r in results]).astype(np.float32),
        "timestamps_s": np.asarray(segmentation.timestamps_s, dtype=np.float64),
        "source_indices": np.asarray(video.source_indices, dtype=np.int64),
    }
    for name in ("text_attention", "prior_attention"):
        if all(getattr(r, name) is not None for r in results):
            arrays[name] = np.stack([getattr(r, name) for r in results]).astype(np.float32)
    np.savez(target / _ARRAYS, **arrays)
    info = {**dataclasses.asdict(video.info), "path": str(video.info.path)}
    index = {
        "model_source": model_source,
        "options": dataclasses.asdict(options),
        "video_name": video_name,
        "video": {"fps": video.fps, "info": info, "truncated": video.truncated, "message": video.message},
        "fps": segmentation.fps,
        "frame_size": list(segmentation.frame_size),
        "texts": [r.text for r in results],
        "truncated": [r.truncated for r in results],
        "object_score_thresholds": [r.object_score_threshold for r in results],
        "corrections": [c.to_json() for r in results for c in r.corrections],
    }
    (target / _INDEX).write_text(json.dumps(index, indent=1), encoding="utf-8")


def applied_corrections(folder: Path) -> list[Correction]:
    """The corrections applied to the result in ``folder`` ([] for one without a record)."""
    try:
        index = json.loads((folder / RECORD_DIR / _INDEX).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return []
    return parse_corrections(index["corrections"])


def load_record(folder: Path) -> RequestRecord:
    """Read the request in the result folder ``folder`` back; raises :class:`RecordMissing`."""
    try:
        index = json.loads((folder / RECORD_DIR / _INDEX).read_text(encoding="utf-8"))
        with np.load(folder / RECORD_DIR / _ARRAYS, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in stored.files}
        frames = np.load(folder / INSPECTOR_DIR / "frames.npy", allow_pickle=False)
        bits = np.load(folder / INSPECTOR_DIR / "masks.npy", allow_pickle=False)  # [K, T, H, ceil(W / 8)]
    except FileNotFoundError:
        raise RecordMissing(f"the result in {folder} can no longer be corrected (it is gone or older than "
                            "click corrections); run the segmentation again") from None
    height, width = index["frame_size"]
    masks = np.unpackbits(bits, axis=-1, count=width).astype(bool)
    notices = []
    info = VideoInfo(**{**index["video"]["info"], "path": Path(index["video"]["info"]["path"])})
    if info.has_audio and not info.path.is_file():
        # Uploads are removed by Gradio's cache cleanup; the corrected videos are then silent.
        info = dataclasses.replace(info, has_audio=False)
        notices.append("The uploaded video is no longer on the server, so the corrected videos have no sound.")
    video = DecodedVideo(frames=frames, timestamps_s=arrays["timestamps_s"], source_indices=arrays["source_indices"],
                         fps=index["video"]["fps"], info=info, truncated=index["video"]["truncated"],
                         message=index["video"]["message"])
    corrections = parse_corrections(index["corrections"])
    expressions = []
    # Records written before the model's readout existed had SAM 2's own gate (0).
    thresholds = index.get("object_score_thresholds", [0.0] * len(index["texts"]))
    for k, text in enumerate(index["texts"]):
        expressions.append(ExpressionSegmentation(
            text=text, masks=masks[k], mask_priors=arrays["priors"][k], object_scores=arrays["object_scores"][k],
            prior_attention=arrays["prior_attention"][k] if "prior_attention" in arrays else None,
            text_attention=arrays["text_attention"][k] if "text_attention" in arrays else None,
            truncated=index["truncated"][k], corrections=tuple(c for c in corrections if c.expression == k),
            object_score_threshold=thresholds[k],
        ))
    segmentation = VideoSegmentation(expressions, arrays["timestamps_s"], index["fps"], (height, width))
    # A record written by an older version may name options since removed (e.g. "precision",
    # now held by the model): they no longer mean anything, so they are left out.
    known = {f.name for f in dataclasses.fields(SegmentationOptions)}
    options = SegmentationOptions(**{name: value for name, value in index["options"].items() if name in known})
    return RequestRecord(index["model_source"], options, video, index["video_name"], segmentation, notices)
