"""MeViS (Ding et al., ICCV 2023): motion expressions, possibly referring to several objects.

Layout under ``root`` (``mevis-release``)::

    {train,valid_u,valid}/JPEGImages/<video>/<frame>.jpg
    {train,valid_u,valid}/meta_expressions.json
    {train,valid_u}/mask_dict.json

``meta_expressions.json`` is ``{"videos": {video: {"expressions": {exp_id: {"exp": text,
"obj_id": [ids], "anno_id": [ids]}}, "frames": [frame names]}}}``. ``mask_dict.json`` maps each
``anno_id`` (as a string) to one entry per frame of its video, in the meta's frame order: a COCO
RLE ``{"size": [H, W], "counts": str}``, or null where the object is not visible.

The target of an expression is the union of its ``anno_id`` objects, as ``eval_mevis.py`` builds
it (it sums the decoded masks; any nonzero pixel is foreground). ``valid`` is scored by the server
and has no ``mask_dict.json``. Frames keep the meta's order (the RLE lists are indexed by it);
videos are sorted by id, as the authors' inference script does.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mpg_sam2.mask_io import rle

from .types import ReferringDataset, ReferringSample, ReferringVideo, meta_video_frames
from .types import read_meta_expressions, require_dir, require_file

__all__ = ["LazyMaskDict", "RleMaskSource", "SPLITS", "load_mevis"]

SPLITS = ("train", "valid_u", "valid")
SPLITS_WITH_MASKS = ("train", "valid_u")

LAYOUT = """  <root>/{train,valid_u,valid}/JPEGImages/<video>/<frame>.jpg
  <root>/{train,valid_u,valid}/meta_expressions.json
  <root>/{train,valid_u}/mask_dict.json"""


class LazyMaskDict:
    """``mask_dict.json``, parsed on first use and shared by all expressions of a split.

    The train file is several GB of JSON: reading the meta alone must stay cheap.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._data: dict[str, Any] | None = None

    def entries(self, anno_id: str) -> list[Any]:
        """Per-frame RLEs (or None) of one annotated object."""
        if self._data is None:
            with open(self.path, encoding="utf-8") as f:
                self._data = json.load(f)
        try:
            return self._data[anno_id]
        except KeyError:
            raise KeyError(f"anno_id {anno_id!r} is not in {self.path}; is it the mask_dict.json of the same split as the meta?") from None


class RleMaskSource:
    """Union of MeViS objects ``anno_ids`` per frame, decoded from ``mask_dict.json``."""

    def __init__(self, mask_dict: LazyMaskDict, anno_ids: tuple[str, ...], paths: tuple[Path, ...]) -> None:
        self.mask_dict = mask_dict
        self.anno_ids = anno_ids
        self.frame_paths = paths  # the video's JPEGs, for the frame count and a fallback size

    def __len__(self) -> int:
        return len(self.frame_paths)

    def _frame_size(self, index: int) -> tuple[int, int]:
        # An expression may see none of its objects in a frame (all null); the size then comes
        # from any other frame's RLE, or from the JPEG header.
        for anno_id in self.anno_ids:
            for entry in self.mask_dict.entries(anno_id):
                if entry:
                    return int(entry["size"][0]), int(entry["size"][1])
        with Image.open(self.frame_paths[index]) as image:
            return image.height, image.width

    def load(self, index: int) -> np.ndarray:
        mask: np.ndarray | None = None
        for anno_id in self.anno_ids:
            entries = self.mask_dict.entries(anno_id)
            if len(entries) != len(self.frame_paths):
                raise ValueError(
                    f"anno_id {anno_id!r} has {len(entries)} mask entries but its video has {len(self.frame_paths)} frames "
                    f"in the meta ({self.mask_dict.path})"
                )
            if entries[index]:
                decoded = rle.decode(entries[index])
                mask = decoded if mask is None else mask | decoded
        if mask is None:
            mask = np.zeros(self._frame_size(index), dtype=bool)
        return mask


def load_mevis(root: str | Path, split: str = "valid_u") -> ReferringDataset:
    """Read one split; ``train`` and ``valid_u`` carry masks, ``valid`` (server) does not."""
    if split not in SPLITS:
        raise ValueError(f"MeViS split must be one of {SPLITS}, got {split!r}")
    root = Path(root)
    require_dir(root, "MeViS root", LAYOUT)
    videos_meta = read_meta_expressions(root / split / "meta_expressions.json", LAYOUT)
    image_root = require_dir(root / split / "JPEGImages", "frames", LAYOUT)
    mask_dict = None
    if split in SPLITS_WITH_MASKS:
        mask_dict = LazyMaskDict(require_file(root / split / "mask_dict.json", "ground truth", LAYOUT))

    videos = []
    for video_id in sorted(videos_meta):
        entry = videos_meta[video_id]
        names, paths = meta_video_frames(entry, image_root, video_id, LAYOUT)
        samples = []
        for exp_id, exp in entry["expressions"].items():
            object_ids = tuple(str(o) for o in exp.get("obj_id", ()))
            masks = None
            if mask_dict is not None:
                anno_ids = tuple(str(a) for a in exp.get("anno_id", ()))
                if not anno_ids:
                    raise ValueError(f"{split} expression {exp_id!r} of video {video_id!r} has no anno_id; the meta must list its objects")
                masks = RleMaskSource(mask_dict, anno_ids, paths)
            samples.append(ReferringSample(video_id, str(exp_id), exp["exp"], names, paths, masks, object_ids))
        videos.append(ReferringVideo(video_id, names, paths, tuple(samples)))
    return ReferringDataset("mevis", split, root, tuple(videos), has_ground_truth=mask_dict is not None)
