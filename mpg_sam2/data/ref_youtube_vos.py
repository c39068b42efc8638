"""Ref-YouTube-VOS (Seo et al., ECCV 2020) as released for the CodaLab challenge.

Layout under ``root``::

    meta_expressions/{train,valid,test}/meta_expressions.json
    {train,valid,test}/JPEGImages/<video>/<frame>.jpg
    train/Annotations/<video>/<frame>.png      palette PNGs, pixel value = object id

``meta_expressions.json`` is ``{"videos": {video: {"expressions": {exp_id: {"exp": text,
"obj_id": "1"}}, "frames": [frame names]}}}``; valid/test expressions have no ``obj_id``.

Splits. The valid meta lists 507 videos, which include the 305 of the (withheld) test set; the
202 videos the server scores are those of the valid meta that are not in the test meta, so
``split="valid"`` needs both files. Videos are returned sorted by id (the order ReferFormer and
the MPG-SAM 2 scripts use), expressions in meta order.
"""
from __future__ import annotations

from pathlib import Path

from .types import PaletteMaskSource, ReferringDataset, ReferringSample, ReferringVideo, frame_paths
from .types import meta_video_frames, read_meta_expressions, require_dir

__all__ = ["SPLITS", "load_ref_youtube_vos", "meta_expressions_path"]

SPLITS = ("train", "valid", "test")

LAYOUT = """  <root>/meta_expressions/{train,valid,test}/meta_expressions.json
  <root>/{train,valid,test}/JPEGImages/<video>/<frame>.jpg
  <root>/train/Annotations/<video>/<frame>.png"""


def meta_expressions_path(root: Path, split: str) -> Path:
    return Path(root) / "meta_expressions" / split / "meta_expressions.json"


def load_ref_youtube_vos(root: str | Path, split: str = "valid") -> ReferringDataset:
    """Read one split. ``train`` carries masks; ``valid`` (202 videos) and ``test`` do not."""
    if split not in SPLITS:
        raise ValueError(f"Ref-YouTube-VOS split must be one of {SPLITS}, got {split!r}")
    root = Path(root)
    require_dir(root, "Ref-YouTube-VOS root", LAYOUT)
    videos_meta = read_meta_expressions(meta_expressions_path(root, split), LAYOUT)
    video_ids = sorted(videos_meta)
    if split == "valid":
        # The valid meta also lists the test videos; the server's valid set is the difference.
        test_meta = read_meta_expressions(meta_expressions_path(root, "test"), LAYOUT)
        video_ids = [v for v in video_ids if v not in test_meta]

    image_root = require_dir(root / split / "JPEGImages", "frames", LAYOUT)
    annotation_root = require_dir(root / "train" / "Annotations", "annotations", LAYOUT) if split == "train" else None
    videos = []
    for video_id in video_ids:
        entry = videos_meta[video_id]
        names, paths = meta_video_frames(entry, image_root, video_id, LAYOUT)
        label_paths = None
        if annotation_root is not None:
            label_dir = require_dir(annotation_root / video_id, f"annotations of video {video_id!r}", LAYOUT)
            label_paths = frame_paths(label_dir, names, ".png")
        samples = []
        for exp_id, exp in entry["expressions"].items():
            masks = None
            object_ids: tuple[str, ...] = ()
            if "obj_id" in exp:
                object_ids = (str(exp["obj_id"]),)
            if label_paths is not None:
                if not object_ids:
                    raise ValueError(f"train expression {exp_id!r} of video {video_id!r} has no obj_id; the train meta must name its object")
                masks = PaletteMaskSource(label_paths, (int(object_ids[0]),))
            samples.append(
                ReferringSample(video_id, str(exp_id), exp["exp"], names, paths, masks=masks, object_ids=object_ids)
            )
        videos.append(ReferringVideo(video_id, names, paths, tuple(samples)))
    return ReferringDataset("ref-youtube-vos", split, root, tuple(videos), has_ground_truth=split == "train")
