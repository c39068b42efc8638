"""Writing a synthetic benchmark in the Ref-YouTube-VOS on-disk format.

Layout under ``out_dir`` (every split has masks, unlike the real benchmark)::

    {train,valid,test}/JPEGImages/<video>/<frame>.jpg
    {train,valid,test}/Annotations/<video>/<frame>.png   palette PNGs, pixel value = object id
    meta_expressions/{train,valid,test}/meta_expressions.json
    synthetic_info.json                                  seed, sizes, counts, generator version

Each meta lists only its own split's videos (ids ``train_00000``, ``valid_00000``, ...), and each
expression carries ``obj_id`` and an extra ``type`` key. Since the valid and test ids are
disjoint, the real benchmark's rule "valid = valid meta minus test meta" leaves the valid split
whole, and ``load_ref_youtube_vos(root, split)`` reads every split; it attaches masks to
``train`` only, so use :func:`.reader.load_synthetic` to get masks for all three.

Clip ``i`` of a split is drawn from ``SeedSequence([seed, split number, i])``, so a clip does not
depend on how many clips the other splits hold, and the same seed gives byte-identical files.
"""
from __future__ import annotations

import inspect
import json
import os
import shutil
from collections import Counter
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np
from PIL import Image

from mpg_sam2.mask_io.png import write_label_png

from .attributes import EXPRESSION_TYPES
from .clip import SyntheticClip, generate_clip, parse_size
from .expressions import vocabulary

__all__ = ["GENERATOR_VERSION", "OBJECT_ATTRIBUTES", "SPLITS", "Progress", "clip_rng", "iter_write_dataset", "video_id", "write_dataset"]

# Bump whenever the same arguments would produce different files.
GENERATOR_VERSION = "2"  # 2: meta_expressions.json records each video's objects
# What meta_expressions.json records of each object (attributes.py names every value).
OBJECT_ATTRIBUTES = ("size", "texture", "colour", "shape", "motion")
SPLITS: tuple[str, ...] = ("train", "valid", "test")
JPEG_QUALITY = 90
_OUTPUTS = ("train", "valid", "test", "meta_expressions", "synthetic_info.json")


class Progress(NamedTuple):
    """Yielded after each clip is written: ``done`` of ``total`` clips over all splits."""

    split: str
    video_id: str
    done: int
    total: int


