"""The training loop: data stream -> forward + loss -> accumulate -> clip -> AdamW step -> log,
validate and checkpoint; one loop for every :class:`~mpg_sam2.training.objectives.Objective`.

One optimizer step consumes ``accumulate`` micro-batches of ``batch_size`` draws per process (a
draw is one clip, or a group of clips for objectives that group them). bf16 autocast on CUDA
(the authors train in bf16), float32 elsewhere. Under ``torchrun`` with several processes the
objective's forward module is wrapped in ``DistributedDataParallel`` with
``find_unused_parameters=True``: some trainable parameters never receive a gradient from the
mask loss (the IoU and object-score heads are only argmax'ed / thresholded, the single-mask
hypernetwork is unused with multimask output, ...), and the ablations leave whole blocks unused.
Only rank 0 logs, validates and writes checkpoints.

Every step appends one JSON line to ``OUT/log.jsonl``: ``step``, the loss terms, ``grad_norm``,
``seconds`` (the step's time, validation and saving excluded) and, at validation steps, ``val``
(the objective's scores). Checkpoints are ``OUT/step-NNNNNN`` folders
(:mod:`mpg_sam2.training.checkpointing`).
"""
from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from mpg_sam2.training.augment import AugmentConfig
from mpg_sam2.training.bootstrap import start_run
from mpg_sam2.training.checkpointing import (
    TrainingState,
    checkpoint_name,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from mpg_sam2.training.datasets import ClipDataset, ClipGroups, TrainingClip, collate_groups, load_entries, video_groups
from mpg_sam2.training.distributed import ShardedStream, setup_distributed, teardown_distributed
from mpg_sam2.training.losses import num_valid_frames
from mpg_sam2.training.lr_schedule import lr_factor
from mpg_sam2.training.objectives import Objective, ReferringObjective
from mpg_sam2.training.train_config import TrainConfig

__all__ = ["TrainResult", "Trainer", "train"]


@dataclass
class TrainResult:
    checkpoint: Path
    step: int
    last_losses: dict[str, float]
    validation: list[dict[str, float]] = field(default_factory=list)
    seconds_per_step: float = 0.0  # mean time of a training step (validation and saving excluded)
    notes: list[str] = field(default_factory=list)


class Trainer:
    """Builds everything from a :class:`TrainConfig` and an objective (default: the referring
    loss on the whole model); :meth:`run` trains (``train`` does both)."""

    def __init__(self, config: TrainConfig, log: Callable[[str], None] | None = None,
                 objective: Objective | None = None) -> None:
        self.config = config
        self.objective = objective or ReferringObjective()
        self.log = log or (lambda line: print(line, flush=True))
        self.notes: list[str] = []
        self._setup_process()
        self._setup_model()
        self._setup_optimisation()
        self._setup_data()

    # ------------------------------------------------------------------------------------------
    # Setup

    def _setup_process(self) -> None:
        """Threads, process group, device and precision; creates the output folder."""
        if self.config.threads is not None:
            # On a shared CPU one thread is often much faster than several competing ones.
            torch.set_num_threads(self.config.threads)
        self.context, self.device = setup_distributed(self.config.device)
        precision = self.config.precision
        if precision == "auto":
            precision = "bf16" if self.device.type == "cuda" else "fp32"
        if precision == "bf16" and self.device.type == "cpu":
            raise ValueError("--precision bf16 trains under CUDA autocast; on the CPU use fp32")
        self.autocast_dtype = torch.bfloat16 if precision == "bf16" else None
        self.config.out.mkdir(parents=True, exist_ok=True)

    def _setup_model(self) -> None:
        """Tokenizer, model and initial weights (:func:`start_run`); the objective settles on them."""
        start = start_run(self.config, self.context, self._say)
        self.tokenizer, self.model, self._resume_dir = start.tokenizer, start.model, start.resume_dir
        self.notes += start.notes
        if start.previous_args:
            previous = start.previous_args.get("objective", "referring")  # older checkpoints: the full training
            if previous != self.objective.name:
                raise ValueError(f"{start.resume_dir} was trained on the {previous} objective, not {self.objective.name}; "
                                 "resume it with the command that started it, or start from its weights with --init-from")
            # Its data stream counts batches of videos or of expressions: the other kind would
            # continue at another place in the data.
            if start.previous_args.get("by_video", False) != self.config.by_video:
                kind = "whole videos" if start.previous_args.get("by_video", False) else "single expressions"
                raise ValueError(f"{start.resume_dir} was trained in batches of {kind}; resume it with the same "
                                 "by_video setting (--by-video), or start from its weights with --init-from")
        self.notes += self.objective.prepare(self.config, start)
        self.model.to(self.device).train()

    def _setup_optimisation(self) -> None:
        """Optimizer and forward module (DDP-wrapped under torchrun); a resumed run's state."""
        self.optimizer = self.objective.build_optimizer(self.model, self.config)
        self.forward_module = self.objective.forward_module(self.model, self.autocast_dtype)
        if self.context.enabled:
            self.forward_module = torch.nn.parallel.DistributedDataParallel(
                self.forward_module,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True,
            )
        self.step, self.stream_position = 0, 0
        if self._resume_dir is not None:
            state = load_checkpoint(self._resume_dir, self.model, self.optimizer)
            if state.objective_state is not None:
                self.objective.load_state_dict(state.objective_state)
            state.restore_rng()
            # The optimizer state carries the old run's rates; _set_learning_rates sets this
            # run's before every step.
            self.step, self.stream_position = state.step, state.stream_position
            self._say(f"resumed from {self._resume_dir} at step {self.step}")

    def _setup_data(self) -> None:
        """The training draws and, on the main process, the validation data."""
        config, model_config = self.config, self.model.config
        entries = load_entries(config.dataset, config.data)
        clips = ClipDataset(
            entries, self.tokenizer, model_config.sam2.image_size, model_config.beit3.image_size, config.frames,
            augment=AugmentConfig() if config.augment else AugmentConfig.none(), seed=config.seed,
            max_tokens=min(512, model_config.beit3.max_text_tokens), label_grid=self.objective.label_grid(model_config),
            frame_sampling=config.frame_sampling,
        )
        # Whole videos: every caption of a video on the same draw (batch_size counts videos).
        groups = video_groups(entries) if config.by_video else [[index] for index in range(len(entries))]
        self.dataset = ClipGroups(clips, groups)
        self.num_entries = len(entries)
        if config.val_every > 0 and self.context.is_main:
            note = self.objective.load_validation(config, self.tokenizer, model_config)
            if note is not None:
                self.notes.append(note)

    def _say(self, line: str) -> None:
        if self.context.is_main:
            self.log(line)

    # ------------------------------------------------------------------------------------------
    # Loop

    def _batches(self) -> Iterator[list[TrainingClip]]:
        stream = ShardedStream(len(self.dataset), self.config.seed, self.context, start=self.stream_position)
        # Own generator: creating the loader's iterator must not draw from the global RNG, which
        # a resumed run restores (dropout in SAM 2's memory attention reads it).
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_size=self.config.batch_size, sampler=stream, collate_fn=collate_groups,
            num_workers=self.config.num_workers, generator=torch.Generator().manual_seed(self.config.seed),
        )
        for batch in loader:
            self.stream_position += self.config.batch_size  # the stream is endless: batches are full
            yield batch

    def _micro_step(self, batch: list[TrainingClip], last: bool) -> dict[str, float]:
        num_valid = self.context.mean(num_valid_frames([c.targets for c in batch]).to(self.device))
        sync = contextlib.nullcontext() if last or not self.context.enabled else self.forward_module.no_sync()
        with sync:
            losses = self.forward_module(batch, num_valid)
            (losses["loss"] / self.config.accumulate).backward()
        return {k: float(v.detach()) for k, v in losses.items()}

    def _set_learning_rates(self) -> None:
        """Each group's rate for the coming step: the run's rate times the schedule's factor."""
        config = self.config
        factor = lr_factor(self.step, config.steps, config.lr_schedule, config.warmup_steps)
        rates = self.objective.learning_rates(config)
        for group in self.optimizer.param_groups:
            group["lr"] = rates[group["name"]] * factor

    def train_step(self, batches: Iterator[list[TrainingClip]]) -> dict[str, float]:
        """One optimizer step over ``accumulate`` micro-batches; returns the mean loss terms."""
        totals: dict[str, float] = {}
        for k in range(self.config.accumulate):
            parts = self._micro_step(next(batches), last=k == self.config.accumulate - 1)
            for name, value in parts.items():
                totals[name] = totals.get(name, 0.0) + value / self.config.accumulate
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        self._set_learning_rates()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        totals["grad_norm"] = float(grad_norm)
        return totals

    def save(self) -> Path:
        directory = self.config.out / checkpoint_name(self.step)
        if self.context.is_main:
            state = TrainingState(self.step, self.stream_position, TrainingState.capture_rng(), self.objective.state_dict())
            args = {"objective": self.objective.name, **self.objective.training_args(self.config)}
            save_checkpoint(directory, self.model, self.tokenizer, self.optimizer, state, args)
            prune_checkpoints(self.config.out, self.config.keep_last)
        self.context.barrier()
        return directory

    def validate(self) -> dict[str, float] | None:
        return self.objective.validate(self.model, self.tokenizer, self.autocast_dtype)

    def run(self) -> TrainResult:
        config = self.config
        log_path = config.out / "log.jsonl"
        self._say(
            f"training {config.preset if config.init_from is None else config.init_from} on {config.dataset} "
            f"({self.num_entries} expressions) for {config.steps} steps on {self.device}"
            f"{f' x{self.context.world_size}' if self.context.enabled else ''}, "
            f"batch {config.batch_size}{' videos' if config.by_video else ''} x accumulate {config.accumulate}, "
            f"{config.frames} frames, "
            f"{self.objective.summary(config)}"
        )
        for note in self.notes:
            self._say(f"note: {note}")
        batches = self._batches()
        validation: list[dict[str, float]] = []
        losses: dict[str, float] = {}
        step_seconds: list[float] = []
        checkpoint = None
        while self.step < config.steps:
            step_start = time.perf_counter()
            losses = self.train_step(batches)
            step_seconds.append(time.perf_counter() - step_start)
            record: dict[str, Any] = {"step": self.step, **losses, "seconds": step_seconds[-1]}
            if config.val_every and (self.step % config.val_every == 0 or self.step == config.steps):
                result = self.validate()
                if result is not None:
                    record["val"] = result
                    validation.append({"step": self.step, **result})
            if self.context.is_main:
                with open(log_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(record) + "\n")
                if self.step % config.log_every == 0 or "val" in record:
                    self.log(self._format_record(record))
            if config.save_every and self.step % config.save_every == 0:
                checkpoint = self.save()
        if checkpoint is None or checkpoint.name != checkpoint_name(self.step):
            checkpoint = self.save()
        seconds = sum(step_seconds) / len(step_seconds) if step_seconds else 0.0
        return TrainResult(checkpoint, self.step, losses, validation, seconds, list(self.notes))

    def _format_record(self, record: dict[str, Any]) -> str:
        parts = [f"step {record['step']}"]
        parts += [f"{name} {value:.4f}" for name, value in record.items() if name not in ("step", "seconds", "val")]
        parts.append(f"{record['seconds']:.2f}s")
        if "val" in record:
            parts.append(self.objective.describe_validation(record["val"]))
        return ", ".join(parts)

    def close(self) -> None:
        teardown_distributed(self.context)


def train(config: TrainConfig, log: Callable[[str], None] | None = None, objective: Objective | None = None) -> TrainResult:
    """Build a :class:`Trainer` and run it to ``config.steps``."""
    trainer = Trainer(config, log, objective)
    try:
        return trainer.run()
    finally:
        trainer.close()
