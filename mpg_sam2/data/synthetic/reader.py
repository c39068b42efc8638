"""Reading a written synthetic benchmark back, with masks on every split and expression types."""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from ..ref_youtube_vos import load_ref_youtube_vos, meta_expressions_path
from ..types import PaletteMaskSource, ReferringDataset, ReferringVideo, frame_paths, read_meta_expressions, require_dir
from .writer import SPLITS

__all__ = ["load_synthetic", "read_expression_types", "read_object_attributes", "read_phrase_needed"]

LAYOUT = """  <root>/meta_expressions/{train,valid,test}/meta_expressions.json
  <root>/{train,valid,test}/JPEGImages/<video>/<frame>.jpg
  <root>/{train,valid,test}/Annotations/<video>/<frame>.png
  (written by python -m mpg_sam2.data.synthetic --out <root>)"""


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"synthetic split must be one of {SPLITS} (the val split is written as 'valid'), got {split!r}")


def load_synthetic(root: str | os.PathLike[str], split: str = "train") -> ReferringDataset:
    """One split as a :class:`ReferringDataset` with ground-truth masks, whatever the split.

    The Ref-YouTube-VOS reader does the reading; masks are then attached from
    ``<split>/Annotations`` (that reader attaches them to ``train`` only, as the real benchmark
    has none elsewhere).
    """
    _check_split(split)
    dataset = load_ref_youtube_vos(root, split)
    if split == "train":
        return replace(dataset, name="synthetic")
    label_root = require_dir(Path(root) / split / "Annotations", f"{split} annotations", LAYOUT)
    videos = []
    for video in dataset.videos:
        label_dir = require_dir(label_root / video.video_id, f"annotations of video {video.video_id!r}", LAYOUT)
        labels = frame_paths(label_dir, video.frame_names, ".png")
        samples = []
        for sample in video.expressions:
            if len(sample.object_ids) != 1:
                raise ValueError(
                    f"expression {sample.expression_id!r} of video {video.video_id!r} has no obj_id; is {root} a synthetic dataset?"
                )
            samples.append(replace(sample, masks=PaletteMaskSource(labels, (int(sample.object_ids[0]),))))
        videos.append(ReferringVideo(video.video_id, video.frame_names, video.frame_paths, tuple(samples)))
    return ReferringDataset("synthetic", split, dataset.root, tuple(videos), has_ground_truth=True)


def read_expression_types(root: str | os.PathLike[str], split: str = "train") -> dict[tuple[str, str], str]:
    """``(video id, expression id) -> type`` (appearance / relation / motion / time) of one split."""
    _check_split(split)
    videos = read_meta_expressions(meta_expressions_path(Path(root), split), LAYOUT)
    types = {}
    for video_id, entry in videos.items():
        for exp_id, exp in entry["expressions"].items():
            if "type" not in exp:
                raise ValueError(f"expression {exp_id!r} of video {video_id!r} has no 'type'; is {root} a synthetic dataset?")
            types[(video_id, str(exp_id))] = exp["type"]
    return types


def read_phrase_needed(root: str | os.PathLike[str], split: str = "train") -> dict[tuple[str, str], bool]:
    """``(video id, expression id) -> whether the sentence needs its phrase`` (see
    :class:`~mpg_sam2.data.synthetic.expressions.Expression`); empty for a dataset written before
    the flag existed (regenerate it to get the flag)."""
    _check_split(split)
    videos = read_meta_expressions(meta_expressions_path(Path(root), split), LAYOUT)
    return {
        (video_id, str(exp_id)): bool(exp["phrase_needed"])
        for video_id, entry in videos.items()
        for exp_id, exp in entry["expressions"].items()
        if "phrase_needed" in exp
    }


def read_object_attributes(
    root: str | os.PathLike[str], split: str = "train", missing_ok: bool = False
) -> dict[str, dict[int, dict[str, str]]] | None:
    """``video id -> {object id (its label in the masks) -> {attribute -> value}}`` of one split,
    the attributes of :data:`~mpg_sam2.data.synthetic.writer.OBJECT_ATTRIBUTES` (size, texture,
    colour, shape, motion). A dataset written before they were recorded is an error, or None
    with ``missing_ok``."""
    _check_split(split)
    videos = read_meta_expressions(meta_expressions_path(Path(root), split), LAYOUT)
    found = {}
    for video_id, entry in videos.items():
        if "objects" not in entry:
            if missing_ok:
                return None
            raise ValueError(f"video {video_id!r} of {root} lists no objects: it was written before the synthetic "
                             "benchmark recorded them; write it again with python -m mpg_sam2.data.synthetic")
        found[video_id] = {int(object_id): dict(attributes) for object_id, attributes in entry["objects"].items()}
    return found
