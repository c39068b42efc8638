"""RefCOCO, RefCOCO+ and RefCOCOg (image-level referring segmentation, for training).

Layout under ``root`` (the ``coco`` folder of the MPG-SAM 2 / ReferFormer data tree)::

    refcoco/refs(unc).p      refcoco/instances.json
    refcoco+/refs(unc).p     refcoco+/instances.json
    refcocog/refs(umd).p     refcocog/instances.json     (refs(google).p also accepted)
    train2014/COCO_train2014_<id>.jpg

``refs(*).p`` is the REFER toolkit's pickle: a list of ``{"ref_id", "ann_id", "image_id",
"split", "category_id", "sentences": [{"raw", "sent", "tokens", "sent_id"}], ...}``.
``instances.json`` is COCO: ``images`` (``id``, ``file_name``, ``height``, ``width``) and
``annotations`` (``id``, ``segmentation`` as polygons or RLE). One sample per ref, with all its
sentences; the mask is the referred annotation, rasterised like pycocotools
(:func:`mpg_sam2.mask_io.polygon.polygons_to_mask`).

The pickle is read with an unpickler that refuses every class or function reference, so a
tampered file cannot run code: the REFER files hold only dicts, lists, strings and numbers.
"""
from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mpg_sam2.mask_io import rle
from mpg_sam2.mask_io.polygon import polygons_to_mask

from .types import require_dir, require_file

__all__ = ["DATASETS", "ReferringImageSample", "load_refcoco", "read_refs"]

# Default split_by of each dataset, as the papers use them.
DATASETS = {"refcoco": "unc", "refcoco+": "unc", "refcocog": "umd"}

LAYOUT = """  <root>/{refcoco,refcoco+}/refs(unc).p, <root>/refcocog/refs(umd).p
  <root>/<dataset>/instances.json
  <root>/train2014/<COCO file_name>.jpg"""


class _DataOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(
            f"refs pickle references {module}.{name}; REFER refs hold only plain data, refusing to load it"
        )


def read_refs(path: Path) -> list[dict[str, Any]]:
    """The list of refs of a REFER ``refs(*).p`` (Python 2 pickles included)."""
    require_file(path, "refs pickle", LAYOUT)
    with open(path, "rb") as f:
        # Python 2 str objects are decoded as UTF-8 (ASCII in the released files).
        refs = _DataOnlyUnpickler(f, encoding="utf-8").load()
    if not isinstance(refs, list):
        raise ValueError(f"{path} holds a {type(refs).__name__}, expected the REFER list of refs")
    return refs


@dataclass(frozen=True)
class ReferringImageSample:
    """One referred object of one COCO image, with all sentences that refer to it."""

    ref_id: int
    image_id: int
    ann_id: int
    image_path: Path
    sentences: tuple[str, ...]  # REFER's normalised "sent" (lower case, tokenised)
    raw_sentences: tuple[str, ...]  # the annotators' text
    height: int
    width: int
    category_id: int
    segmentation: Any  # COCO polygons [[x, y, ...], ...] or an RLE dict

    def mask(self) -> np.ndarray:
        """bool ``[height, width]`` target mask."""
        seg = self.segmentation
        if isinstance(seg, dict):
            return rle.decode(seg)
        if isinstance(seg, list):
            return polygons_to_mask(seg, self.height, self.width)
        raise ValueError(f"annotation {self.ann_id} has a segmentation of type {type(seg).__name__}; expected polygons or RLE")


def load_refcoco(
    root: str | Path,
    dataset: str = "refcoco",
    split: str | None = "train",
    *,
    split_by: str | None = None,
    image_dir: str | Path | None = None,
) -> tuple[ReferringImageSample, ...]:
    """Samples of one REFER split (``train``, ``val``, ``testA``, ``testB``, ``test``; None = all)."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got {dataset!r}")
    root = Path(root)
    folder = require_dir(root / dataset, dataset, LAYOUT)
    split_by = split_by or DATASETS[dataset]
    refs = read_refs(folder / f"refs({split_by}).p")
    instances_path = require_file(folder / "instances.json", "COCO instances", LAYOUT)
    with open(instances_path, encoding="utf-8") as f:
        instances = json.load(f)
    images = {img["id"]: img for img in instances.get("images", [])}
    annotations = {ann["id"]: ann for ann in instances.get("annotations", [])}
    image_root = Path(image_dir) if image_dir is not None else root / "train2014"
    require_dir(image_root, "COCO images", LAYOUT)

    if split is not None:
        available = sorted({str(r.get("split")) for r in refs})
        refs = [r for r in refs if r.get("split") == split]
        if not refs:
            raise ValueError(f"{dataset} refs({split_by}) has no split {split!r}; it has {available}")
    samples = []
    for ref in refs:
        ann = annotations.get(ref["ann_id"])
        img = images.get(ref["image_id"])
        if ann is None or img is None:
            raise ValueError(
                f"ref {ref['ref_id']} points at annotation {ref['ann_id']} / image {ref['image_id']}, "
                f"which {instances_path} does not have; are the refs and instances.json from the same dataset?"
            )
        sentences = ref.get("sentences", [])
        samples.append(
            ReferringImageSample(
                ref_id=int(ref["ref_id"]),
                image_id=int(ref["image_id"]),
                ann_id=int(ref["ann_id"]),
                image_path=image_root / img["file_name"],
                sentences=tuple(s["sent"] for s in sentences),
                raw_sentences=tuple(s.get("raw", s["sent"]) for s in sentences),
                height=int(img["height"]),
                width=int(img["width"]),
                category_id=int(ref.get("category_id", ann.get("category_id", 0))),
                segmentation=ann["segmentation"],
            )
        )
    return tuple(samples)
