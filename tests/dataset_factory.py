"""Tiny datasets in each benchmark's exact on-disk format, written into a test's tmp_path.

Frames are 32x48 JPEGs, objects are rectangles that move one pixel per frame, so every mask is
known exactly. Each ``write_*`` returns a :class:`FakeDataset` with the ground truth the files
encode, for the reader tests (and later the runner's end-to-end test) to compare against.
"""
from __future__ import annotations

import json
import pickle
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from mpg_sam2.mask_io import rle

HEIGHT, WIDTH = 32, 48


@dataclass
class FakeDataset:
    root: Path
    # (video, object id) -> bool [T, H, W] of that object, in the meta's frame order.
    objects: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    # (video, expression id) -> expression text
    expressions: dict[tuple[str, str], str] = field(default_factory=dict)
    # (video, expression id) -> object ids the expression refers to
    targets: dict[tuple[str, str], tuple[int, ...]] = field(default_factory=dict)
    frames: dict[str, list[str]] = field(default_factory=dict)

    def target(self, video: str, exp_id: str) -> np.ndarray:
        """bool [T, H, W] union of the expression's objects."""
        masks = [self.objects[(video, o)] for o in self.targets[(video, exp_id)]]
        return np.logical_or.reduce(masks)


def davis_palette() -> list[int]:
    """The DAVIS/YouTube-VOS palette (PASCAL VOC colours): id i -> bit-interleaved RGB."""
    palette = []
    for i in range(256):
        r = g = b = 0
        c = i
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette += [r, g, b]
    return palette


def object_mask(obj_id: int, t: int, num_frames: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """A rectangle per object that moves right by one pixel a frame; object 3 touches the border."""
    mask = np.zeros((height, width), dtype=bool)
    if obj_id == 1:
        mask[4:14, 3 + t : 15 + t] = True
    elif obj_id == 2:
        mask[18:28, 20 + t : 33 + t] = True
    elif obj_id == 3:
        mask[0:6, width - 5 - t :] = True
    else:
        mask[10 + obj_id % 7, 2 : 10 + obj_id % 13] = True  # a 1-pixel-high line
    return mask


def write_jpeg(path: Path, seed: int, height: int = HEIGHT, width: int = WIDTH) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90)


def write_palette_png(path: Path, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette(davis_palette())
    image.save(path)


def _frames(num: int, step: int = 1) -> list[str]:
    return [f"{i * step:05d}" for i in range(num)]


def _write_video(
    ds: FakeDataset, image_dir: Path, video: str, num_frames: int, object_ids: tuple[int, ...], label_dir: Path | None, step: int = 1
) -> list[str]:
    names = _frames(num_frames, step)
    ds.frames[video] = names
    for t, name in enumerate(names):
        write_jpeg(image_dir / video / f"{name}.jpg", seed=zlib.crc32(f"{video}/{t}".encode()))
    for obj in object_ids:
        ds.objects[(video, obj)] = np.stack([object_mask(obj, t, num_frames) for t in range(num_frames)])
    if label_dir is not None:
        for t, name in enumerate(names):
            labels = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
            for obj in object_ids:  # later objects are drawn on top, as in a real label map
                labels[ds.objects[(video, obj)][t]] = obj
            write_palette_png(label_dir / video / f"{name}.png", labels)
            for obj in object_ids:  # what the PNG says is the truth
                ds.objects[(video, obj)][t] = labels == obj
    return names


def _write_json(path: Path, payload: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload), encoding="utf-8")


