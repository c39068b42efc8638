"""The training loop: data stream -> forward + loss -> accumulate -> clip -> AdamW step -> log,
validate and checkpoint.

One optimizer step consumes ``accumulate`` micro-batches of ``batch_size`` clips per process.
bf16 autocast on CUDA (the authors train in bf16), float32 elsewhere. Under ``torchrun`` with
several processes the model is wrapped in ``DistributedDataParallel`` with
``find_unused_parameters=True``: some trainable parameters never receive a gradient from the
mask loss (the IoU and object-score heads are only argmax'ed / thresholded, the single-mask
hypernetwork is unused with multimask output, ...), and the ablations leave whole blocks unused.
Only rank 0 logs, validates and writes checkpoints.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from mpg_sam2.checkpoint.files import has_tokenizer
from mpg_sam2.config import MPGSAM2Config, get_preset
from mpg_sam2.model.mpg_sam2 import MPGSAM2
from mpg_sam2.tokenizer import ReferringTokenizer, load_tokenizer
from mpg_sam2.training.ablations import with_ablations
from mpg_sam2.training.augment import AugmentConfig
from mpg_sam2.training.checkpointing import (
    TRAINING_ARGS_FILE,
    TrainingState,
    checkpoint_name,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from mpg_sam2.training.datasets import DATASETS, ClipDataset, collate_clips, load_entries
from mpg_sam2.training.distributed import ShardedStream, setup_distributed, teardown_distributed
from mpg_sam2.training.forward import TrainingForward
from mpg_sam2.training.losses import LossWeights, num_valid_frames
from mpg_sam2.training.param_groups import STAGE_LEARNING_RATES, OptimizerSettings, build_optimizer

__all__ = ["TrainConfig", "TrainResult", "Trainer", "train"]

@dataclass
class TrainConfig:
    """Everything a run needs; ``python -m mpg_sam2 train`` fills it from its flags."""

    data: Path
    out: Path
    dataset: str = "synthetic"
    preset: str = "nano"
    steps: int = 1000
    batch_size: int = 1
    frames: int = 5
    accumulate: int = 1
    stage: str = "finetune"  # "pretrain" (lr 1e-5) or "finetune" (lr 2e-6)
    lr: float | None = None  # None: the stage's rate
    lr_fusion: float = 5e-5
    weight_decay: float = 5e-4
    grad_clip: float = 0.1
    authors_lr_groups: bool = False
    train_image_encoder: bool = False  # not the paper's recipe; see OptimizerSettings
    # None: 0 (the authors) when SAM 2 starts from trained weights, 1 when it starts from random.
    object_score_loss: float | None = None
    # None: 0 (the authors) when SAM 2 starts from trained weights, 1 when it starts from random.
    prior_loss: float | None = None
    augment: bool = True
    resume: Path | None = None
    init_from: Path | None = None  # model weights of a checkpoint directory (e.g. pre-training)
    init_sam2: Path | None = None
    init_beit3: Path | None = None
    tokenizer: Path | None = None
    tokenizer_vocab_size: int = 100
    no_mask_prior: bool = False
    no_aggregator: bool = False
    val_every: int = 0
    val_expressions: int = 16
    val_split: str | None = None
    save_every: int = 0  # 0: only at the end
    keep_last: int = 3
    log_every: int = 1
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # "auto" (bf16 on CUDA), "fp32" or "bf16"
    num_workers: int = 0
    threads: int | None = None  # torch CPU threads (None: torch's default)

    def __post_init__(self) -> None:
        self.data, self.out = Path(self.data), Path(self.out)
        if self.dataset not in DATASETS:
            raise ValueError(f"--dataset must be one of {DATASETS}, got {self.dataset!r}")
        if self.stage not in STAGE_LEARNING_RATES:
            raise ValueError(f"--stage must be one of {sorted(STAGE_LEARNING_RATES)}, got {self.stage!r}")
        for name in ("steps", "batch_size", "frames", "accumulate", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"--precision must be auto, fp32 or bf16, got {self.precision!r}")

    @property
    def base_lr(self) -> float:
        return self.lr if self.lr is not None else STAGE_LEARNING_RATES[self.stage]

    def to_json(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self).items()}


@dataclass
class TrainResult:
    checkpoint: Path
    step: int
    last_losses: dict[str, float]
    validation: list[dict[str, float]] = field(default_factory=list)
    seconds_per_step: float = 0.0  # mean time of a training step (validation and saving excluded)
    notes: list[str] = field(default_factory=list)


class Trainer:
    """Builds everything from a :class:`TrainConfig`; :meth:`run` trains (``train`` does both)."""

    def __init__(self, config: TrainConfig, log: Callable[[str], None] | None = None) -> None:
        self.config = config
        if config.threads is not None:
            # On a shared CPU one thread is often much faster than several competing ones.
            torch.set_num_threads(config.threads)
        self.context, self.device = setup_distributed(config.device)
        self.log = log or (lambda line: print(line, flush=True))
        self.notes: list[str] = []
        self.autocast_dtype = self._autocast_dtype()
        config.out.mkdir(parents=True, exist_ok=True)

        resume_dir = latest_checkpoint(config.resume) if config.resume is not None else None
        self.tokenizer = self._tokenizer(resume_dir)
        model_config = self._model_config(resume_dir)
        torch.manual_seed(config.seed)
        self.model = MPGSAM2(model_config)
        sam2_trained = self._initialise(resume_dir)
        self.model.to(self.device).train()

        # Two terms the authors do not have; a model trained from scratch needs them (see LossWeights).
        weights = {}
        for name, flag in (("object_score", "object_score_loss"), ("prior", "prior_loss")):
            weight = getattr(config, flag)
            if weight is None and resume_dir is not None:
                weight = _previous_args(resume_dir).get(flag, 0.0)
            if weight is None:
                weight = 0.0 if sam2_trained else 1.0
                if weight:
                    self.notes.append(f"SAM 2 starts untrained: {name.replace('_', '-')} loss weight 1 "
                                      f"(--{flag.replace('_', '-')} 0 for the authors' recipe)")
            weights[name] = weight
        self.loss_weights = LossWeights(**weights)
        self.settings = OptimizerSettings(
            lr=config.base_lr, lr_fusion=config.lr_fusion, weight_decay=config.weight_decay,
            grad_clip=config.grad_clip, authors_lr_groups=config.authors_lr_groups,
            train_image_encoder=config.train_image_encoder,
        )
        self.optimizer = build_optimizer(self.model, self.settings)
        self.forward_module: torch.nn.Module = TrainingForward(self.model, self.loss_weights, self.autocast_dtype)
        if self.context.enabled:
            self.forward_module = torch.nn.parallel.DistributedDataParallel(
                self.forward_module,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True,
            )

        self.step, stream_position = 0, 0
        if resume_dir is not None:
            state = load_checkpoint(resume_dir, self.model, self.optimizer)
            state.restore_rng()
            # The optimizer state carries the old run's rates; this run's flags decide.
            rates = {"base": self.settings.lr, "fusion": self.settings.lr_fusion}
            for group in self.optimizer.param_groups:
                group["lr"] = rates[group["name"]]
            self.step, stream_position = state.step, state.stream_position
            self._say(f"resumed from {resume_dir} at step {self.step}")
        self.stream_position = stream_position

        entries = load_entries(config.dataset, config.data)
        self.dataset = ClipDataset(
            entries, self.tokenizer, model_config.sam2.image_size, model_config.beit3.image_size, config.frames,
            augment=AugmentConfig() if config.augment else AugmentConfig.none(), seed=config.seed,
            max_tokens=min(512, model_config.beit3.max_text_tokens),
        )
        self.validation_set = None
        if config.val_every > 0 and self.context.is_main:
            from mpg_sam2.training.validation import load_validation_set

            self.validation_set = load_validation_set(config.dataset, str(config.data), config.val_split)
            if self.validation_set is None:
                self.notes.append(f"{config.dataset} has no validation split with masks; --val-every ignored")

    # ------------------------------------------------------------------------------------------
    # Setup

    def _say(self, line: str) -> None:
        if self.context.is_main:
            self.log(line)

    def _autocast_dtype(self) -> torch.dtype | None:
        precision = self.config.precision
        if precision == "auto":
            precision = "bf16" if self.device.type == "cuda" else "fp32"
        if precision == "bf16" and self.device.type == "cpu":
            raise ValueError("--precision bf16 trains under CUDA autocast; on the CPU use fp32")
        return torch.bfloat16 if precision == "bf16" else None

    def _tokenizer(self, resume_dir: Path | None) -> ReferringTokenizer:
        config = self.config
        if config.tokenizer is not None:
            return load_tokenizer(config.tokenizer)
        for checkpoint in (resume_dir, config.init_from):
            if checkpoint is not None and has_tokenizer(checkpoint):
                return load_tokenizer(checkpoint)
        if config.dataset == "synthetic":
            from mpg_sam2.training.tokenizer_training import train_tokenizer

            folder = config.out / "tokenizer"
            self.notes.append(f"trained a sentencepiece tokenizer on the synthetic vocabulary: {folder}")
            if self.context.is_main:
                train_tokenizer(folder, vocab_size=config.tokenizer_vocab_size)
            self.context.barrier()
            return load_tokenizer(folder)
        raise ValueError(
            f"--dataset {config.dataset} needs a tokenizer: pass --tokenizer DIR (BEiT-3's XLM-R sentencepiece "
            "tokenizer, e.g. a released checkpoint's folder)"
        )

    def _model_config(self, resume_dir: Path | None) -> MPGSAM2Config:
        from mpg_sam2.checkpoint.files import read_config_json
        from mpg_sam2.checkpoint.pretrained import load_pretrained

        self._init_state: dict[str, torch.Tensor] | None = None
        if resume_dir is not None:
            config = MPGSAM2Config.from_dict(read_config_json(resume_dir))
        elif self.config.init_from is not None:
            # Ours or the authors' checkpoint format (renamed through the one table).
            pretrained = load_pretrained(self.config.init_from, load_tokenizer_files=False)
            config, self._init_state = pretrained.model.config, pretrained.model.state_dict()
        else:
            config = get_preset(self.config.preset)
        # A resumed ablation keeps its switches (they are in its config.json) even without the flags.
        config = with_ablations(config, self.config.no_mask_prior, self.config.no_aggregator)
        if len(self.tokenizer) > config.beit3.vocab_size:
            raise ValueError(
                f"the tokenizer has {len(self.tokenizer)} ids but the model's text embedding has "
                f"{config.beit3.vocab_size} rows; use a preset with a larger vocab_size or a smaller tokenizer"
            )
        return config

    def _initialise(self, resume_dir: Path | None) -> bool:
        """Load initial weights; True when SAM 2's weights are trained ones."""
        from mpg_sam2.training.init_weights import init_from_beit3, init_from_sam2, left_at_init

        config = self.config
        if resume_dir is not None:
            return True
        if self._init_state is not None:
            from mpg_sam2.checkpoint.strict_loading import load_strict

            load_strict(self.model, self._init_state)
            self._init_state = None
            self._say(f"initialised from {config.init_from}")
            return True
        reports = []
        if config.init_sam2 is not None:
            reports.append(init_from_sam2(self.model, config.init_sam2))
        if config.init_beit3 is not None:
            reports.append(init_from_beit3(self.model, config.init_beit3))
        for report in reports:
            self._say(f"initialised {report.summary()}")
        if reports:
            left = left_at_init(self.model, reports)
            modules = sorted({".".join(name.split(".")[:2]) for name in left})
            self._say(f"left at initialisation: {len(left)} tensors in {', '.join(modules)}")
        return config.init_sam2 is not None

    # ------------------------------------------------------------------------------------------
    # Loop

    def _batches(self) -> Iterator[list]:
        stream = ShardedStream(len(self.dataset), self.config.seed, self.context, start=self.stream_position)
        # Own generator: creating the loader's iterator must not draw from the global RNG, which
        # a resumed run restores (dropout in SAM 2's memory attention reads it).
        loader = torch.utils.data.DataLoader(
            self.dataset, batch_size=self.config.batch_size, sampler=stream, collate_fn=collate_clips,
            num_workers=self.config.num_workers, generator=torch.Generator().manual_seed(self.config.seed),
        )
        for batch in loader:
            self.stream_position += len(batch)
            yield batch

    def _micro_step(self, batch: list, last: bool) -> dict[str, float]:
        num_valid = self.context.mean(num_valid_frames([c.targets for c in batch]).to(self.device))
        sync = contextlib.nullcontext() if last or not self.context.enabled else self.forward_module.no_sync()
        with sync:
            losses = self.forward_module(batch, num_valid)
            (losses["loss"] / self.config.accumulate).backward()
        return {k: float(v.detach()) for k, v in losses.items()}

    def train_step(self, batches: Iterator[list]) -> dict[str, float]:
        """One optimizer step over ``accumulate`` micro-batches; returns the mean loss terms."""
        totals: dict[str, float] = {}
        for k in range(self.config.accumulate):
            parts = self._micro_step(next(batches), last=k == self.config.accumulate - 1)
            for name, value in parts.items():
                totals[name] = totals.get(name, 0.0) + value / self.config.accumulate
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, self.settings.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        totals["grad_norm"] = float(grad_norm)
        return totals

    def save(self) -> Path:
        directory = self.config.out / checkpoint_name(self.step)
        if self.context.is_main:
            state = TrainingState(self.step, self.stream_position, TrainingState.capture_rng())
            args = {**self.config.to_json(), "object_score_loss": self.loss_weights.object_score,
                    "prior_loss": self.loss_weights.prior}
            save_checkpoint(directory, self.model, self.tokenizer, self.optimizer, state, args)
            prune_checkpoints(self.config.out, self.config.keep_last)
        self.context.barrier()
        return directory

    def validate(self) -> dict[str, float] | None:
        if self.validation_set is None:
            return None
        from mpg_sam2.training.validation import validate

        precision = "bf16" if self.autocast_dtype == torch.bfloat16 else "fp32"
        result = validate(self.model, self.tokenizer, self.validation_set, self.config.val_expressions, precision)
        self.model.train()
        return {"J": result.j, "F": result.f, "J&F": result.jf, "expressions": result.count}

    def run(self) -> TrainResult:
        config = self.config
        log_path = config.out / "log.jsonl"
        self._say(
            f"training {config.preset if config.init_from is None else config.init_from} on {config.dataset} "
            f"({len(self.dataset)} expressions) for {config.steps} steps on {self.device}"
            f"{f' x{self.context.world_size}' if self.context.enabled else ''}, "
            f"batch {config.batch_size} x accumulate {config.accumulate}, {config.frames} frames, "
            f"lr {self.settings.lr:g} / fusion {self.settings.lr_fusion:g}"
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
            if config.val_every and self.step % config.val_every == 0:
                result = self.validate()
                if result is not None:
                    record["val"] = result
                    validation.append({"step": self.step, **result})
            if self.context.is_main:
                with open(log_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(record) + "\n")
                if self.step % config.log_every == 0 or "val" in record:
                    self.log(_format_record(record))
            if config.save_every and self.step % config.save_every == 0:
                checkpoint = self.save()
        if checkpoint is None or checkpoint.name != checkpoint_name(self.step):
            checkpoint = self.save()
        seconds = sum(step_seconds) / len(step_seconds) if step_seconds else 0.0
        return TrainResult(checkpoint, self.step, losses, validation, seconds, list(self.notes))

    def close(self) -> None:
        teardown_distributed(self.context)


def _previous_args(checkpoint: Path) -> dict[str, Any]:
    path = checkpoint / TRAINING_ARGS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _format_record(record: dict[str, Any]) -> str:
    parts = [f"step {record['step']}"]
    for name in ("loss", "focal", "dice", "sim", "object_score", "prior", "grad_norm"):
        if name in record:
            parts.append(f"{name} {record[name]:.4f}")
    parts.append(f"{record['seconds']:.2f}s")
    if "val" in record:
        val = record["val"]
        parts.append(f"val J&F {val['J&F']:.3f} (J {val['J']:.3f}, F {val['F']:.3f}, {val['expressions']} expr.)")
    return ", ".join(parts)


def train(config: TrainConfig, log: Callable[[str], None] | None = None) -> TrainResult:
    """Build a :class:`Trainer` and run it to ``config.steps``."""
    trainer = Trainer(config, log)
    try:
        return trainer.run()
    finally:
        trainer.close()
