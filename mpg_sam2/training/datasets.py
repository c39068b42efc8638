"""Training clips from the referring benchmarks: videos (Ref-YouTube-VOS, MeViS, synthetic) and
RefCOCO/+/g images as one-frame pseudo-videos (the paper's pre-training).

Data flow of one draw::

    ClipEntry (frames on disk, target masks, caption)
      -> T sorted frame indices (frame_sampling: one random stride, or spanning the video)
      -> augment_clip (crop, flip + left/right, jitter)
      -> SAM 2 view [T,3,S,S], BEiT-3 view [T,3,B,B], targets [T,S,S], tokenised caption
      (and, with ``label_grid``, the object id under each cell of a g x g grid [T,g,g] with the
      objects' attributes: the prior warm-up's attribute loss, synthetic data only)

Every random choice of a draw comes from ``numpy.random.default_rng([seed, draw])``, where
``draw`` is the position of the item in the training stream, so the data are the same whatever
the number of loader workers and a resumed run sees exactly what an uninterrupted one would.
"""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
from PIL import Image

from mpg_sam2.data.types import MaskSource, PaletteMaskSource, ReferringDataset, read_frame
from mpg_sam2.tokenizer import ReferringTokenizer
from mpg_sam2.training.augment import AugmentConfig, augment_clip, encoder_views, resize_masks

__all__ = [
    "DATASETS",
    "FRAME_SAMPLINGS",
    "ClipDataset",
    "ClipEntry",
    "ClipGroups",
    "TrainingClip",
    "collate_groups",
    "video_groups",
    "entries_from_refcoco",
    "entries_from_videos",
    "load_entries",
    "sample_frame_indices",
]

DATASETS = ("synthetic", "ref-youtube-vos", "mevis", "refcoco")
# The authors truncate captions to 512 tokens in training (inference uses the whole caption).
TRAIN_MAX_TOKENS = 512


@dataclass(frozen=True)
class ClipEntry:
    """One (video or image, caption) pair that clips are drawn from."""

    key: str  # "video_id/expression_id" or "refcoco/ref_id/sentence"
    text: str
    frame_paths: tuple[Path, ...]
    masks: MaskSource | None = None  # per-frame targets of a video
    image_mask: Callable[[], np.ndarray] | None = None  # the target of a single image
    # Object id (its label in the masks) -> attributes ("colour": "red", ...): synthetic data.
    objects: Mapping[int, Mapping[str, str]] | None = None

    @property
    def num_frames(self) -> int:
        return len(self.frame_paths)

    def load_labels(self, index: int) -> np.ndarray:
        """Frame ``index``'s object ids ``[H, W]`` uint8 (0: background), from its palette PNG."""
        if not isinstance(self.masks, PaletteMaskSource):
            raise ValueError(f"entry {self.key} has no per-object label maps (palette PNGs of object ids)")
        return self.masks.read_labels(index)

    def load_mask(self, index: int) -> np.ndarray:
        if self.masks is not None:
            return self.masks.load(index)
        if self.image_mask is not None:
            return self.image_mask()
        raise RuntimeError(f"entry {self.key} has no target masks")


@dataclass
class TrainingClip:
    """One training example (``T`` frames, caption of ``L`` tokens); tensors on the CPU."""

    key: str
    text: str  # after augmentation (left/right swapped on a flip)
    frame_indices: tuple[int, ...]
    sam_pixels: torch.Tensor  # [T, 3, S, S] float32, SAM 2 input
    beit_pixels: torch.Tensor  # [T, 3, B, B] float32, BEiT-3 input
    input_ids: torch.Tensor  # [1, L] int64
    attention_mask: torch.Tensor  # [1, L] bool
    targets: torch.Tensor  # [T, S, S] float32 in {0, 1}
    augmentations: tuple[str, ...] = ()
    click_seed: int = 0  # where simulated clicks go, if the run trains with them (click_training.py)
    # With ClipDataset's label_grid g: the object id at the centre of each cell of a g x g grid
    # over the augmented frames [T, g, g] int64 (0: background), and the entry's objects.
    object_labels: torch.Tensor | None = None
    objects: Mapping[int, Mapping[str, str]] | None = None

    @property
    def num_frames(self) -> int:
        return self.sam_pixels.shape[0]

    def to(self, device: torch.device | str) -> "TrainingClip":
        return dataclasses.replace(
            self, sam_pixels=self.sam_pixels.to(device), beit_pixels=self.beit_pixels.to(device),
            input_ids=self.input_ids.to(device), attention_mask=self.attention_mask.to(device), targets=self.targets.to(device),
            object_labels=None if self.object_labels is None else self.object_labels.to(device),
        )


