"""What the dataset readers hand to a runner: datasets of videos, videos of expressions.

A runner iterates ``dataset.videos`` -> ``video.expressions`` -> frames, so frame features can be
computed once per video and shared by its expressions. Ground truth stays on disk until asked for:
each expression carries a :class:`MaskSource` that decodes one frame's target mask on demand
(MeViS' ``mask_dict.json`` and a video's palette PNGs are too large to hold for a whole split).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np
from PIL import Image

from mpg_sam2.mask_io.png import read_label_png

__all__ = [
    "MaskSource",
    "PaletteMaskSource",
    "ReferringDataset",
    "ReferringSample",
    "ReferringVideo",
    "frame_paths",
    "load_masks",
    "read_frame",
    "read_meta_expressions",
    "require_dir",
    "require_file",
]


@runtime_checkable
class MaskSource(Protocol):
    """The ground-truth target of one expression, frame by frame."""

    def __len__(self) -> int:
        """Number of frames (the expression's ``frame_names``)."""
        ...

    def load(self, index: int) -> np.ndarray:
        """bool ``[H, W]`` target mask of frame ``index`` (the union of the referred objects)."""
        ...


def load_masks(source: MaskSource) -> np.ndarray:
    """All frames of a mask source as bool ``[T, H, W]``."""
    return np.stack([source.load(i) for i in range(len(source))])


def read_frame(path: Path) -> np.ndarray:
    """RGB uint8 ``[H, W, 3]`` of one JPEG frame."""
    if not path.is_file():
        raise FileNotFoundError(f"frame {path} is missing; expected <split>/JPEGImages/<video>/<frame>.jpg")
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


_ANNOTATION_LAYOUT = "expected one palette PNG per annotated frame, named like its JPEG (<video>/<frame>.png)"


@dataclass(frozen=True)
class PaletteMaskSource:
    """Targets read from palette PNGs of object ids (Ref-YouTube-VOS train, DAVIS).

    ``paths[t]`` is frame ``t``'s annotation; the target is the union of ``object_ids``.
    """

    paths: tuple[Path, ...]
    object_ids: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, index: int) -> np.ndarray:
        return self.select(self.read_labels(index))

    def read_labels(self, index: int) -> np.ndarray:
        """Frame ``index``'s object ids ``[H, W]`` uint8 (0: background)."""
        return read_label_png(self.paths[index], missing_hint=_ANNOTATION_LAYOUT)

    def select(self, labels: np.ndarray) -> np.ndarray:
        """The target ``[H, W]`` bool of a frame's object ids: the union of ``object_ids``."""
        return np.isin(labels, self.object_ids)


@dataclass(frozen=True)
class ReferringSample:
    """One referring expression of one video.

    ``object_ids`` are the dataset's ids of the referred objects, as strings (empty where the
    split hides them); ``masks`` is None where the split has no public ground truth.
    ``annotator`` is set for Ref-DAVIS17 (0-3, see :mod:`mpg_sam2.data.ref_davis17`).
    """

    video_id: str
    expression_id: str
    expression: str
    frame_names: tuple[str, ...]
    frame_paths: tuple[Path, ...]
    masks: MaskSource | None = None
    object_ids: tuple[str, ...] = ()
    annotator: int | None = None

    @property
    def num_frames(self) -> int:
        return len(self.frame_names)


@dataclass(frozen=True)
class ReferringVideo:
    """A video and its expressions (all on the same frames)."""

    video_id: str
    frame_names: tuple[str, ...]
    frame_paths: tuple[Path, ...]
    expressions: tuple[ReferringSample, ...]

    def read_frame(self, index: int) -> np.ndarray:
        """RGB uint8 ``[H, W, 3]`` of frame ``index``."""
        return read_frame(self.frame_paths[index])


@dataclass(frozen=True)
class ReferringDataset:
    """One split of one benchmark, in reading order (videos, then expressions as the meta lists them)."""

    name: str
    split: str
    root: Path
    videos: tuple[ReferringVideo, ...]
    has_ground_truth: bool
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {v.video_id: i for i, v in enumerate(self.videos)})

    def __len__(self) -> int:
        """Number of expressions."""
        return sum(len(v.expressions) for v in self.videos)

    def __iter__(self) -> Iterator[ReferringSample]:
        for video in self.videos:
            yield from video.expressions

    @property
    def video_ids(self) -> tuple[str, ...]:
        return tuple(v.video_id for v in self.videos)

    def video(self, video_id: str) -> ReferringVideo:
        try:
            return self.videos[self._index[video_id]]
        except KeyError:
            raise KeyError(f"video {video_id!r} is not in {self.name} {self.split} ({len(self.videos)} videos)") from None

    def shard(self, index: int, count: int) -> "ReferringDataset":
        """Every ``count``-th video starting at ``index`` (for splitting work across processes)."""
        if not 0 <= index < count:
            raise ValueError(f"shard index must be in [0, {count}), got {index}")
        return ReferringDataset(self.name, self.split, self.root, self.videos[index::count], self.has_ground_truth)


def frame_paths(folder: Path, frame_names: Sequence[str], suffix: str = ".jpg") -> tuple[Path, ...]:
    """``folder/<name><suffix>`` for each frame name."""
    return tuple(folder / f"{name}{suffix}" for name in frame_names)


def meta_video_frames(
    entry: Mapping[str, Any], image_root: Path, video_id: str, layout: str
) -> tuple[tuple[str, ...], tuple[Path, ...]]:
    """Frame names of one ``meta_expressions.json`` video entry and their JPEGs under
    ``image_root/<video_id>/`` (the folder must exist)."""
    names = tuple(str(n) for n in entry["frames"])
    return names, frame_paths(require_dir(image_root / video_id, f"frames of video {video_id!r}", layout), names)


def require_dir(path: Path, what: str, layout: str) -> Path:
    """``path`` if it is a folder, else FileNotFoundError naming it and the expected layout."""
    if not path.is_dir():
        raise FileNotFoundError(f"{what} folder {path} is missing; expected layout:\n{layout}")
    return path


def require_file(path: Path, what: str, layout: str) -> Path:
    """``path`` if it is a file, else FileNotFoundError naming it and the expected layout."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} is missing; expected layout:\n{layout}")
    return path


def read_meta_expressions(path: Path, layout: str) -> dict[str, dict]:
    """The ``videos`` mapping of a ``meta_expressions.json``, checked for the fields every reader uses.

    ``{"videos": {video: {"expressions": {exp_id: {"exp": text, ...}}, "frames": [names]}}}``
    """
    require_file(path, "expressions file", layout)
    with open(path, encoding="utf-8") as f:
        try:
            meta = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON ({e}); re-download the meta_expressions file") from None
    videos = meta.get("videos") if isinstance(meta, dict) else None
    if not isinstance(videos, dict):
        raise ValueError(f'{path} has no "videos" mapping; expected {{"videos": {{video: {{"expressions": ..., "frames": [...]}}}}}}')
    for video_id, video in videos.items():
        if not isinstance(video, dict) or not isinstance(video.get("expressions"), dict) or not isinstance(video.get("frames"), list):
            raise ValueError(f'{path}: video {video_id!r} needs "expressions" (a mapping) and "frames" (a list)')
        for exp_id, exp in video["expressions"].items():
            if not isinstance(exp, dict) or not isinstance(exp.get("exp"), str):
                raise ValueError(f'{path}: expression {exp_id!r} of video {video_id!r} has no "exp" text')
    return videos
