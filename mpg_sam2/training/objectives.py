"""What a training run optimises: an :class:`Objective` says which parameters train, how the
clips of a batch are grouped, which loss is computed and how the run is validated; the loop in
:mod:`mpg_sam2.training.trainer` does everything else (data order, optimizer steps, logging,
checkpoints, resume) the same way for every objective.

* :class:`ReferringObjective`: the paper's training of the whole model (focal + dice + sim
  through SAM 2's video propagation, the paper's parameter groups, J&F validation);
* :class:`~mpg_sam2.training.prior_warmup.PriorObjective`: the warm-up of BEiT-3 and the mask
  prior generator alone on the prior loss.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import nn

from mpg_sam2.config import MPGSAM2Config
from mpg_sam2.model.mpg_sam2 import MPGSAM2
from mpg_sam2.tokenizer import ReferringTokenizer
from mpg_sam2.training.bootstrap import RunStart
from mpg_sam2.training.forward import TrainingForward
from mpg_sam2.training.losses import LossWeights
from mpg_sam2.training.param_groups import OptimizerSettings, build_optimizer
from mpg_sam2.training.click_training import ClickTraining
from mpg_sam2.training.train_config import TrainConfig

__all__ = ["Objective", "ReferringObjective"]


class Objective(ABC):
    """One training objective; the loop calls :meth:`prepare` once the model is built."""

    name: ClassVar[str]  # recorded in training_args.json; a run resumes only with the same objective

    def prepare(self, config: TrainConfig, start: RunStart) -> list[str]:
        """Settle what depends on the starting point; returns notes for the log."""
        return []

    @abstractmethod
    def build_optimizer(self, model: MPGSAM2, config: TrainConfig) -> torch.optim.Optimizer:
        """AdamW over the trained parameters, one named group per learning rate."""

    @abstractmethod
    def learning_rates(self, config: TrainConfig) -> dict[str, float]:
        """Group name -> rate; a resumed run's optimizer state gets this run's rates."""

    def label_grid(self, model_config: MPGSAM2Config) -> int | None:
        """Side of the grid the training clips carry object labels on (``ClipDataset``); None: none."""
        return None

    def state_dict(self) -> dict[str, Any] | None:
        """Trained weights of the objective's own that are not the model's (saved with the
        optimizer state, so a resumed run continues exactly); None: there are none."""
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` gave, after :meth:`build_optimizer`."""
        raise ValueError(f"the {self.name} objective keeps no state of its own, but the checkpoint has some")

    @abstractmethod
    def forward_module(self, model: MPGSAM2, autocast_dtype: torch.dtype | None) -> nn.Module:
        """The module DDP wraps: ``forward(clips, num_valid) -> {"loss": scalar, other terms...}``
        (``num_valid``: the batch's frames with a target, averaged over processes)."""

    def load_validation(self, config: TrainConfig, tokenizer: ReferringTokenizer, model_config: MPGSAM2Config) -> str | None:
        """Prepare validation (main process only); returns a note when there is nothing to validate on."""
        return None

    def validate(self, model: MPGSAM2, tokenizer: ReferringTokenizer, autocast_dtype: torch.dtype | None) -> dict[str, float] | None:
        """Validation scores of the current weights (None: no validation set); leaves the model training."""
        return None

    def describe_validation(self, scores: dict[str, float]) -> str:
        return "val " + ", ".join(f"{k} {v:.3f}" for k, v in scores.items())

    @abstractmethod
    def summary(self, config: TrainConfig) -> str:
        """What trains and at which rates, for the run's first log line."""

    @abstractmethod
    def training_args(self, config: TrainConfig) -> dict[str, Any]:
        """The settings recorded in each checkpoint's training_args.json."""