def sample_frame_indices(num_available: int, num_frames: int, rng: np.random.Generator, max_stride: int = 3) -> list[int]:
    """``min(num_frames, num_available)`` increasing indices with one random stride and start."""
    if num_available < 1:
        raise ValueError("cannot draw frames from a video with 0 frames")
    count = min(num_frames, num_available)
    longest = (num_available - 1) // (count - 1) if count > 1 else 1
    stride = int(rng.integers(1, max(1, min(max_stride, longest)) + 1))
    start = int(rng.integers(0, num_available - (count - 1) * stride))
    return [start + k * stride for k in range(count)]


def sample_spanning_indices(num_available: int, num_frames: int, rng: np.random.Generator) -> list[int]:
    """``min(num_frames, num_available)`` increasing indices that start at the video's first frame
    and end at its last, the others drawn at random between them (one random frame when only one
    is asked for). A caption's time and motion facts hold for the whole video ("appears later",
    "leaves the frame"); a window that misses the first or the last frame can contradict them."""
    if num_available < 1:
        raise ValueError("cannot draw frames from a video with 0 frames")
    count = min(num_frames, num_available)
    if count == 1:
        return [int(rng.integers(0, num_available))]
    inner = rng.choice(np.arange(1, num_available - 1), size=count - 2, replace=False) if count > 2 else []
    return [0, *sorted(int(i) for i in inner), num_available - 1]


# How a clip's frames are drawn from its video: "window", one random stride and start
# (sample_frame_indices, the authors' kind of sampling); "span", the first and last frame and
# random ones between (sample_spanning_indices; not in the paper).
FRAME_SAMPLINGS = ("window", "span")


def entries_from_videos(dataset: ReferringDataset) -> list[ClipEntry]:
    """Every expression of a dataset split that carries target masks."""
    entries = [
        ClipEntry(f"{s.video_id}/{s.expression_id}", s.expression, s.frame_paths, masks=s.masks)
        for s in dataset
        if s.masks is not None
    ]
    if not entries:
        raise ValueError(f"{dataset.name} {dataset.split} has no expressions with ground-truth masks to train on")
    return entries


def entries_from_refcoco(samples: Sequence) -> list[ClipEntry]:
    """One entry per sentence of each RefCOCO sample (a 1-frame pseudo-video)."""
    return [
        ClipEntry(f"refcoco/{s.ref_id}/{k}", sentence, (s.image_path,), image_mask=s.mask)
        for s in samples
        for k, sentence in enumerate(s.sentences)
    ]


def load_entries(dataset: str, root: str | Path, split: str | None = None) -> list[ClipEntry]:
    """Training entries of a benchmark (``split`` defaults to its training split)."""
    from mpg_sam2.data import mevis, ref_youtube_vos, refcoco
    from mpg_sam2.data.synthetic import load_synthetic, read_object_attributes

    if dataset == "synthetic":
        entries = entries_from_videos(load_synthetic(root, split or "train"))
        objects = read_object_attributes(root, split or "train", missing_ok=True)
        if objects is None:
            return entries
        return [dataclasses.replace(e, objects=objects[e.key.split("/")[0]]) for e in entries]
    if dataset == "ref-youtube-vos":
        return entries_from_videos(ref_youtube_vos.load_ref_youtube_vos(root, split or "train"))
    if dataset == "mevis":
        return entries_from_videos(mevis.load_mevis(root, split or "train"))
    if dataset == "refcoco":
        # RefCOCO, RefCOCO+ and RefCOCOg together, as the paper pre-trains; missing ones are skipped.
        entries: list[ClipEntry] = []
        for name in refcoco.DATASETS:
            if (Path(root) / name).is_dir():
                entries += entries_from_refcoco(refcoco.load_refcoco(root, name, split or "train"))
        if not entries:
            raise FileNotFoundError(f"no refcoco, refcoco+ or refcocog folder under {root}; expected:\n{refcoco.LAYOUT}")
        return entries
    raise ValueError(f"unknown training dataset {dataset!r}; choose one of {DATASETS}")


