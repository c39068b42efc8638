"""The bundled offline model: data, training, ablations, evaluation and model card, one command.

    python -m mpg_sam2.training.offline_model --work runs/offline --out checkpoints/offline

1. generates the synthetic benchmark (seed 0: 6,000 train / 40 valid / 60 test clips) in
   ``WORK/data`` unless it is there already;
2. warms up the grounding path (BEiT-3 and the mask prior generator on the prior loss and a
   per-patch attribute loss, :mod:`mpg_sam2.training.prior_warmup`) from random weights in the stages of
   :data:`~mpg_sam2.training.offline_recipe.WARMUP_STAGES`, each in ``WORK/prior_warmup/stage-<n>`` and continuing from the one
   before. Trained whole from random weights, the network learns to segment and track *an*
   object and stops reading the caption before it learns to read it; after the warm-up the
   prior already picks the described object more often than chance;
3. trains the whole ``nano`` model from the warm-up checkpoint with :data:`~mpg_sam2.training.offline_recipe.RECIPE` in
   ``WORK/main`` to ``--steps`` and scores every saved checkpoint on the validation split; the
   best one goes on to
3b. with ``--click-steps N`` only: the click fine-tuning
   (:data:`~mpg_sam2.training.offline_recipe.CLICK_STAGE`, simulated corrective clicks) in
   ``WORK/clicks`` for N steps, whose last checkpoint is then the bundled model (otherwise the
   selected checkpoint is); the bundle's clicks paint its prior
   (:data:`~mpg_sam2.training.offline_recipe.CLICK_RADIUS`), and the card has its J&F after 0-3
   simulated clicks on the test split;
4. trains the three ablations of the paper's Table 3 (no mask prior as dense prompt, no
   aggregator, neither) from the same checkpoint with the same recipe and ``--ablation-steps``,
   once per seed of :data:`~mpg_sam2.training.offline_recipe.ABLATION_SEEDS`, in
   ``WORK/abl_*`` (the recipe's seed) and ``WORK/abl_*-seed<n>``; the full model's row is the
   main run at that step (its seed; with a constant learning rate) and ``WORK/abl_main*``. All are scored at that step on the
   test split and summarised per row as the mean and spread over seeds and the paired bootstrap
   interval of the difference from the baseline (:mod:`mpg_sam2.training.ablation_table`);
5. chooses the mask readout among :data:`~mpg_sam2.training.offline_recipe.READOUT_CHOICES` on
   the final checkpoint's validation J&F;
6. copies the final weights and tokenizer to ``--out``, with that readout in its config, and writes ``evaluation.json``
   and a model card (``README.md``) with the test-split J&F of those masks overall and per
   expression type (and of SAM 2's own masks) next to the random-object reference, the same on the test splits of further seeds
   (:data:`~mpg_sam2.training.offline_recipe.HELD_OUT`, in ``WORK/held_out-seed<n>``), the
   ablation table, and the J&F on a small regression set (other seed) that a regression test can
   regenerate and check (:mod:`mpg_sam2.training.offline_card`).

Training runs go on :data:`~mpg_sam2.training.offline_recipe.PARALLEL_RUNS` at a time, one
thread and one process each (the main run first, the ablation runs beside it); so do the
scorings of a split, in as many worker processes. When the ablation runs are done, the main
run's checkpoints (on the validation split) and the ablation runs (on the test split) are
scored beside it as they become ready. Every stage
resumes: runs continue from their newest checkpoint, finished runs (and a finished warm-up)
are not touched, so rerunning the command after an interruption (or to only rewrite the card)
is cheap. A warm-up stage saves every :data:`WARMUP_SAVE_EVERY` steps and an interrupted one
continues from its newest checkpoint.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from mpg_sam2.atomic import atomic_file
from mpg_sam2.checkpoint.evaluation import EVALUATION_FILE
from mpg_sam2.evaluation.aggregate import ExpressionScore, MeanScores
from mpg_sam2.training import offline_recipe as recipe
from mpg_sam2.training.offline_card import ClickScores, OfflineModelReport, model_card, scores_json

if TYPE_CHECKING:  # imported where used: the card can be rewritten without loading a model
    from mpg_sam2.model.mpg_sam2 import MPGSAM2
    from mpg_sam2.tokenizer import ReferringTokenizer

__all__ = ["build_offline_model", "main", "regression_dataset"]


def regression_dataset(root: str | Path) -> Path:
    """Write (or reuse) the regression clips under ``root``; returns ``root``."""
    return _test_split(Path(root), recipe.REGRESSION_SET["seed"], recipe.REGRESSION_SET["test"])


def _test_split(root: Path, seed: int, clips: int) -> Path:
    """A synthetic dataset of ``clips`` test clips of ``seed`` under ``root``, written once."""
    from mpg_sam2.data.synthetic import write_dataset

    info = root / "synthetic_info.json"
    if not info.exists():
        write_dataset(root, seed=seed, train=0, val=0, test=clips)
    meta = json.loads(info.read_text(encoding="utf-8"))
    if meta["seed"] != seed or meta["splits"]["test"]["videos"] != clips:
        raise ValueError(f"{root} holds other test clips (seed {meta['seed']}, {meta['splits']['test']['videos']} clips) "
                         f"than seed {seed}, {clips} clips; delete it and rerun")
    return root


def _dataset(root: Path) -> Path:
    from mpg_sam2.data.synthetic import read_object_attributes, write_dataset

    info = root / "synthetic_info.json"
    if info.exists():
        meta = json.loads(info.read_text(encoding="utf-8"))
        counts = {split: meta["splits"][name]["videos"] for split, name in (("train", "train"), ("val", "valid"), ("test", "test"))}
        if meta["seed"] != recipe.DATA["seed"] or counts != {k: recipe.DATA[k] for k in counts}:
            raise ValueError(f"{root} holds another synthetic dataset (seed {meta['seed']}, {counts}); use a fresh --work folder")
        if read_object_attributes(root, "train", missing_ok=True) is None:
            # The same clips, but the warm-up's attribute loss needs the objects' attributes.
            raise ValueError(f"{root} was written before the synthetic benchmark recorded its objects, which the warm-up's "
                             "attribute loss needs; use a fresh --work folder")
        return root
    print(f"generating the synthetic benchmark in {root}", flush=True)
    return write_dataset(root, seed=recipe.DATA["seed"], train=recipe.DATA["train"], val=recipe.DATA["val"], test=recipe.DATA["test"])


def _step(checkpoint: Path) -> int:
    return int(checkpoint.name.split("-")[1])  # step-000500 -> 500


def _step_of(run: Path) -> int:
    from mpg_sam2.training.checkpointing import checkpoint_dirs

    found = checkpoint_dirs(run) if run.is_dir() else []
    return _step(found[-1]) if found else 0


def _stage_folders(folder: Path) -> list[Path]:
    return [folder / f"stage-{n}" for n in range(1, len(recipe.WARMUP_STAGES) + 1)]


# A warm-up stage's checkpoints (the last 3 kept): about 8 minutes of the 2-thread stage, so an
# interruption loses at most that. Not a training setting: the steps are the same either way.
WARMUP_SAVE_EVERY = 500


def _warm_up(data: Path, folder: Path) -> Path:
    """The last warm-up stage's checkpoint; stages that finished with the same settings are kept."""
    from mpg_sam2.training.checkpointing import TRAINING_ARGS_FILE, checkpoint_dirs, checkpoint_name
    from mpg_sam2.training.prior_warmup import warm_up_prior

    previous = None
    for stage, stage_folder in zip(recipe.WARMUP_STAGES, _stage_folders(folder)):
        final = stage_folder / checkpoint_name(stage["steps"])
        found = checkpoint_dirs(stage_folder)
        if found:
            saved = json.loads((found[-1] / TRAINING_ARGS_FILE).read_text(encoding="utf-8"))
            differ = {k: saved.get(k) for k in stage if saved.get(k) != stage[k]}
            if differ:
                raise ValueError(f"{stage_folder} holds a warm-up with other settings ({differ}); use a fresh --work folder")
        if final not in found:
            print(f"warming up BEiT-3 and the mask prior generator in {stage_folder}", flush=True)
            # A resumed stage takes its weights from its own checkpoint (init_from is then unused).
            warm_up_prior(data, stage_folder, init_from=previous, resume=stage_folder if found else None,
                          **{"save_every": WARMUP_SAVE_EVERY, **stage})
        previous = final
    return previous