def write_ref_youtube_vos(root: Path) -> FakeDataset:
    """train: 2 videos with masks; valid meta: 3 videos, one of which is in the test meta."""
    ds = FakeDataset(root)
    train_meta: dict = {"videos": {}}
    for video, objs, n in (("t_cat", (1, 2), 4), ("t_dog", (1,), 3)):
        names = _write_video(ds, root / "train" / "JPEGImages", video, n, objs, root / "train" / "Annotations", step=5)
        exps = {}
        for i, obj in enumerate(objs):
            exp_id = str(i)
            exps[exp_id] = {"exp": f"the {video} object {obj}", "obj_id": str(obj)}
            ds.expressions[(video, exp_id)] = exps[exp_id]["exp"]
            ds.targets[(video, exp_id)] = (obj,)
        train_meta["videos"][video] = {"expressions": exps, "frames": names}
    _write_json(root / "meta_expressions" / "train" / "meta_expressions.json", train_meta)

    valid_meta: dict = {"videos": {}}
    test_meta: dict = {"videos": {}}
    for video, split in (("v_b", "valid"), ("v_a", "valid"), ("x_test", "test")):
        names = _write_video(ds, root / split / "JPEGImages", video, 3, (), None)
        exps = {"0": {"exp": f"a person in {video}"}, "1": {"exp": f"a car in {video}"}}
        for exp_id, exp in exps.items():
            ds.expressions[(video, exp_id)] = exp["exp"]
        entry = {"expressions": exps, "frames": names}
        valid_meta["videos"][video] = entry  # the released valid meta also lists the test videos
        if split == "test":
            test_meta["videos"][video] = entry
    _write_json(root / "meta_expressions" / "valid" / "meta_expressions.json", valid_meta)
    _write_json(root / "meta_expressions" / "test" / "meta_expressions.json", test_meta)
    return ds


def write_mevis(root: Path) -> FakeDataset:
    """train and valid_u with mask_dict.json (one two-object expression, null frames); valid without."""
    ds = FakeDataset(root)
    anno_counter = 0
    for split in ("train", "valid_u", "valid"):
        meta: dict = {"videos": {}}
        mask_dict: dict = {}
        for video, objs, n in ((f"{split}_v2", (1, 2), 5), (f"{split}_v1", (3,), 3)):
            names = _write_video(ds, root / split / "JPEGImages", video, n, objs, None)
            anno_of = {}
            for obj in objs:
                anno_id = str(anno_counter)
                anno_counter += 1
                anno_of[obj] = anno_id
                entries = []
                for t in range(n):
                    if obj == 2 and t == 0:
                        ds.objects[(video, obj)][t] = False  # not visible in the first frame
                        entries.append(None)
                    else:
                        entries.append(rle.encode(ds.objects[(video, obj)][t]))
                mask_dict[anno_id] = entries
            exps = {}
            exp_lists = [(o,) for o in objs] + ([objs] if len(objs) > 1 else [])
            for i, target in enumerate(exp_lists):
                exp_id = str(i)
                text = f"{'the objects' if len(target) > 1 else 'the object'} moving right in {video} #{i}"
                exps[exp_id] = {"exp": text, "obj_id": list(target), "anno_id": [int(anno_of[o]) for o in target]}
                ds.expressions[(video, exp_id)] = text
                ds.targets[(video, exp_id)] = target
            meta["videos"][video] = {"expressions": exps, "frames": names}
        _write_json(root / split / "meta_expressions.json", meta)
        if split != "valid":
            _write_json(root / split / "mask_dict.json", mask_dict)
    return ds