class ClipDataset(torch.utils.data.Dataset):
    """Map-style dataset indexed by ``(entry index, draw)``; see the module docstring.

    Args:
        entries: what to draw from.
        tokenizer: the checkpoint's tokenizer.
        sam_size / beit_size: encoder input sizes (the model config's).
        num_frames: frames per clip (fewer when a video is shorter; 1 for images).
        augment: augmentation settings.
        seed: base seed of every draw.
        max_tokens: captions are cut to this many tokens (``</s>`` kept).
        max_stride: largest gap between sampled frames ("window" sampling).
        frame_sampling: one of :data:`FRAME_SAMPLINGS`.
        label_grid: also give each clip its object labels on a ``label_grid`` x ``label_grid``
            grid (``TrainingClip.object_labels``); every entry needs ``objects`` and palette masks.
    """

    def __init__(
        self,
        entries: Sequence[ClipEntry],
        tokenizer: ReferringTokenizer,
        sam_size: int,
        beit_size: int,
        num_frames: int,
        augment: AugmentConfig = AugmentConfig(),
        seed: int = 0,
        max_tokens: int = TRAIN_MAX_TOKENS,
        max_stride: int = 3,
        label_grid: int | None = None,
        frame_sampling: str = "window",
    ) -> None:
        if num_frames < 1:
            raise ValueError(f"num_frames must be at least 1, got {num_frames}")
        if frame_sampling not in FRAME_SAMPLINGS:
            raise ValueError(f"frame_sampling must be one of {FRAME_SAMPLINGS}, got {frame_sampling!r}")
        if label_grid is not None and any(e.objects is None for e in entries):
            raise ValueError("object labels need the attributes of every entry's objects, which only the synthetic "
                             "benchmark records (its meta_expressions.json 'objects'); a synthetic dataset written "
                             "before they were recorded must be written again with python -m mpg_sam2.data.synthetic")
        self.entries = list(entries)
        self.tokenizer = tokenizer
        self.sam_size, self.beit_size = sam_size, beit_size
        self.num_frames = num_frames
        self.augment = augment
        self.seed = seed
        self.max_tokens = max_tokens
        self.max_stride = max_stride
        self.label_grid = label_grid
        self.frame_sampling = frame_sampling
        # While sharing_within_group() is on: decoded frame JPEGs and label PNGs by path, and
        # (augmented frames uint8 [T, H, W, 3], their encoder views) pairs.
        self._decoded: dict[Path, np.ndarray] | None = None
        self._views: list[tuple[np.ndarray, tuple[torch.Tensor, torch.Tensor]]] | None = None

    def __len__(self) -> int:
        return len(self.entries)

    @contextlib.contextmanager
    def sharing_within_group(self) -> Iterator[None]:
        """Within the block every frame JPEG and label PNG is decoded once, and every distinct
        set of augmented frames is resized for the two encoders once. The clips of a group (a
        video's expressions, drawn alike) read the same files and show the same frames unless a
        crop, which follows each caption's target, made them differ. Decoding took about a third
        of the prior warm-up's data time, and the encoder views about half of what was left.
        The clips are the same either way; those that show the same frames share their pixel
        tensors."""
        self._decoded, self._views = {}, []
        try:
            yield
        finally:
            self._decoded, self._views = None, None

    def _read(self, path: Path, read: Callable[[], np.ndarray]) -> np.ndarray:
        if self._decoded is None:
            return read()
        if path not in self._decoded:
            self._decoded[path] = read()
        return self._decoded[path]

    def _frame(self, entry: ClipEntry, index: int) -> np.ndarray:
        path = entry.frame_paths[index]
        return self._read(path, lambda: read_frame(path))

    def _labels(self, entry: ClipEntry, index: int) -> np.ndarray:
        return self._read(entry.masks.paths[index], lambda: entry.load_labels(index))

    def _encoder_views(self, frames: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`encoder_views` of ``frames``, reused for equal frames within a group."""
        if self._views is None:
            return encoder_views(frames, self.sam_size, self.beit_size)
        for seen, views in self._views:
            if seen.shape == frames.shape and np.array_equal(seen, frames):
                return views
        views = encoder_views(frames, self.sam_size, self.beit_size)
        self._views.append((frames, views))
        return views

    def _mask(self, entry: ClipEntry, index: int) -> np.ndarray:
        if isinstance(entry.masks, PaletteMaskSource):
            return entry.masks.select(self._labels(entry, index))
        return entry.load_mask(index)

    def __getitem__(self, key: int | tuple[int, int]) -> TrainingClip:
        index, draw = key if isinstance(key, tuple) else (key, key)
        entry = self.entries[index]
        rng = np.random.default_rng([self.seed, draw])
        if self.frame_sampling == "span":
            indices = sample_spanning_indices(entry.num_frames, self.num_frames, rng)
        else:
            indices = sample_frame_indices(entry.num_frames, self.num_frames, rng, self.max_stride)
        frames = np.stack([self._frame(entry, i) for i in indices])
        masks = np.stack([self._mask(entry, i) for i in indices])
        if masks.shape != frames.shape[:3]:
            raise ValueError(f"{entry.key}: masks {masks.shape} and frames {frames.shape[:3]} differ in size")
        labels = None if self.label_grid is None else np.stack([self._labels(entry, i) for i in indices])
        clip = augment_clip(frames, masks, entry.text, rng, self.augment, labels=labels)
        sam, beit = self._encoder_views(clip.frames)
        tokens = self.tokenizer.encode(clip.text, max_length=self.max_tokens)
        return TrainingClip(
            key=entry.key,
            text=clip.text,
            frame_indices=tuple(indices),
            sam_pixels=sam,
            beit_pixels=beit,
            input_ids=tokens.input_ids,
            attention_mask=tokens.attention_mask,
            targets=resize_masks(clip.masks, self.sam_size),
            augmentations=tuple(clip.applied),
            # Drawn last, so the frames and augmentation of a draw are what they were before.
            click_seed=int(rng.integers(2**31 - 1)),
            object_labels=None if clip.labels is None else _labels_on_grid(clip.labels, self.label_grid),
            objects=entry.objects if self.label_grid is not None else None,
        )


def _labels_on_grid(labels: np.ndarray, grid: int) -> torch.Tensor:
    """uint8 ``[T, H, W]`` object ids -> int64 ``[T, g, g]``: the id at each cell's centre (nearest)."""
    cells = [np.asarray(Image.fromarray(frame).resize((grid, grid), Image.NEAREST)) for frame in labels]
    return torch.from_numpy(np.stack(cells).astype(np.int64))


class ClipGroups(torch.utils.data.Dataset):
    """Map-style dataset indexed by ``(group index, draw)``: the clips of every entry of a group,
    all drawn with the same ``draw`` (the same frames, flip and jitter).

    Groups of one entry give :class:`ClipDataset`'s clips; the prior warm-up groups a video's
    expressions, so a prior that ignores the caption can fit at most one of them.
    """

    def __init__(self, clips: ClipDataset, groups: Sequence[Sequence[int]]) -> None:
        if not groups or not all(groups):
            raise ValueError("every group needs at least one entry, and there must be a group")
        self.clips = clips
        self.groups = [list(group) for group in groups]

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, key: tuple[int, int]) -> list[TrainingClip]:
        group, draw = key
        with self.clips.sharing_within_group():
            return [self.clips[(index, draw)] for index in self.groups[group]]


def video_groups(entries: Sequence[ClipEntry]) -> list[list[int]]:
    """Entry indices grouped by video (the part of the key before ``/``), in first-seen order:
    the groups of batches of whole videos, every caption of a video on the same draw."""
    by_video: dict[str, list[int]] = {}
    for index, entry in enumerate(entries):
        by_video.setdefault(entry.key.split("/")[0], []).append(index)
    return list(by_video.values())


def collate_groups(groups: list[list[TrainingClip]]) -> list[TrainingClip]:
    """A batch of groups is the list of all their clips (they differ in frame count and caption
    length, so a batch is a list, not a stacked tensor)."""
    return [clip for group in groups for clip in group]