def _logged_seconds(run: Path, steps: int | None = None) -> float:
    """Sum of the logged step times up to ``steps`` (validation and saving excluded)."""
    seconds = {}
    for line in (run / "log.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        seconds[record["step"]] = record["seconds"]  # a resumed or restarted run may log a step twice
    return sum(s for step, s in seconds.items() if steps is None or step <= steps)


def _logged_validation(run: Path) -> dict[int, float]:
    """Validation J&F the run logged (``--val-every``), by step."""
    scores = {}
    for line in (run / "log.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if "val" in record:
            scores[record["step"]] = record["val"]["J&F"]
    return dict(sorted(scores.items()))


def _train(data: Path, run: Path, steps: int, no_mask_prior: bool, no_aggregator: bool, init_from: Path,
           settings: dict | None = None) -> Path:
    """Train ``run`` to ``steps`` with ``settings`` (default :data:`recipe.RECIPE`), resuming it.
    Runs in a worker process too (:func:`_train_all`), so everything it needs is an argument."""
    from mpg_sam2.training.checkpointing import checkpoint_name
    from mpg_sam2.training.train_config import TrainConfig
    from mpg_sam2.training.trainer import train

    if _step_of(run) < steps:
        resume = run if _step_of(run) else None
        config = TrainConfig(data=data, out=run, steps=steps, no_mask_prior=no_mask_prior, no_aggregator=no_aggregator,
                             resume=resume, init_from=init_from, **(settings or recipe.RECIPE))
        train(config)
    checkpoint = run / checkpoint_name(steps)
    if not checkpoint.is_dir():
        raise FileNotFoundError(f"{checkpoint} is missing (was it pruned? keep_last is {(settings or recipe.RECIPE)['keep_last']})")
    return checkpoint


def _train_all(jobs: list[tuple], tail: list[_ScoreJob] | tuple = ()) -> None:
    """Run :func:`_train` for every ``jobs`` entry (its arguments), recipe.PARALLEL_RUNS at a
    time, each in a fresh process, in the order given; finished runs cost nothing. The first
    run that fails stops the others (they resume on the next call) and raises; so does Ctrl-C.
    A worker also stops by itself when this process dies, so a killed build leaves no run
    writing into its folder.

    Once every run has started and a worker's place is free (the main run goes on alone after
    the shorter ablation runs), the ``tail`` scorings go on there (:func:`_score_in_tail`), each
    as soon as its checkpoint is complete, until the last run ends; the build scores whatever
    is left afterwards and reads the rest from the caches."""
    import multiprocessing
    from multiprocessing.connection import wait

    pending = [job for job in jobs if _step_of(job[1]) < job[2]]
    if not pending:
        return
    if recipe.PARALLEL_RUNS <= 1 or (len(pending) == 1 and not tail):
        for job in pending:
            _train(*job)
        return
    # spawn: a forked copy of a process that has run torch's thread pools can hang.
    context = multiprocessing.get_context("spawn")
    running: dict[int, tuple] = {}  # process sentinel -> (process, job)
    scoring = None  # the process of the tail scorings
    try:
        while pending or running:
            while pending and len(running) < recipe.PARALLEL_RUNS:
                job = pending.pop(0)
                process = context.Process(target=_train_in_worker, args=(os.getpid(), job), name=f"train {job[1].name}")
                process.start()
                running[process.sentinel] = (process, job)
            if tail and scoring is None and not pending and len(running) < recipe.PARALLEL_RUNS:
                scoring = context.Process(target=_score_in_tail, args=(os.getpid(), list(tail), _recipe_values()),
                                          name="score in the tail")
                scoring.start()
            for sentinel in wait(list(running)):
                process, job = running.pop(sentinel)
                process.join()
                if process.exitcode != 0:
                    raise RuntimeError(f"training {job[1]} failed (exit code {process.exitcode}; its error is printed "
                                       "above); rerun the command to resume every run")
    finally:
        # The tail scorings stop with the last run: a scoring cut short left no cache (they are
        # written whole), and the build does it afterwards.
        stopping = [process for process, _ in running.values()] + ([scoring] if scoring is not None else [])
        for process in stopping:
            process.terminate()
        for process in stopping:
            process.join()


def _exit_with_parent(parent: int) -> None:
    """In a worker process: exit as soon as process ``parent`` is gone."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _train_in_worker(parent: int, job: tuple) -> None:
    """A worker process of :func:`_train_all`: train, and exit as soon as ``parent`` is gone."""
    _exit_with_parent(parent)
    _train(*job)


# How often the tail scorings look for the next complete checkpoint.
TAIL_POLL_SECONDS = 10.0


def _score_in_tail(parent: int, jobs: list[_ScoreJob], recipe_values: dict | None = None) -> None:
    """The worker process of :func:`_train_all`'s tail scorings, one thread: runs the first of
    ``jobs`` whose checkpoint is complete and whose cache is empty, again and again, waiting for
    checkpoints still being trained, until none is left; exits as soon as ``parent`` is gone.
    A scoring that fails is reported and left to the build, which raises its error.
    ``recipe_values`` (:func:`_recipe_values` of the build) are set in the worker, with one
    thread; None runs in the calling process as it is."""
    from mpg_sam2.training.checkpointing import TRAINING_STATE_FILE

    if recipe_values is not None:
        _start_scoring_worker(recipe_values)
        _exit_with_parent(parent)
    left = [job for job in jobs if not job.cache().is_file()]
    while left:
        ready = next((job for job in left if (job.checkpoint / TRAINING_STATE_FILE).is_file()), None)
        if ready is None:
            time.sleep(TAIL_POLL_SECONDS)
            continue
        left.remove(ready)
        try:
            ready.run()
        except Exception as error:  # noqa: BLE001 -- the build scores it again and raises
            print(f"scoring {ready.checkpoint} ({ready.name}) beside the training failed; the build retries it: {error}", flush=True)


def _ablation_run(work: Path, name: str, seed: int) -> Path:
    """The run folder of ablation row ``name`` for ``seed`` (the recipe's seed keeps the plain
    name). The full model's row of the recipe's seed is the main run itself when the learning
    rate is constant, whose step-N checkpoint is then exactly an N-step run; a cosine rate
    depends on the run's length, so every row is then a run of its own (``abl_main``)."""
    if name == "main" and seed == recipe.RECIPE["seed"] and recipe.RECIPE.get("lr_schedule", "constant") == "constant":
        return work / "main"
    folder = "abl_main" if name == "main" else name
    return work / (folder if seed == recipe.RECIPE["seed"] else f"{folder}-seed{seed}")


def _select_checkpoint(data: Path, run: Path, steps: int) -> tuple[int, dict[int, float]]:
    """The step whose checkpoint scores the best J&F on the validation split (the earliest on a
    tie), and the validation J&F of every checkpoint of ``run`` up to ``steps``."""
    from mpg_sam2.training.checkpointing import checkpoint_dirs

    checkpoints = [checkpoint for checkpoint in checkpoint_dirs(run) if _step(checkpoint) <= steps]
    print(f"scoring {run.name} steps {', '.join(str(_step(c)) for c in checkpoints)} on the validation split", flush=True)
    _score_all([_ScoreJob(checkpoint, data, "valid", split="valid") for checkpoint in checkpoints])
    scores = {_step(checkpoint): _score(checkpoint, data, "valid", split="valid")["overall"].jf for checkpoint in checkpoints}
    best = max(scores.items(), key=lambda item: (item[1], -item[0]))[0]
    return best, scores


def _select_readout(data: Path, checkpoint: Path) -> tuple[dict[str, float], list[float]]:
    """The readout of :data:`recipe.READOUT_CHOICES` whose masks of ``checkpoint`` score the
    best J&F on the validation split (the first listed on a tie), and the J&F of each choice."""
    choices = recipe.READOUT_CHOICES
    print(f"scoring {len(choices)} mask readouts of {checkpoint} on the validation split", flush=True)
    _score_all([_ScoreJob(checkpoint, data, "valid", split="valid", readout=readout) for readout in choices])
    scores = [_score(checkpoint, data, "valid", split="valid", readout=readout)["overall"].jf for readout in choices]
    best = max(range(len(choices)), key=lambda k: (scores[k], -k))
    return dict(choices[best]), scores


def _score(checkpoint: Path, data: Path, name: str, split: str = "test", readout: dict[str, float] | None = None) -> dict[str, MeanScores]:
    """Scores by expression type, kept in ``checkpoint/scores_<name>.json`` (a checkpoint never
    changes, so a rerun reads them back instead of segmenting the split again). ``readout``:
    the checkpoint as the bundle uses it with that readout (:func:`_bundled_model`); None:
    SAM 2's own masks."""
    from mpg_sam2.data.synthetic.reader import read_expression_types
    from mpg_sam2.evaluation.expression_scores import summarize_by_group

    cache = _cache_file(checkpoint, "scores", name, readout)
    if cache.is_file():
        rows = json.loads(cache.read_text(encoding="utf-8"))
        return {k: MeanScores(v["J"], v["F"], v["J&F"], v["expressions"]) for k, v in rows.items()}
    rows = summarize_by_group(_expression_scores(checkpoint, data, name, split, readout), read_expression_types(data, split))
    _write_cache(cache, scores_json(rows))
    return rows


def _expression_scores(checkpoint: Path, data: Path, name: str, split: str = "test",
                       readout: dict[str, float] | None = None) -> list[ExpressionScore]:
    """J and F of every expression of ``split``, kept in ``checkpoint/expressions_<name>.json``
    like :func:`_score`."""
    from mpg_sam2.checkpoint.pretrained import load_pretrained
    from mpg_sam2.evaluation.synthetic_report import evaluate_synthetic

    cache = _cache_file(checkpoint, "expressions", name, readout)
    if cache.is_file():
        return [ExpressionScore(**record) for record in json.loads(cache.read_text(encoding="utf-8"))]
    if readout is not None:
        model, tokenizer = _bundled_model(checkpoint, readout)
    else:
        pretrained = load_pretrained(checkpoint)
        model, tokenizer = pretrained.model, pretrained.tokenizer
    scores = evaluate_synthetic(model, tokenizer, data, split).expressions
    _write_cache(cache, [dataclasses.asdict(s) for s in scores])
    return scores


def _cache_file(checkpoint: Path, kind: str, name: str, readout: dict[str, float] | None) -> Path:
    """Where ``checkpoint``'s ``kind`` ("scores" or "expressions") of split ``name`` are kept."""
    return checkpoint / f"{kind}_{name}{_readout_suffix(readout)}.json"


def _clicks_cache_file(checkpoint: Path, readout: dict[str, float]) -> Path:
    return checkpoint / f"scores_test_clicks_r{recipe.CLICK_RADIUS:g}{_readout_suffix(readout)}.json"


def _write_cache(cache: Path, record: object) -> None:
    """Whole or not at all: a build killed while writing must not leave a cache a rerun trusts."""
    with atomic_file(cache) as tmp:
        tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


@dataclasses.dataclass(frozen=True)
class _ScoreJob:
    """One scoring of a checkpoint that :func:`_score_all` can run in a worker process: the
    expression scores of a split (:func:`_expression_scores`) or, with ``clicks``, the
    simulated-click protocol on the test split (:func:`_score_clicks`)."""

    checkpoint: Path
    data: Path
    name: str  # the split's name in the cache files
    split: str = "test"
    readout: dict[str, float] | None = None  # None: SAM 2's own masks; else the bundle with this readout
    clicks: bool = False  # (with a readout)

    def cache(self) -> Path:
        if self.clicks:
            return _clicks_cache_file(self.checkpoint, self.readout)
        return _cache_file(self.checkpoint, "expressions", self.name, self.readout)

    def run(self) -> None:
        if self.clicks:
            _score_clicks(self.checkpoint, self.data, self.readout)
        else:
            _expression_scores(self.checkpoint, self.data, self.name, self.split, self.readout)


def _score_all(jobs: list[_ScoreJob]) -> None:
    """Fill the caches of ``jobs`` that are not filled yet, in recipe.PARALLEL_RUNS worker
    processes of one thread each that take the jobs in the order given (so list the longest
    first). Segmenting a split on one thread takes about as long as on two, so two workers
    halve the build's scoring (about 23 minutes one after the other). The caller then reads
    every score from its cache; a failing job stops the others and raises."""
    from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

    pending = [job for job in jobs if not job.cache().is_file()]
    if len(pending) <= 1 or recipe.PARALLEL_RUNS <= 1:
        for job in pending:
            job.run()
        return
    import multiprocessing

    # spawn, as for the training runs; the workers get this process's recipe (a test may change it).
    with ProcessPoolExecutor(min(recipe.PARALLEL_RUNS, len(pending)), mp_context=multiprocessing.get_context("spawn"),
                             initializer=_start_scoring_worker, initargs=(_recipe_values(),)) as pool:
        futures = [pool.submit(job.run) for job in pending]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for future in done:
            if future.exception() is not None:
                pool.shutdown(cancel_futures=True)
                raise future.exception()


def _recipe_values() -> dict:
    """This process's recipe, for a worker process (a test may have changed it)."""
    return {name: getattr(recipe, name) for name in recipe.__all__}


def _start_scoring_worker(recipe_values: dict) -> None:
    import torch

    for name, value in recipe_values.items():
        setattr(recipe, name, value)
    torch.set_num_threads(1)


def _readout_suffix(readout: dict[str, float] | None) -> str:
    """What the cache names of a bundled model's scores add: its readout, which changes the
    masks (the click radius changes only clicked frames, and the click scores name it). The
    default readout adds nothing: those masks are SAM 2's own."""
    if readout is None or not any(readout.values()):
        return ""
    return f"_s{readout['object_score_threshold']:g}_c{readout['component_prior_ratio']:g}"


def _bundled_model(checkpoint: Path, readout: dict[str, float]) -> tuple[MPGSAM2, ReferringTokenizer]:
    """The checkpoint's model (eval mode) and tokenizer as the bundle ships them: its clicks
    paint the prior at recipe.CLICK_RADIUS and its masks are read out as ``readout`` (a
    :class:`~mpg_sam2.config.MaskReadoutConfig`'s fields) says; the weights are the checkpoint's."""
    from mpg_sam2.checkpoint.pretrained import load_pretrained
    from mpg_sam2.model.mpg_sam2 import MPGSAM2

    pretrained = load_pretrained(checkpoint)
    config = pretrained.model.config.with_mask_prior(click_radius=recipe.CLICK_RADIUS).with_readout(**readout)
    model = MPGSAM2(config)
    model.load_state_dict(pretrained.model.state_dict())
    return model.eval(), pretrained.tokenizer


def _score_clicks(checkpoint: Path, data: Path, readout: dict[str, float]) -> ClickScores:
    """The simulated-click protocol on the test split with the bundle's settings
    (:func:`_bundled_model`): scores by expression type after each number of clicks and the
    gains over none, kept in ``checkpoint/scores_test_clicks_r<radius>.json`` like :func:`_score`."""
    from mpg_sam2.evaluation.synthetic_report import evaluate_synthetic

    cache = _clicks_cache_file(checkpoint, readout)
    if cache.is_file():
        return ClickScores.from_json(json.loads(cache.read_text(encoding="utf-8")))
    model, tokenizer = _bundled_model(checkpoint, readout)
    report = evaluate_synthetic(model, tokenizer, data, "test", clicks=recipe.EVALUATION_CLICKS)
    scores = ClickScores(dict(enumerate(report.after_clicks)), report.gains)
    _write_cache(cache, scores.to_json())
    return scores


def build_offline_model(
    work: Path, out: Path, steps: int, ablation_steps: int | None, command: str, click_steps: int = 0
) -> OfflineModelReport:
    """Runs every stage that is not done yet (see the module docstring); returns what the card
    states. ``click_steps`` > 0 adds the click fine-tuning (stage 3b)."""
    from mpg_sam2.evaluation.synthetic_report import chance_level
    from mpg_sam2.checkpoint.pretrained import save_pretrained
    from mpg_sam2.training.checkpointing import checkpoint_name

    work = Path(work)
    data = _dataset(work / "data")
    warm = _warm_up(data, work / "prior_warmup")
    ablations = None
    # The main run first: it is the longest, and the ablation runs go on beside it.
    jobs = [(data, work / "main", steps, False, False, warm, recipe.RECIPE)]
    if ablation_steps is not None:
        main_is_a_row = any(_ablation_run(work, "main", seed) == work / "main" for seed in recipe.ABLATION_SEEDS)
        if main_is_a_row and ablation_steps > steps:
            raise ValueError(f"--ablation-steps ({ablation_steps}) must not exceed --steps ({steps}): the full model's row is its step-{ablation_steps} checkpoint")
        for seed in recipe.ABLATION_SEEDS:
            for name, (no_prior, no_agg) in recipe.ABLATIONS.items():
                run = _ablation_run(work, name, seed)
                if run != work / "main":
                    jobs.append((data, run, ablation_steps, no_prior, no_agg, warm, {**recipe.RECIPE, "seed": seed}))
    ablation_checkpoints = {name: {seed: _ablation_run(work, name, seed) / checkpoint_name(ablation_steps) for seed in recipe.ABLATION_SEEDS}
                            for name in recipe.ABLATIONS} if ablation_steps is not None else {}
    # Scored while the main run goes on alone: its checkpoints on the validation split, as each
    # is saved, then the ablation runs on the test split.
    save_every = recipe.RECIPE.get("save_every") or steps
    main_steps = sorted({*range(save_every, steps + 1, save_every), steps})
    tail = [_ScoreJob(work / "main" / checkpoint_name(step), data, "valid", split="valid") for step in main_steps]
    tail += [_ScoreJob(checkpoint, data, "test") for row in ablation_checkpoints.values() for checkpoint in row.values()]
    _train_all(jobs, tail)
    selected, validation = _select_checkpoint(data, work / "main", steps)
    final = before_clicks = work / "main" / checkpoint_name(selected)
    if click_steps:
        final = _train(data, work / "clicks", click_steps, False, False, before_clicks, settings=recipe.CLICK_STAGE)
    readout, readout_validation = _select_readout(data, final)
    own_masks_differ = any(readout.values())
    regression_clips = regression_dataset(work / "regression")
    held_out_clips = {seed: _test_split(work / f"held_out-seed{seed}", seed, recipe.HELD_OUT["test"]) for seed in recipe.HELD_OUT["seeds"]}
    # Every scoring at once, the slowest first (the clicks segment the split four times).
    jobs = [_ScoreJob(final, data, "test", readout=readout, clicks=True), _ScoreJob(final, data, "test", readout=readout)]
    if click_steps:
        jobs += [_ScoreJob(before_clicks, data, "test", readout=readout, clicks=True), _ScoreJob(before_clicks, data, "test", readout=readout)]
    jobs += [_ScoreJob(final, clips, f"held_out_seed{seed}", readout=readout) for seed, clips in held_out_clips.items()]
    jobs += [_ScoreJob(final, data, "test")] if own_masks_differ else []
    jobs += [_ScoreJob(checkpoint, data, "test") for row in ablation_checkpoints.values() for checkpoint in row.values()]
    jobs += [_ScoreJob(final, regression_clips, "regression", readout=readout)]
    print(f"scoring the selected checkpoint (step {selected}) on the test splits and the ablation runs at step {ablation_steps}",
          flush=True)
    _score_all(jobs)
    if ablation_steps is not None:
        from mpg_sam2.data.synthetic.reader import read_expression_types
        from mpg_sam2.training.ablation_table import summarize_ablation

        scores = {name: {seed: _expression_scores(checkpoint, data, "test") for seed, checkpoint in row.items()}
                  for name, row in ablation_checkpoints.items()}
        ablations = summarize_ablation(scores, read_expression_types(data, "test"), baseline="abl_baseline")
    test = _score(final, data, "test", readout=readout)
    own_masks = _score(final, data, "test") if own_masks_differ else None
    regression = _score(final, regression_clips, "regression", readout=readout)["overall"]
    held_out = {seed: _score(final, clips, f"held_out_seed{seed}", readout=readout) for seed, clips in held_out_clips.items()}
    held_out_chance = {seed: chance_level(clips) for seed, clips in held_out_clips.items()}
    warmup_seconds = sum(_logged_seconds(stage) for stage in _stage_folders(work / "prior_warmup"))
    report = OfflineModelReport(steps, selected, validation, warmup_seconds, _logged_seconds(work / "main", steps),
                                test, chance_level(data), regression, ablation_steps, ablations,
                                clicks=_score_clicks(final, data, readout), held_out=held_out, held_out_chance=held_out_chance,
                                test_own_masks=own_masks, readout=readout, readout_validation=readout_validation)
    if click_steps:
        report = dataclasses.replace(
            report, click_steps=click_steps, click_seconds=_logged_seconds(work / "clicks", click_steps),
            click_validation=_logged_validation(work / "clicks"), before_clicks_test=_score(before_clicks, data, "test", readout=readout),
            clicks_before_tuning=_score_clicks(before_clicks, data, readout),
        )

    model, tokenizer = _bundled_model(final, readout)
    report = dataclasses.replace(report, parameters=sum(p.numel() for p in model.parameters()))
    save_pretrained(model, out, tokenizer, overwrite=True)
    (out / EVALUATION_FILE).write_text(json.dumps(report.to_json(), indent=1) + "\n", encoding="utf-8")
    (out / "README.md").write_text(model_card(report, command), encoding="utf-8")
    return report


def _update_readme(bundle: Path) -> None:
    """Rewrite the README's paragraphs on the bundle when ``bundle`` is a repository's checkpoints/offline."""
    from mpg_sam2.training.offline_readme import MARKER, update_readme

    readme = bundle.resolve().parents[1] / "README.md"
    if bundle.resolve().parent.name == "checkpoints" and readme.is_file() and MARKER in readme.read_text(encoding="utf-8"):
        update_readme(readme, bundle)
        print(f"rewrote {readme}'s paragraphs on the bundle", flush=True)
    else:
        print(f"README not touched; to describe this bundle in one: python -m mpg_sam2.training.offline_readme --bundle {bundle}",
              flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mpg_sam2.training.offline_model", description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("runs/offline"), help="data and training runs (default runs/offline)")
    parser.add_argument("--out", type=Path, default=Path("checkpoints/offline"), help="where the bundled model goes")
    parser.add_argument("--steps", type=int, default=7000,
                        help="training steps of the bundled model (default 7000, offline_recipe.RECIPE's comment says why)")
    parser.add_argument("--ablation-steps", type=int, default=500,
                        help="steps of each ablation run (default 500)")
    parser.add_argument("--no-ablations", action="store_true", help="skip the ablation runs and table")
    parser.add_argument("--click-steps", type=int, default=0,
                        help="add the click fine-tuning (recipe.CLICK_STAGE) for this many steps (default 0: none; "
                             "it never beat painting the prior alone, see offline_recipe.py)")
    args = parser.parse_args(argv)
    command = f"python -m mpg_sam2.training.offline_model --steps {args.steps}" + (
        " --no-ablations" if args.no_ablations else f" --ablation-steps {args.ablation_steps}")
    start = time.perf_counter()
    if args.click_steps:
        command += f" --click-steps {args.click_steps}"
    report = build_offline_model(args.work, args.out, args.steps, None if args.no_ablations else args.ablation_steps, command,
                                 click_steps=args.click_steps)
    from mpg_sam2.evaluation.synthetic_report import format_table

    print(format_table(report.test, "test split"))
    _update_readme(args.out)
    print(f"regression set J&F {report.regression.jf:.3f}; wrote {args.out} ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
