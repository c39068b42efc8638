"""The settings of one training run: what ``python -m mpg_sam2 train`` fills from its flags.

The same settings drive every objective the loop trains (:mod:`mpg_sam2.training.objectives`);
the prior warm-up fills them from its own flags (:mod:`mpg_sam2.training.prior_warmup`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpg_sam2.config import MPGSAM2Config
from mpg_sam2.training.datasets import DATASETS, FRAME_SAMPLINGS
from mpg_sam2.training.lr_schedule import LR_SCHEDULES
from mpg_sam2.training.param_groups import STAGE_LEARNING_RATES, TRAIN_SCOPES

__all__ = ["EMBEDDING_INITS", "TrainConfig"]

EMBEDDING_INITS = ("default", "small")


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
    # Rate factor per step (lr_schedule.py): "constant" (the authors) or "cosine" (to 0 at
    # the last step), both after a linear warm-up over warmup_steps.
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    authors_lr_groups: bool = False
    train_image_encoder: bool = False  # not the paper's recipe; see OptimizerSettings
    # None: 0 (the authors) when SAM 2 starts from trained weights, 1 when it starts from random.
    object_score_loss: float | None = None
    # None: 0 (the authors) when SAM 2 starts from trained weights, 1 when it starts from random.
    prior_loss: float | None = None
    # Simulated corrective clicks (click_training.py): the share of clips with a corrected
    # frame and the clicks on it. 0: the authors' training, which has no points.
    click_probability: float = 0.0
    clicks_per_frame: int = 1
    # Weight of the IoU head's loss, with the mask losses on each frame's lowest-loss output
    # (LossWeights.mask_choice). None: a resumed run's own, else 0 (the authors' training, whose
    # IoU head comes trained from SAM 2).
    mask_choice_loss: float | None = None
    # Sets the model's MaskPriorConfig.click_radius (clicks paint their frame's prior); None:
    # the starting configuration's (0 for every preset: clicks are SAM 2's points only).
    click_radius: float | None = None
    # True: a new model's mask prior generator reads patch motion (MaskPriorConfig.motion_features,
    # not in the paper). None: the starting configuration's (False for every preset). A run from or
    # resumed at a checkpoint with the other setting is refused: its weights have or lack the module.
    motion_features: bool | None = None
    # Widths of a new model's BEiT-3 convolutional stem (BEiT3Config.conv_stem, not in BEiT-3), e.g.
    # (24, 48, 96). None: the starting configuration's (none for every preset). Like
    # motion_features, a checkpoint cannot change it.
    conv_stem: tuple[int, ...] | None = None
    # "all" (the paper) or "decoder": only SAM 2's prompt encoder and mask decoder (less the
    # aggregator) train, e.g. a click stage that should leave the grounding as it is. None: a
    # resumed run's own, else "all".
    train_scope: str | None = None
    augment: bool = True
    # How a clip's frames are drawn from its video (datasets.FRAME_SAMPLINGS): "window" (one
    # random stride and start, the authors' kind) or "span" (first and last frame always).
    frame_sampling: str = "window"
    # Batches of whole videos: every caption of a video on the same frames and augmentation
    # (batch_size then counts videos); the full training computes SAM 2's image features once
    # per frame for all of them. False: the authors' one clip per expression. The prior
    # warm-up's default is True (prior_warmup.WARMUP_DEFAULTS).
    by_video: bool = False
    resume: Path | None = None
    init_from: Path | None = None  # model weights of a checkpoint directory (e.g. pre-training)
    # "default": every module's own initialisation; "small": a random start's BEiT-3 embeddings
    # from N(0, 0.02) (bootstrap.small_embeddings). Ignored where weights are loaded.
    embedding_init: str = "default"
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
    model_config: MPGSAM2Config | None = None  # instead of the preset (Python API only; not recorded)

    def __post_init__(self) -> None:
        self.data, self.out = Path(self.data), Path(self.out)
        if self.dataset not in DATASETS:
            raise ValueError(f"--dataset must be one of {DATASETS}, got {self.dataset!r}")
        if self.stage not in STAGE_LEARNING_RATES:
            raise ValueError(f"--stage must be one of {sorted(STAGE_LEARNING_RATES)}, got {self.stage!r}")
        for name in ("steps", "batch_size", "frames", "accumulate", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.embedding_init not in EMBEDDING_INITS:
            raise ValueError(f"--embedding-init must be one of {EMBEDDING_INITS}, got {self.embedding_init!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"--lr-schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if not 0 <= self.warmup_steps < self.steps:
            raise ValueError(f"--warmup-steps must be at least 0 and below --steps ({self.steps}), got {self.warmup_steps}")
        if not 0.0 <= self.click_probability <= 1.0:
            raise ValueError(f"--click-probability must be in [0, 1], got {self.click_probability}")
        if self.clicks_per_frame < 1:
            raise ValueError(f"--clicks-per-frame must be at least 1, got {self.clicks_per_frame}")
        if self.mask_choice_loss is not None and self.mask_choice_loss < 0:
            raise ValueError(f"--mask-choice-loss must be at least 0, got {self.mask_choice_loss}")
        if self.click_radius is not None and self.click_radius < 0:
            raise ValueError(f"--click-radius must be at least 0, got {self.click_radius}")
        if self.train_scope is not None and self.train_scope not in TRAIN_SCOPES:
            raise ValueError(f"--train-scope must be one of {TRAIN_SCOPES}, got {self.train_scope!r}")
        if self.train_scope == "decoder" and self.train_image_encoder:
            raise ValueError("--train-scope decoder trains only the prompt encoder and mask decoder; drop --train-image-encoder")
        if self.click_radius and self.no_mask_prior:
            raise ValueError("--click-radius paints the mask prior, which --no-mask-prior does not feed to SAM 2; drop one")
        if self.frame_sampling not in FRAME_SAMPLINGS:
            raise ValueError(f"--frame-sampling must be one of {FRAME_SAMPLINGS}, got {self.frame_sampling!r}")
        if self.conv_stem is not None:
            self.conv_stem = tuple(self.conv_stem)  # JSON gives a list
            if not all(isinstance(c, int) and c > 0 for c in self.conv_stem):
                raise ValueError(f"--conv-stem takes positive channel counts, got {self.conv_stem}")
        if self.precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"--precision must be auto, fp32 or bf16, got {self.precision!r}")

    @property
    def base_lr(self) -> float:
        return self.lr if self.lr is not None else STAGE_LEARNING_RATES[self.stage]

    def to_json(self) -> dict[str, Any]:
        """The flags as JSON values (paths as strings); ``model_config`` is in the checkpoint's config.json."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "model_config"}
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in fields.items()}
