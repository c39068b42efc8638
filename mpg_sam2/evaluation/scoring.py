"""Scores of the PNGs a run wrote, against the dataset's ground truth.

Scoring reads the PNGs back from disk (not the in-memory masks), so a merge of several shards, a
resumed run and a single run all score the same files, exactly as the benchmarks' own scripts
would. F dominates the time (a dilation per frame), so the work can be spread over processes:
the units of work are expressions (Ref-YouTube-VOS train, MeViS) or (video, annotator) pairs
(Ref-DAVIS17), as in MeViS' ``eval_mevis.py`` which runs its expressions in a process pool.
"""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Iterator, Sequence

from mpg_sam2.data.types import PaletteMaskSource, ReferringDataset
from mpg_sam2.mask_io.png import read_binary_png

from .aggregate import ExpressionScore, score_expression
from .benchmarks import Benchmark, OutputUnit, output_units, unit_complete
from .davis_unsupervised import score_annotator

__all__ = ["check_complete", "iter_scores", "score_dataset"]


def check_complete(benchmark: Benchmark, dataset: ReferringDataset, out: Path) -> list[OutputUnit]:
    """All output units of ``dataset``; RuntimeError naming the missing ones if any is incomplete."""
    units = [u for video in dataset.videos for u in output_units(benchmark, video)]
    missing = [u.folder for u in units if not unit_complete(out, u)]
    if missing:
        raise RuntimeError(
            f"{len(missing)} of {len(units)} prediction folders under {out} are missing or incomplete "
            f"(first: {missing[0]}); run the missing shards (or rerun to resume) before scoring"
        )
    return units


def _score_unit(out: Path, unit: OutputUnit) -> list[ExpressionScore]:
    if unit.labels:
        source = unit.expressions[0].masks
        if not isinstance(source, PaletteMaskSource):
            raise TypeError(f"Ref-DAVIS17 ground truth must be palette PNGs, got {type(source).__name__}")
        gt_paths = source.paths[: len(unit.frame_names)]
        ids = [s.expression_id for s in unit.expressions]
        return score_annotator(unit.expressions[0].video_id, unit.annotator or 0, gt_paths, unit.paths(out), ids)
    sample = unit.expressions[0]
    assert sample.masks is not None
    gt = (sample.masks.load(t) for t in range(len(unit.frame_names)))
    # Read as grey, any nonzero pixel an object, as eval_mevis.py does.
    pred = (read_binary_png(p, missing_hint="predict (or merge) every frame first") for p in unit.paths(out))
    return [score_expression(sample.video_id, sample.expression_id, gt, pred)]


# Filled by the parent before the workers fork, so they inherit the units (and any ground truth
# already parsed, e.g. MeViS' mask_dict.json) instead of receiving pickles.
_WORK: tuple[Path, Sequence[OutputUnit]] | None = None


def _score_index(index: int) -> list[ExpressionScore]:
    assert _WORK is not None
    out, units = _WORK
    return _score_unit(out, units[index])


def iter_scores(
    benchmark: Benchmark, dataset: ReferringDataset, out: Path, *, workers: int = 1
) -> Iterator[list[ExpressionScore]]:
    """Scores of each output unit in dataset order (one list per expression or annotator folder).

    ``workers > 1`` forks that many processes where the platform can fork; otherwise serial.
    """
    global _WORK
    if not dataset.has_ground_truth:
        raise ValueError(f"{dataset.name} {dataset.split} has no public ground truth; submit the zip to the server")
    out = Path(out)
    units = check_complete(benchmark, dataset, out)
    can_fork = "fork" in multiprocessing.get_all_start_methods()
    if workers <= 1 or len(units) < 2 or not can_fork:
        for unit in units:
            yield _score_unit(out, unit)
        return
    first = units[0].expressions[0].masks
    if first is not None and len(first):
        first.load(0)  # parse lazily-read ground truth once, before forking
    _WORK = (out, units)
    try:
        with ProcessPoolExecutor(min(workers, len(units)), mp_context=multiprocessing.get_context("fork")) as pool:
            yield from pool.map(_score_index, range(len(units)), chunksize=max(1, len(units) // (8 * workers)))
    finally:
        _WORK = None


def score_dataset(
    benchmark: Benchmark,
    dataset: ReferringDataset,
    out: Path,
    *,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> list[ExpressionScore]:
    """Every score of ``dataset`` (see :func:`iter_scores`); ``progress(n)`` after each unit."""
    scores: list[ExpressionScore] = []
    for unit_scores in iter_scores(benchmark, dataset, out, workers=workers):
        scores.extend(unit_scores)
        if progress is not None:
            progress(1)
    return scores
