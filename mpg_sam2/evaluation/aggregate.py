"""From per-frame J and F to the numbers in the papers' tables.

The benchmarks average in the same order: per expression, the mean over its frames; per dataset,
the mean over expressions of J and of F, and J&F = (J + F) / 2 (MeViS ``eval_mevis.py``, the
Ref-YouTube-VOS server, davis2017-evaluation per object). Ref-DAVIS17 is scored once per
annotator (one expression per object each) and the papers average the four results; when the
scores carry an ``annotator`` this module does the same: J, F and J&F are the means of the
annotators' J, F and J&F. Per-video means are reported for inspection only.

Values are fractions in [0, 1]; :func:`format_table` prints them x100 as the papers do.
"""
from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from itertools import zip_longest
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .metrics import boundary_f_measure, region_similarity

__all__ = [
    "ExpressionScore",
    "MeanScores",
    "ResultsTable",
    "format_table",
    "read_results_json",
    "score_expression",
    "summarize",
    "write_results_csv",
    "write_results_json",
]


@dataclass(frozen=True)
class ExpressionScore:
    """J and F of one expression, each the mean over its frames."""

    video_id: str
    expression_id: str
    j: float
    f: float
    num_frames: int
    annotator: int | None = None

    @property
    def jf(self) -> float:
        return (self.j + self.f) / 2


@dataclass(frozen=True)
class MeanScores:
    """Means over ``count`` expressions (or annotators)."""

    j: float
    f: float
    jf: float
    count: int


def score_expression(
    video_id: str,
    expression_id: str,
    gt_frames: Iterable[np.ndarray],
    pred_frames: Iterable[np.ndarray],
    *,
    bound_th: float = 0.008,
    annotator: int | None = None,
) -> ExpressionScore:
    """Score one expression from its ``[H, W]`` ground-truth and predicted masks, frame by frame."""
    js: list[float] = []
    fs: list[float] = []
    missing = object()
    for gt, pred in zip_longest(gt_frames, pred_frames, fillvalue=missing):
        if gt is missing or pred is missing:
            side = "prediction" if pred is missing else "ground truth"
            raise ValueError(
                f"{video_id}/{expression_id}: the {side} ends after {len(js)} frames while the other goes on; "
                "predict every frame the meta lists"
            )
        js.append(region_similarity(gt, pred))
        fs.append(boundary_f_measure(gt, pred, bound_th))
    if not js:
        raise ValueError(f"{video_id}/{expression_id} has no frames to score")
    # np.mean over float64, as the references' ``.mean()`` of their per-frame arrays.
    return ExpressionScore(video_id, expression_id, float(np.mean(js)), float(np.mean(fs)), len(js), annotator)


def _mean(scores: Sequence[ExpressionScore]) -> MeanScores:
    j = float(np.mean([s.j for s in scores]))
    f = float(np.mean([s.f for s in scores]))
    return MeanScores(j, f, (j + f) / 2, len(scores))


@dataclass(frozen=True)
class ResultsTable:
    """Scores of one dataset split at every level."""

    dataset: str
    overall: MeanScores
    per_annotator: dict[int, MeanScores]
    per_video: dict[str, MeanScores]
    expressions: tuple[ExpressionScore, ...]


def summarize(scores: Iterable[ExpressionScore], dataset: str = "") -> ResultsTable:
    """Dataset, per-annotator and per-video means of expression scores."""
    scores = tuple(scores)
    if not scores:
        raise ValueError("no expression scores to summarize; did the run produce any predictions?")
    with_annotator = [s.annotator is not None for s in scores]
    if any(with_annotator) and not all(with_annotator):
        raise ValueError("some scores have an annotator and some do not; score Ref-DAVIS17 and other datasets separately")

    per_annotator: dict[int, MeanScores] = {}
    if all(with_annotator):
        for annotator in sorted({s.annotator for s in scores}):  # type: ignore[type-var]
            per_annotator[annotator] = _mean([s for s in scores if s.annotator == annotator])
        means = list(per_annotator.values())
        overall = MeanScores(
            j=float(np.mean([m.j for m in means])),
            f=float(np.mean([m.f for m in means])),
            jf=float(np.mean([m.jf for m in means])),
            count=len(scores),
        )
    else:
        overall = _mean(scores)

    by_video: dict[str, list[ExpressionScore]] = {}
    for s in scores:
        by_video.setdefault(s.video_id, []).append(s)
    per_video = {video: _mean(group) for video, group in by_video.items()}
    return ResultsTable(dataset, overall, per_annotator, per_video, scores)


def write_results_json(table: ResultsTable, path: str | Path) -> Path:
    """Every level of ``table`` as JSON (full float precision); :func:`read_results_json` reads it back."""
    path = Path(path)
    payload = {
        "dataset": table.dataset,
        "J&F": table.overall.jf,
        "J": table.overall.j,
        "F": table.overall.f,
        "num_expressions": table.overall.count,
        "num_videos": len(table.per_video),
        "per_annotator": {str(a): asdict(m) for a, m in table.per_annotator.items()},
        "per_video": {v: asdict(m) for v, m in table.per_video.items()},
        "expressions": [asdict(s) for s in table.expressions],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    return path


def read_results_json(path: str | Path) -> ResultsTable:
    """The table a :func:`write_results_json` wrote (recomputed from its expression scores)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"results file {path} does not exist")
    payload = json.loads(path.read_text(encoding="utf-8"))
    try:
        scores = [ExpressionScore(**entry) for entry in payload["expressions"]]
    except (KeyError, TypeError) as e:
        raise ValueError(f"{path} is not a results file written by write_results_json ({e})") from None
    return summarize(scores, payload.get("dataset", ""))


CSV_COLUMNS = ("level", "video", "expression", "annotator", "frames", "J&F", "J", "F")


def write_results_csv(table: ResultsTable, path: str | Path) -> Path:
    """One row per level: ``dataset``, each ``annotator``, each ``video``, each ``expression``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(CSV_COLUMNS)
        o = table.overall
        writer.writerow(["dataset", "", "", "", "", repr(o.jf), repr(o.j), repr(o.f)])
        for a, m in table.per_annotator.items():
            writer.writerow(["annotator", "", "", a, "", repr(m.jf), repr(m.j), repr(m.f)])
        for v, m in table.per_video.items():
            writer.writerow(["video", v, "", "", "", repr(m.jf), repr(m.j), repr(m.f)])
        for s in table.expressions:
            annotator = "" if s.annotator is None else s.annotator
            writer.writerow(["expression", s.video_id, s.expression_id, annotator, s.num_frames, repr(s.jf), repr(s.j), repr(s.f)])
    return path


def format_table(table: ResultsTable) -> str:
    """A short text table, values x100 with one decimal as in the papers."""
    rows = [("", "J&F", "J", "F", "n")]
    o = table.overall
    rows.append((table.dataset or "dataset", f"{100 * o.jf:.1f}", f"{100 * o.j:.1f}", f"{100 * o.f:.1f}", str(o.count)))
    for a, m in table.per_annotator.items():
        rows.append((f"  annotator {a}", f"{100 * m.jf:.1f}", f"{100 * m.j:.1f}", f"{100 * m.f:.1f}", str(m.count)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(r, widths))) for r in rows)