def write_ref_davis17(root: Path, layout: str = "converted") -> FakeDataset:
    """2 val videos (2 and 1 objects), 4 expressions per object, in the converted or DAVIS layout."""
    ds = FakeDataset(root)
    if layout == "converted":
        image_dir, label_dir = root / "valid" / "JPEGImages", root / "valid" / "Annotations"
    elif layout == "davis":
        image_dir, label_dir = root / "DAVIS" / "JPEGImages" / "480p", root / "DAVIS" / "Annotations" / "480p"
    else:
        raise ValueError(layout)
    meta: dict = {"videos": {}}
    videos = (("bike-packing", (1, 2), 4), ("blackswan", (1,), 3))
    for video, objs, n in videos:
        names = _write_video(ds, image_dir, video, n, objs, label_dir)
        exps = {}
        for k, obj in enumerate(objs):
            for a, kind in enumerate(("a1 first", "a1 full", "a2 first", "a2 full")):
                exp_id = str(4 * k + a)
                exps[exp_id] = {"exp": f"{kind}: object {obj} of {video}", "obj_id": str(obj)}
                ds.expressions[(video, exp_id)] = exps[exp_id]["exp"]
                ds.targets[(video, exp_id)] = (obj,)
        meta["videos"][video] = {"expressions": exps, "frames": names}
    _write_json(root / "meta_expressions" / "valid" / "meta_expressions.json", meta)
    if layout == "davis":
        sets = root / "DAVIS" / "ImageSets" / "2017"
        sets.mkdir(parents=True, exist_ok=True)
        # DAVIS lists videos alphabetically; write them reversed to check the list's order is kept.
        (sets / "val.txt").write_text("\n".join(v for v, _, _ in reversed(videos)) + "\n")
    return ds


# A triangle and a square in COCO polygon form, and a crowd-style uncompressed RLE.
REFCOCO_POLYGON = [[5.2, 3.7, 30.9, 6.1, 12.4, 25.6], [35.0, 20.0, 44.5, 20.0, 44.5, 29.5, 35.0, 29.5]]


def write_refcoco(root: Path) -> dict:
    """coco/refcoco with refs(unc).p (a Python 2 style pickle), instances.json and train2014 images."""
    images = [
        {"id": 9, "file_name": "COCO_train2014_000000000009.jpg", "height": HEIGHT, "width": WIDTH},
        {"id": 25, "file_name": "COCO_train2014_000000000025.jpg", "height": HEIGHT, "width": WIDTH},
    ]
    for img in images:
        write_jpeg(root / "train2014" / img["file_name"], seed=img["id"])
    rle_mask = object_mask(2, 0, 1)
    annotations = [
        {"id": 101, "image_id": 9, "category_id": 1, "iscrowd": 0, "segmentation": REFCOCO_POLYGON, "bbox": [0, 0, 1, 1], "area": 1.0},
        {"id": 102, "image_id": 25, "category_id": 3, "iscrowd": 1, "segmentation": rle.encode(rle_mask, compressed=False), "bbox": [0, 0, 1, 1], "area": 1.0},
        {"id": 103, "image_id": 25, "category_id": 3, "iscrowd": 0, "segmentation": rle.encode(object_mask(1, 0, 1)), "bbox": [0, 0, 1, 1], "area": 1.0},
    ]
    refs = [
        {"ref_id": 0, "ann_id": 101, "image_id": 9, "split": "train", "category_id": 1, "file_name": "COCO_train2014_000000000009_101.jpg",
         "sent_ids": [0, 1], "sentences": [{"raw": "The Triangle, left", "sent": "the triangle left", "tokens": ["the", "triangle", "left"], "sent_id": 0},
                                           {"raw": "square", "sent": "square", "tokens": ["square"], "sent_id": 1}]},
        {"ref_id": 1, "ann_id": 102, "image_id": 25, "split": "train", "category_id": 3, "file_name": "x.jpg",
         "sent_ids": [2], "sentences": [{"raw": "bottom box", "sent": "bottom box", "tokens": ["bottom", "box"], "sent_id": 2}]},
        {"ref_id": 2, "ann_id": 103, "image_id": 25, "split": "testA", "category_id": 3, "file_name": "y.jpg",
         "sent_ids": [3], "sentences": [{"raw": "top box", "sent": "top box", "tokens": ["top", "box"], "sent_id": 3}]},
    ]
    folder = root / "refcoco"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "refs(unc).p", "wb") as f:
        pickle.dump(refs, f, protocol=2)  # the released files are Python 2 protocol-2 pickles
    _write_json(folder / "instances.json", {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "a"}, {"id": 3, "name": "b"}]})
    return {"rle_mask": rle_mask, "box_mask": object_mask(1, 0, 1)}