class ReferringObjective(Objective):
    """The whole model on the referring loss (:func:`~mpg_sam2.training.losses.referring_loss`)."""

    name = "referring"

    def __init__(self) -> None:
        self.loss_weights = LossWeights()
        self.clicks = ClickTraining()
        self.train_scope = "all"
        self._validation_set = None

    def prepare(self, config: TrainConfig, start: RunStart) -> list[str]:
        # Two terms the authors do not have; a model trained from scratch needs them (see LossWeights).
        notes, weights = [], {}
        for name, flag in (("object_score", "object_score_loss"), ("prior", "prior_loss")):
            weight = getattr(config, flag)
            if weight is None and start.resume_dir is not None:
                weight = start.previous_args.get(flag, 0.0)
            if weight is None:
                weight = 0.0 if start.sam2_trained else 1.0
                if weight:
                    notes.append(f"SAM 2 starts untrained: {name.replace('_', '-')} loss weight 1 "
                                 f"(--{flag.replace('_', '-')} 0 for the authors' recipe)")
            weights[name] = weight
        mask_choice = config.mask_choice_loss
        if mask_choice is None:
            mask_choice = start.previous_args.get("mask_choice_loss", 0.0)
        self.loss_weights = LossWeights(**weights, mask_choice=mask_choice)
        # The optimizer state of a resumed run holds the groups of its scope: it resumes in that scope.
        previous_scope = start.previous_args.get("train_scope", "all") if start.resume_dir is not None else None
        self.train_scope = config.train_scope or previous_scope or "all"
        if previous_scope is not None and self.train_scope != previous_scope:
            raise ValueError(f"the resumed run trained with --train-scope {previous_scope}; resume it with the same scope")
        self.clicks = ClickTraining(config.click_probability, config.clicks_per_frame)
        if self.clicks.enabled:
            notes.append(f"simulated clicks: {self.clicks.clicks} on one frame of {self.clicks.probability:.0%} of the clips "
                         "(not in the authors' recipe)")
        return notes

    def _settings(self, config: TrainConfig) -> OptimizerSettings:
        return OptimizerSettings(
            lr=config.base_lr, lr_fusion=config.lr_fusion, weight_decay=config.weight_decay,
            grad_clip=config.grad_clip, authors_lr_groups=config.authors_lr_groups,
            train_image_encoder=config.train_image_encoder, train_scope=self.train_scope,
        )

    def build_optimizer(self, model: MPGSAM2, config: TrainConfig) -> torch.optim.Optimizer:
        return build_optimizer(model, self._settings(config))

    def learning_rates(self, config: TrainConfig) -> dict[str, float]:
        return {"base": config.base_lr, "fusion": config.lr_fusion}

    def forward_module(self, model: MPGSAM2, autocast_dtype: torch.dtype | None) -> nn.Module:
        return TrainingForward(model, self.loss_weights, autocast_dtype, self.clicks)

    def load_validation(self, config: TrainConfig, tokenizer: ReferringTokenizer, model_config: MPGSAM2Config) -> str | None:
        from mpg_sam2.training.validation import load_validation_set

        self._validation_set = load_validation_set(config.dataset, str(config.data), config.val_split)
        self._val_expressions = config.val_expressions
        if self._validation_set is None:
            return f"{config.dataset} has no validation split with masks; --val-every ignored"
        return None

    def validate(self, model: MPGSAM2, tokenizer: ReferringTokenizer, autocast_dtype: torch.dtype | None) -> dict[str, float] | None:
        if self._validation_set is None:
            return None
        from mpg_sam2.training.validation import validate

        # Validation runs under the training's autocast (bf16 on CUDA), on its float32 weights.
        with model.autocast(autocast_dtype):
            result = validate(model, tokenizer, self._validation_set, self._val_expressions)
        model.train()
        return {"J": result.j, "F": result.f, "J&F": result.jf, "expressions": result.count}

    def describe_validation(self, scores: dict[str, float]) -> str:
        return (f"val J&F {scores['J&F']:.3f} (J {scores['J']:.3f}, F {scores['F']:.3f}, "
                f"{scores['expressions']} expr.)")

    def summary(self, config: TrainConfig) -> str:
        return f"lr {config.base_lr:g} / fusion {config.lr_fusion:g}"

    def training_args(self, config: TrainConfig) -> dict[str, Any]:
        return {**config.to_json(), "object_score_loss": self.loss_weights.object_score,
                "prior_loss": self.loss_weights.prior, "mask_choice_loss": self.loss_weights.mask_choice,
                "train_scope": self.train_scope}
