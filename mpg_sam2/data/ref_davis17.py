"""Ref-DAVIS17 (Khoreva et al., ACCV 2018): DAVIS 2017 videos with referring expressions.

Expressions are read in the form ReferFormer's ``convert_davis_to_ytvos.py`` writes (and the
MPG-SAM 2 scripts use): ``meta_expressions/<split>/meta_expressions.json`` as for
Ref-YouTube-VOS, where each object has four consecutive expressions, ordered by object::

    exp_id 4k + 0   annotator 1, first-frame expression  (Davis17_annot1.txt)
    exp_id 4k + 1   annotator 1, full-video expression   (Davis17_annot1_full_video.txt)
    exp_id 4k + 2   annotator 2, first-frame expression  (Davis17_annot2.txt)
    exp_id 4k + 3   annotator 2, full-video expression   (Davis17_annot2_full_video.txt)

Papers call these four "annotators": each is evaluated on its own (one expression per object)
and the four J&F are averaged. ``ReferringSample.annotator`` is the position 0-3 above, taken from
the expression's position in the meta, as ReferFormer's inference does.

Two layouts are accepted under ``root`` (``ref-davis``):

- converted: ``<split>/JPEGImages/<video>/<frame>.jpg`` and ``<split>/Annotations/<video>/<frame>.png``
  (the conversion moves DAVIS's folders there); videos in meta order.
- DAVIS: ``DAVIS/JPEGImages/480p/<video>``, ``DAVIS/<annotations>/480p/<video>`` and
  ``DAVIS/ImageSets/2017/{train,val}.txt`` (``root`` may also be the DAVIS folder itself); videos in
  the order of the ImageSets list. ``annotations`` picks ``Annotations`` (semi-supervised ids, the
  default) or ``Annotations_unsupervised``.

The number the papers report comes from davis2017-evaluation's *unsupervised* protocol, which
matches predicted objects to ground-truth objects; the per-expression masks given here use the
expression's ``obj_id`` in the chosen annotation folder.
"""
from __future__ import annotations

from pathlib import Path

from .types import PaletteMaskSource, ReferringDataset, ReferringSample, ReferringVideo, frame_paths
from .types import meta_video_frames, read_meta_expressions, require_dir, require_file

__all__ = ["ANNOTATORS", "SPLITS", "load_ref_davis17"]

SPLITS = ("train", "valid")
# Names of the four expression sets, in the order they repeat per object.
ANNOTATORS = ("annot1_first_frame", "annot1_full_video", "annot2_first_frame", "annot2_full_video")
_IMAGESET = {"train": "train", "valid": "val"}

LAYOUT = """  <root>/meta_expressions/{train,valid}/meta_expressions.json
  and either (converted)
  <root>/{train,valid}/JPEGImages/<video>/<frame>.jpg
  <root>/{train,valid}/Annotations/<video>/<frame>.png
  or (DAVIS 2017)
  <root>/DAVIS/JPEGImages/480p/<video>/<frame>.jpg
  <root>/DAVIS/Annotations/480p/<video>/<frame>.png
  <root>/DAVIS/ImageSets/2017/{train,val}.txt"""


def _davis_video_list(path: Path) -> list[str]:
    require_file(path, "DAVIS video list", LAYOUT)
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_ref_davis17(
    root: str | Path,
    split: str = "valid",
    *,
    annotations: str = "Annotations",
    meta_expressions: str | Path | None = None,
) -> ReferringDataset:
    """Read one split (``valid`` = the 30 DAVIS 2017 val videos); both splits carry masks."""
    if split not in SPLITS:
        raise ValueError(f"Ref-DAVIS17 split must be one of {SPLITS}, got {split!r}")
    root = Path(root)
    require_dir(root, "Ref-DAVIS17 root", LAYOUT)
    meta_path = Path(meta_expressions) if meta_expressions is not None else root / "meta_expressions" / split / "meta_expressions.json"
    if meta_expressions is None and not meta_path.is_file() and (root.parent / "meta_expressions").is_dir():
        meta_path = root.parent / "meta_expressions" / split / "meta_expressions.json"  # root is the DAVIS folder
    videos_meta = read_meta_expressions(meta_path, LAYOUT)

    if (root / split / "JPEGImages").is_dir():
        image_root = root / split / "JPEGImages"
        label_root = require_dir(root / split / "Annotations", "annotations", LAYOUT)
        video_ids = list(videos_meta)
    else:
        davis = root / "DAVIS" if (root / "DAVIS").is_dir() else root
        image_root = require_dir(davis / "JPEGImages" / "480p", "frames", LAYOUT)
        label_root = require_dir(davis / annotations / "480p", "annotations", LAYOUT)
        video_ids = _davis_video_list(davis / "ImageSets" / "2017" / f"{_IMAGESET[split]}.txt")
        missing = [v for v in video_ids if v not in videos_meta]
        if missing:
            raise ValueError(f"{meta_path} has no expressions for DAVIS videos {missing[:5]}; is it the {split} meta?")

    videos = []
    for video_id in video_ids:
        entry = videos_meta[video_id]
        names, paths = meta_video_frames(entry, image_root, video_id, LAYOUT)
        labels = frame_paths(require_dir(label_root / video_id, f"annotations of video {video_id!r}", LAYOUT), names, ".png")
        expressions = list(entry["expressions"].items())
        if len(expressions) % len(ANNOTATORS):
            raise ValueError(
                f"video {video_id!r} has {len(expressions)} expressions in {meta_path}; Ref-DAVIS17 needs "
                f"{len(ANNOTATORS)} per object ({', '.join(ANNOTATORS)}), as ReferFormer's conversion writes them"
            )
        samples = []
        for position, (exp_id, exp) in enumerate(expressions):
            if "obj_id" not in exp:
                raise ValueError(f"expression {exp_id!r} of video {video_id!r} has no obj_id in {meta_path}")
            obj_id = str(exp["obj_id"])
            samples.append(
                ReferringSample(
                    video_id, str(exp_id), exp["exp"], names, paths, masks=PaletteMaskSource(labels, (int(obj_id),)),
                    object_ids=(obj_id,), annotator=position % len(ANNOTATORS),
                )
            )
        videos.append(ReferringVideo(video_id, names, paths, tuple(samples)))
    return ReferringDataset("ref-davis17", split, root, tuple(videos), has_ground_truth=True)
