"""The benchmarks of the paper's tables as data: reader, split, output layout and server format.

Where the predictions go under the output folder (``<out>``):

- Ref-YouTube-VOS and MeViS: ``Annotations/<video>/<exp_id>/<frame>.png``, one binary PNG per
  expression and frame, mode "L", 0 = background and 255 = object. This is what ReferFormer's
  ``inference_ytvos.py`` writes (``Image.fromarray(mask * 255).convert('L')``) and what MeViS'
  ``eval_mevis.py`` reads (any nonzero pixel is foreground).
- Ref-DAVIS17: ``anno_<a>/<video>/<frame>.png``, one palette PNG of object labels per annotator
  ``a`` (0-3), video and frame: label ``k + 1`` is the annotator's ``k``-th expression (object
  order of the meta), 0 is background. This is the layout ReferFormer's ``inference_davis.py``
  hands to davis2017-evaluation (``--task unsupervised``), one results folder per annotator.

The servers take a zip of the binary PNGs; see :mod:`mpg_sam2.evaluation.submission` for the
layout each expects.
"""
from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path

from mpg_sam2.data import load_mevis, load_ref_davis17, load_ref_youtube_vos
from mpg_sam2.data.types import ReferringDataset, ReferringSample, ReferringVideo

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "OutputUnit",
    "get_benchmark",
    "limit_frames",
    "load_benchmark",
    "output_units",
    "unit_complete",
]

BINARY_ROOT = "Annotations"


@dataclass(frozen=True)
class Benchmark:
    """One row of the paper's tables: a dataset split and how it is scored."""

    name: str  # the CLI name
    reader: str  # "ref-youtube-vos", "mevis" or "ref-davis17"
    split: str  # the split the paper reports
    server_split: str | None  # split scored by an online server (gets a submission zip)
    zip_prefix: str  # folder above <video>/<exp_id>/<frame>.png inside the submission zip
    model: str  # registry name of the checkpoint the paper evaluates
    paper_jf: float | None  # J&F of the paper's main table (x100)
    server: str = ""  # where the zip goes

    @property
    def merges_annotators(self) -> bool:
        """Ref-DAVIS17: label maps per annotator, scored with davis2017's unsupervised matching."""
        return self.reader == "ref-davis17"


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark("ref-youtube-vos", "ref-youtube-vos", "valid", "valid", "Annotations", "ref-youtube-vos", 73.9,
                  "the Ref-YouTube-VOS CodaLab server (RVOS track of the YouTube-VOS challenge)"),
        Benchmark("mevis", "mevis", "valid", "valid", "", "mevis", 53.7,
                  "the MeViS server (CodaLab competition 15094 / CodaBench 11420)"),
        Benchmark("mevis-valid-u", "mevis", "valid_u", None, "", "mevis", None),
        Benchmark("ref-davis17", "ref-davis17", "valid", None, "", "ref-youtube-vos", 72.4),
    )
}


def get_benchmark(name: str) -> Benchmark:
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(BENCHMARKS)}") from None


def _davis_annotations(root: Path, split: str) -> str:
    """Ground-truth folder of the DAVIS layout: the unsupervised ids, as the papers score.

    ReferFormer's ``eval_davis.py`` runs davis2017-evaluation with ``task="unsupervised"``, which
    reads ``Annotations_unsupervised``; its conversion script moves that same folder into
    ``valid/Annotations``, so the converted layout already holds it.
    """
    if (root / split / "JPEGImages").is_dir():
        return "Annotations"
    davis = root / "DAVIS" if (root / "DAVIS").is_dir() else root
    if (davis / "Annotations_unsupervised" / "480p").is_dir():
        return "Annotations_unsupervised"
    warnings.warn(
        f"{davis} has no Annotations_unsupervised/480p; scoring against the semi-supervised Annotations, "
        "which split some objects differently from the papers' (unsupervised) ground truth",
        stacklevel=3,
    )
    return "Annotations"


def load_benchmark(
    benchmark: Benchmark, root: str | Path, split: str | None = None, max_frames: int | None = None
) -> ReferringDataset:
    """The benchmark's split read from ``root`` (the readers' errors name the expected layout)."""
    root = Path(root)
    split = split or benchmark.split
    if benchmark.reader == "ref-youtube-vos":
        dataset = load_ref_youtube_vos(root, split)
    elif benchmark.reader == "mevis":
        dataset = load_mevis(root, split)
    else:
        if not root.is_dir():  # let the reader say what is missing
            return load_ref_davis17(root, split)
        dataset = load_ref_davis17(root, split, annotations=_davis_annotations(root, split))
    return dataset if max_frames is None else limit_frames(dataset, max_frames)


def limit_frames(dataset: ReferringDataset, max_frames: int) -> ReferringDataset:
    """Every video cut to its first ``max_frames`` frames (quick checks; not comparable numbers)."""
    if max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames}")
    videos = []
    for video in dataset.videos:
        names, paths = video.frame_names[:max_frames], video.frame_paths[:max_frames]
        samples = tuple(dataclasses.replace(s, frame_names=names, frame_paths=paths) for s in video.expressions)
        videos.append(ReferringVideo(video.video_id, names, paths, samples))
    return ReferringDataset(dataset.name, dataset.split, dataset.root, tuple(videos), dataset.has_ground_truth)


@dataclass(frozen=True)
class OutputUnit:
    """PNGs written together: one expression's masks, or one annotator's label maps of a video."""

    folder: str  # relative to the output folder, "/"-separated
    expressions: tuple[ReferringSample, ...]  # label k + 1 is expressions[k] in a label map
    frame_names: tuple[str, ...]
    labels: bool  # palette label maps (Ref-DAVIS17) rather than binary masks
    annotator: int | None = None

    def paths(self, out: Path) -> list[Path]:
        return [out / self.folder / f"{name}.png" for name in self.frame_names]


def output_units(benchmark: Benchmark, video: ReferringVideo) -> list[OutputUnit]:
    """The units of ``video`` in writing order."""
    if not benchmark.merges_annotators:
        return [
            OutputUnit(f"{BINARY_ROOT}/{video.video_id}/{s.expression_id}", (s,), video.frame_names, False)
            for s in video.expressions
        ]
    by_annotator: dict[int, list[ReferringSample]] = {}
    for sample in video.expressions:
        if sample.annotator is None:
            raise ValueError(f"expression {sample.expression_id!r} of {video.video_id!r} has no annotator")
        by_annotator.setdefault(sample.annotator, []).append(sample)
    return [
        OutputUnit(f"anno_{a}/{video.video_id}", tuple(samples), video.frame_names, True, a)
        for a, samples in sorted(by_annotator.items())
    ]


def unit_complete(out: Path, unit: OutputUnit) -> bool:
    """Whether every frame's PNG of ``unit`` is on disk (folders are written atomically)."""
    folder = out / unit.folder
    if not folder.is_dir():
        return False
    present = {p.name for p in folder.iterdir()}
    return all(f"{name}.png" in present for name in unit.frame_names)