def clip_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator that draws clip ``index`` of ``split`` (to regenerate one clip in memory)."""
    return np.random.default_rng(np.random.SeedSequence([seed, SPLITS.index(split), index]))


def video_id(split: str, index: int) -> str:
    return f"{split}_{index:05d}"


def _write_clip(root: Path, split: str, vid: str, clip: SyntheticClip) -> list[str]:
    names = [f"{t:05d}" for t in range(len(clip.frames))]
    image_dir = root / split / "JPEGImages" / vid
    label_dir = root / split / "Annotations" / vid
    image_dir.mkdir(parents=True)
    label_dir.mkdir(parents=True)
    for t, name in enumerate(names):
        Image.fromarray(clip.frames[t]).save(image_dir / f"{name}.jpg", quality=JPEG_QUALITY)
        write_label_png(label_dir / f"{name}.png", clip.labels[t])
    return names


def _check_counts(counts: dict[str, int]) -> None:
    for split, n in counts.items():
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"the number of {split} clips must be an int >= 0, got {n!r}")
    if sum(counts.values()) == 0:
        raise ValueError("all split counts are 0; ask for at least one clip (e.g. train=400, val=50, test=50)")


def _prepare(root: Path, overwrite: bool) -> None:
    present = [name for name in _OUTPUTS if (root / name).exists()]
    if present and not overwrite:
        raise ValueError(
            f"{root} already holds a dataset ({', '.join(present)}); choose another folder or pass overwrite=True (--overwrite)"
        )
    for name in present:  # only what this writer creates; anything else in the folder is kept
        path = root / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    root.mkdir(parents=True, exist_ok=True)


def iter_write_dataset(
    out_dir: str | os.PathLike[str],
    seed: int = 0,
    train: int = 400,
    val: int = 50,
    test: int = 50,
    *,
    frames: int = 8,
    size: int | tuple[int, int] = 256,
    objects: tuple[int, int] = (2, 5),
    expressions: int = 4,
    overwrite: bool = False,
) -> Iterator[Progress]:
    """Generate ``train``/``val``/``test`` clips and write them under ``out_dir`` clip by clip,
    yielding :class:`Progress` after each.

    ``val`` is written as the ``valid`` split, as Ref-YouTube-VOS names it. ``size`` is an int or
    ``(height, width)``; ``objects`` the inclusive range of objects per clip; ``expressions`` the
    most expressions per clip. An existing dataset in ``out_dir`` is replaced only with ``overwrite``.
    """
    counts = {"train": train, "valid": val, "test": test}
    _check_counts(counts)
    height, width = parse_size(size)
    root = Path(out_dir)
    _prepare(root, overwrite)
    total, done = sum(counts.values()), 0
    summary: dict[str, dict] = {}
    for split, count in counts.items():
        videos: dict[str, dict] = {}
        types: Counter[str] = Counter()
        for index in range(count):
            rng = clip_rng(seed, split, index)
            clip = generate_clip(rng, frames=frames, size=(height, width), objects=objects, expressions=expressions)
            vid = video_id(split, index)
            names = _write_clip(root, split, vid, clip)
            exps = {
                str(k): {"exp": e.text, "obj_id": str(e.target_id), "type": e.type, "phrase_needed": e.phrase_needed}
                for k, e in enumerate(clip.expressions)
            }
            # Each object's attributes, by its id in the masks: what per-object supervision and
            # error analysis by attribute read (read_object_attributes).
            objs = {}
            for o in clip.objects:
                values = {**o.attributes, "motion": o.trajectory.kind}
                objs[str(o.object_id)] = {k: values[k] for k in OBJECT_ATTRIBUTES}
            videos[vid] = {"expressions": exps, "frames": names, "objects": objs}
            types.update(e.type for e in clip.expressions)
            done += 1
            yield Progress(split, vid, done, total)
        meta_path = root / "meta_expressions" / split / "meta_expressions.json"
        meta_path.parent.mkdir(parents=True, exist_ok=True)
        meta_path.write_text(json.dumps({"videos": videos}), encoding="utf-8")
        (root / split / "JPEGImages").mkdir(parents=True, exist_ok=True)  # an empty split still reads as empty
        (root / split / "Annotations").mkdir(parents=True, exist_ok=True)
        summary[split] = {"videos": count, "expressions": sum(types.values()), "types": {t: types[t] for t in EXPRESSION_TYPES}}
    info = {
        "generator": "mpg_sam2.data.synthetic",
        "version": GENERATOR_VERSION,
        "seed": seed,
        "frames": frames,
        "height": height,
        "width": width,
        "objects": list(objects),
        "max_expressions_per_clip": expressions,
        "splits": summary,
        "vocabulary": list(vocabulary()),
        "read_with": "mpg_sam2.data.synthetic.load_synthetic(root, split) for masks on every split; "
        "mpg_sam2.data.load_ref_youtube_vos(root, split) also reads it (masks on train only)",
    }
    # Written last: its presence means the dataset is complete.
    (root / "synthetic_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def write_dataset(out_dir: str | os.PathLike[str], *args, **kwargs) -> Path:
    """:func:`iter_write_dataset` run to completion; returns ``out_dir``."""
    for _ in iter_write_dataset(out_dir, *args, **kwargs):
        pass
    return Path(out_dir)


# help() and editors show the generator's parameters.
write_dataset.__signature__ = inspect.signature(iter_write_dataset).replace(return_annotation="Path")
