"""One command per benchmark: predict, write the benchmark's PNGs, score, pack the submission.

Data flow::

    dataset reader -> videos (shard i of n) -> unfinished output units of a video
    -> ONE segment_video call per video (frame features shared by its expressions; each distinct
       text segmented once and its masks given to every expression id that has it)
    -> PNGs in the benchmark's layout (see :mod:`.benchmarks`), each folder written atomically
    -> when every shard is done: J&F from the PNGs (:mod:`.scoring`), results JSON / CSV,
       submission zip (:mod:`.submission`)

Resuming: an output folder whose PNGs are all present is never recomputed; the PNGs are the
truth. Each shard keeps a state file (:mod:`.shards`: the run's settings, so a resume with other
settings is refused, and whether it finished). Sharding splits the videos (``dataset.shard``);
the shard that finishes last merges: it scores all shards' PNGs and writes the table and the
zip; ``merge=True`` does the same by hand.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from mpg_sam2.atomic import atomic_dir
from mpg_sam2.data.types import ReferringDataset, ReferringSample, ReferringVideo
from mpg_sam2.mask_io.label_map import label_map
from mpg_sam2.mask_io.png import write_binary_png, write_label_png
from mpg_sam2.model.precision import model_precision
from mpg_sam2.pipeline.expressions import prepare_distinct
from mpg_sam2.pipeline.segmentation import SegmentationOptions, segment_video

from .aggregate import ResultsTable, summarize, write_results_csv, write_results_json
from .benchmarks import Benchmark, OutputUnit, get_benchmark, load_benchmark, output_units, unit_complete
from .davis_unsupervised import VOID
from .scoring import score_dataset
from .shards import check_fingerprint, merge_lock, shard_state_path, unfinished_shards, write_shard_state
from .submission import write_submission_zip

__all__ = [
    "EvaluationConfig",
    "EvaluationReport",
    "VideoDone",
    "iter_predict",
    "merge",
    "run_evaluation",
]

@dataclass(frozen=True)
class EvaluationConfig:
    """Settings of one ``python -m mpg_sam2 evaluate`` run."""

    dataset: str  # a name in BENCHMARKS
    root: Path
    out: Path
    model: str | None = None  # registry name or checkpoint folder; None: the paper's checkpoint
    split: str | None = None  # None: the benchmark's split
    device: str = "auto"
    precision: str = "fp32"
    threshold: float = 0.5
    shard_index: int = 0
    shard_count: int = 1
    max_frames: int | None = None  # first N frames of every video (quick checks only)
    workers: int = 1  # processes for scoring
    merge: bool = False  # only score / pack what the shards wrote
    revision: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        object.__setattr__(self, "out", Path(self.out))
        get_benchmark(self.dataset)
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be a probability in (0, 1), got {self.threshold}")
        if self.shard_count < 1 or not 0 <= self.shard_index < self.shard_count:
            raise ValueError(f"shard index must be in [0, shard count), got {self.shard_index} of {self.shard_count}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"max_frames must be at least 1, got {self.max_frames}")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")

    @property
    def benchmark(self) -> Benchmark:
        return get_benchmark(self.dataset)

    @property
    def model_name(self) -> str:
        return self.model or self.benchmark.model

    def fingerprint(self) -> dict[str, Any]:
        """What must not change between the shards and resumes of one output folder."""
        return {
            "dataset": self.dataset, "split": self.split or self.benchmark.split, "model": self.model_name,
            "revision": self.revision, "precision": self.precision, "threshold": self.threshold,
            "max_frames": self.max_frames,
        }


@dataclass
class EvaluationReport:
    dataset: str
    split: str
    out: Path
    predicted: int = 0  # expressions segmented by this call
    skipped: int = 0  # expressions already on disk
    merged: bool = False  # the table / zip were (re)computed by this call
    pending_shards: list[int] = field(default_factory=list)
    table: ResultsTable | None = None
    results_json: Path | None = None
    results_csv: Path | None = None
    submission: Path | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class VideoDone:
    """Progress of :func:`iter_predict`: one video handled."""

    video_id: str
    predicted: int  # expressions segmented
    skipped: int  # expressions already on disk
    seconds: float


def _texts(samples: Sequence[ReferringSample]) -> list[str]:
    return [s.expression.strip() for s in samples]


def _write_unit(out: Path, unit: OutputUnit, masks: list[np.ndarray]) -> None:
    """``masks[k]``: bool ``[T, H, W]`` of ``unit.expressions[k]``."""
    with atomic_dir(out / unit.folder) as tmp:
        for t, name in enumerate(unit.frame_names):
            if unit.labels:
                write_label_png(tmp / f"{name}.png", label_map([m[t] for m in masks], max_label=VOID - 1))
            else:
                write_binary_png(tmp / f"{name}.png", masks[0][t])


def _read_frames(video: ReferringVideo) -> np.ndarray:
    frames = [video.read_frame(i) for i in range(len(video.frame_names))]
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise ValueError(f"frames of video {video.video_id!r} differ in size {sorted(shapes)}; the pipeline needs one size per video")
    return np.stack(frames)


def iter_predict(
    benchmark: Benchmark,
    dataset: ReferringDataset,
    out: Path,
    load: Callable[[], Any],
    options: SegmentationOptions = SegmentationOptions(),
) -> Iterator[VideoDone]:
    """Predict every unfinished output unit of ``dataset`` (a shard), one video at a time.

    ``load()`` returns the :class:`~mpg_sam2.checkpoint.pretrained.Pretrained` model; it is called only when
    a video has something left to predict (a finished output folder needs no model).
    """
    pretrained = None
    for video in dataset.videos:
        start = time.perf_counter()
        units = output_units(benchmark, video)
        todo = [u for u in units if not unit_complete(out, u)]
        total = sum(len(u.expressions) for u in units)
        segmented = sum(len(u.expressions) for u in todo)
        if todo:
            if pretrained is None:
                pretrained = load()
            texts = list(dict.fromkeys(t for u in todo for t in _texts(u.expressions) if t))
            frames = _read_frames(video)
            empty = np.zeros(frames.shape[:3], dtype=bool)
            masks: dict[str, np.ndarray] = {"": empty}
            if "" in {t for u in todo for t in _texts(u.expressions)}:
                warnings.warn(f"video {video.video_id!r} has an empty expression; its masks are left empty", stacklevel=2)
            if texts:
                prepared = prepare_distinct(texts, pretrained.tokenizer, pretrained.model.config.beit3.max_text_tokens)
                result = segment_video(frames, prepared, pretrained.model, options=options)
                masks.update({t: r.masks for t, r in zip(texts, result.expressions)})
            for unit in todo:
                _write_unit(out, unit, [masks[t] for t in _texts(unit.expressions)])
        yield VideoDone(video.video_id, segmented, total - segmented, time.perf_counter() - start)


def _device(config: EvaluationConfig, local_rank: int | None):
    import torch

    from mpg_sam2.pipeline.devices import check_precision, select_device

    name = config.device
    if local_rank is not None and name in ("auto", "cuda") and torch.cuda.is_available():
        name = f"cuda:{local_rank}"  # torchrun: one GPU per process
    device = select_device(name)
    return device, check_precision(config.precision, device)


def run_evaluation(
    config: EvaluationConfig,
    *,
    pretrained: Any | None = None,
    local_rank: int | None = None,
    progress: bool = True,
) -> EvaluationReport:
    """Predict this shard, then merge if every shard has finished (or only merge, ``config.merge``).

    ``pretrained`` skips loading ``config.model`` (tests, notebooks); its device is used as is.
    """
    if pretrained is not None and model_precision(pretrained.model) != config.precision:
        raise ValueError(f"the model passed holds {model_precision(pretrained.model)} weights but the evaluation is "
                         f"configured for {config.precision}; load it with load_pretrained(..., precision={config.precision!r})")
    benchmark = config.benchmark
    dataset = load_benchmark(benchmark, config.root, config.split, config.max_frames)
    if config.merge:
        return merge(config, dataset, progress=progress)
    check_fingerprint(config.out, config.fingerprint())
    report = EvaluationReport(benchmark.name, dataset.split, config.out)
    shard = dataset.shard(config.shard_index, config.shard_count)
    state_path = shard_state_path(config.out, config.shard_index, config.shard_count)
    state = {"config": config.fingerprint(), "shard": [config.shard_index, config.shard_count], "finished": False,
             "videos": len(shard.videos), "videos_done": 0, "predicted": 0, "skipped": 0, "seconds": 0.0}
    write_shard_state(state_path, state)

    def load() -> Any:
        if pretrained is not None:
            return pretrained
        from mpg_sam2.checkpoint.pretrained import load_pretrained

        device, _ = _device(config, local_rank)
        loaded = load_pretrained(config.model_name, device=device, revision=config.revision, precision=config.precision)
        loaded.text_tokenizer()  # fail before predicting, not at the first video
        return loaded

    if pretrained is None:
        _device(config, local_rank)  # a bad device or precision fails before any prediction
    options = SegmentationOptions(threshold=config.threshold)
    bar = _bar(progress, len(shard), f"predict {benchmark.name} shard {config.shard_index + 1}/{config.shard_count}")
    start = time.perf_counter()
    for done in iter_predict(benchmark, shard, config.out, load, options):
        report.predicted += done.predicted
        report.skipped += done.skipped
        state.update(videos_done=state["videos_done"] + 1, predicted=report.predicted, skipped=report.skipped,
                     seconds=round(time.perf_counter() - start, 3))
        write_shard_state(state_path, state)
        if bar is not None:
            bar.update(done.predicted + done.skipped)
    if bar is not None:
        bar.close()
    report.seconds["predict"] = time.perf_counter() - start
    state["finished"] = True
    write_shard_state(state_path, state)

    report.pending_shards = unfinished_shards(config.out, config.shard_count)
    if report.pending_shards:
        report.notes.append(
            f"shards {report.pending_shards} of {config.shard_count} are not finished; the last one to finish "
            "merges, or run the same command with --merge"
        )
        return report
    with merge_lock(config.out) as (lock, acquired):
        if not acquired:
            report.notes.append(f"another shard is merging ({lock} exists); if none is, delete it or run with --merge")
            return report
        merged = merge(config, dataset, progress=progress)
    merged.predicted, merged.skipped = report.predicted, report.skipped
    merged.seconds = {**report.seconds, **merged.seconds}
    return merged


def merge(config: EvaluationConfig, dataset: ReferringDataset | None = None, *, progress: bool = True) -> EvaluationReport:
    """Score all shards' PNGs (where there is ground truth) and write the table and the zip."""
    benchmark = config.benchmark
    if dataset is None:
        dataset = load_benchmark(benchmark, config.root, config.split, config.max_frames)
    report = EvaluationReport(benchmark.name, dataset.split, config.out, merged=True)
    if dataset.has_ground_truth:
        start = time.perf_counter()
        units = sum(len(output_units(benchmark, v)) for v in dataset.videos)
        bar = _bar(progress, units, f"score {benchmark.name}")
        scores = score_dataset(benchmark, dataset, config.out, workers=config.workers,
                               progress=bar.update if bar is not None else None)
        if bar is not None:
            bar.close()
        name = benchmark.name if dataset.split == benchmark.split else f"{benchmark.name} ({dataset.split})"
        report.table = summarize(scores, name)
        report.results_json = write_results_json(report.table, config.out / "results.json")
        report.results_csv = write_results_csv(report.table, config.out / "results.csv")
        report.seconds["score"] = time.perf_counter() - start
    if benchmark.server_split is not None and dataset.split == benchmark.server_split:
        if config.max_frames is not None:
            report.notes.append("no submission zip: --max-frames leaves out frames the server scores")
        else:
            start = time.perf_counter()
            report.submission = write_submission_zip(config.out / "submission.zip", dataset, config.out, benchmark.zip_prefix)
            report.seconds["zip"] = time.perf_counter() - start
            report.notes.append(f"upload {report.submission} to {benchmark.server}")
    elif not dataset.has_ground_truth:
        report.notes.append(f"{benchmark.name} {dataset.split} has neither ground truth nor a server here; masks only")
    return report


def _bar(enabled: bool, total: int, desc: str):
    if not enabled:
        return None
    import sys

    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="item", file=sys.stderr)

