"""Warm-up of the grounding path (BEiT-3 + mask prior generator) before training the whole model.

A model trained from random weights learns *which* object a sentence means only through the
mask prior, and inside the full model every sample also pays for SAM 2's image encoder, memory
and decoder (about 0.7 s per 4-frame clip for ``nano`` on one CPU core). This stage trains
BEiT-3 and the generator alone on the prior loss (focal + dice against the target pooled to the
prior's grid, :func:`~mpg_sam2.training.losses.mask_prior_loss`): about 0.12 s per 4-frame
clip (0.05 s per 2-frame clip) for ``nano`` on one core, so it sees 5-10x more captions in the
same time. The full training then starts from its checkpoint
(``python -m mpg_sam2 train --init-from``), where SAM 2 learns to follow an informative dense
prompt. Not part of the authors' recipe: they start from trained BEiT-3 and SAM 2 weights.

    python -m mpg_sam2.training.prior_warmup --data data/synthetic --out runs/prior_warmup --steps 3000

Data flow of one step::

    B videos x all their expressions (ClipDataset: T frames, one augmentation per video)
    -> BEiT-3 on every (frame, caption) pair
    -> mask prior generator (space-time attention over the T frames) -> prior logits [T, g, g]
    -> mask_prior_loss vs targets [T, S, S] -> AdamW on beit3.* and mask_prior_generator.*
    (--attribute-loss W: + W x attribute loss of BEiT-3's patches [T, N, C] against the object
    labels [T, g, g], mpg_sam2.training.attribute_loss;
    --caption-loss W: + W x caption loss of BEiT-3's class tokens [T, C] against what the
    caption says, mpg_sam2.training.caption_loss;
    --motion-loss W: + W x motion loss of the space-time layer's tokens [T, N, C] against the
    objects' motions [T, g, g], mpg_sam2.training.motion_loss; best with --motion-features,
    which gives the generator patch motion to read, mpg_sam2.model.patch_motion)

:class:`PriorObjective` is that step for the one training loop (:mod:`mpg_sam2.training.trainer`),
which also writes the log and the checkpoint: ``OUT/step-NNNNNN``, a whole model (SAM 2 at the
random initialisation the same seed gives a from-scratch run) with its tokenizer, in the format
``load_pretrained`` reads, and this stage's settings in its ``training_args.json``.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from mpg_sam2.checkpoint.files import has_tokenizer
from mpg_sam2.config import MPGSAM2Config
from mpg_sam2.model.mpg_sam2 import MPGSAM2
from mpg_sam2.tokenizer import ReferringTokenizer
from mpg_sam2.training.attribute_loss import AttributeHead, attribute_loss, attribute_targets
from mpg_sam2.training.augment import AugmentConfig
from mpg_sam2.training.caption_loss import CaptionHead, caption_loss, caption_targets
from mpg_sam2.training.cli import conv_stem_widths
from mpg_sam2.training.datasets import FRAME_SAMPLINGS, ClipDataset, TrainingClip, load_entries
from mpg_sam2.training.losses import mask_prior_loss
from mpg_sam2.training.motion_loss import MotionHead, has_objects, motion_loss, motion_targets
from mpg_sam2.training.objectives import Objective
from mpg_sam2.training.param_groups import GROUNDING_PREFIXES
from mpg_sam2.training.train_config import TrainConfig

__all__ = ["WARMUP_DEFAULTS", "PriorObjective", "build_parser", "caption_effect", "main", "prior_iou", "warm_up_prior"]

# The warm-up's settings where they differ from a full training run's (TrainConfig): larger
# batches, a higher rate and looser clipping for the two small modules; float32 on the CPU.
WARMUP_DEFAULTS: dict[str, Any] = {
    "steps": 3000,
    "batch_size": 8,
    "frames": 4,
    "lr": 5e-4,
    "grad_clip": 1.0,
    "val_every": 500,
    "val_expressions": 80,
    "log_every": 100,
    "device": "cpu",
    "precision": "fp32",
    "by_video": True,
}


def _prior_logits(model: MPGSAM2, clips: list[TrainingClip]) -> list[torch.Tensor]:
    """Prior logits ``[T_i, g, g]`` of each clip (:func:`_grounding`)."""
    return _grounding(model, clips).prior_logits


@dataclasses.dataclass
class _Grounding:
    """What the warm-up's losses read, one entry per clip."""

    prior_logits: list[torch.Tensor]  # [T_i, g, g]
    patches: list[torch.Tensor]  # [T_i, N, C] BEiT-3's patch outputs
    cls: list[torch.Tensor]  # [T_i, C] BEiT-3's class tokens
    video_tokens: list[torch.Tensor]  # [T_i, N, C] the space-time layer's output


def _grounding(model: MPGSAM2, clips: list[TrainingClip]) -> _Grounding:
    """The prior logits and the tokens the head losses read, of each clip; BEiT-3 runs once on
    all (frame, caption) pairs.

    Captions are right-padded to the longest with the pad id and masked out, which leaves every
    real token's output unchanged; batching is what makes this stage cheap on a CPU. A clip whose
    frames equal an earlier clip's (the captions of one video share their draw) reuses its
    images, so each frame's patches are embedded once.
    """
    pad = model.config.pad_token_id
    length = max(c.input_ids.shape[1] for c in clips)
    pixels: list[torch.Tensor] = []  # distinct clips' frames, [T_i, 3, S, S] each
    first_image: list[int] = []  # per distinct entry of pixels: the index of its first frame
    ids, masks, image_index = [], [], []
    for c in clips:
        extra = length - c.input_ids.shape[1]
        ids.append(torch.nn.functional.pad(c.input_ids, (0, extra), value=pad).expand(c.num_frames, -1))
        masks.append(torch.nn.functional.pad(c.attention_mask, (0, extra), value=False).expand(c.num_frames, -1))
        same = next((k for k, p in enumerate(pixels) if p.shape == c.beit_pixels.shape and torch.equal(p, c.beit_pixels)), None)
        if same is None:
            first_image.append(sum(p.shape[0] for p in pixels))
            pixels.append(c.beit_pixels)
            same = len(pixels) - 1
        image_index.append(torch.arange(c.num_frames) + first_image[same])
    image_index = torch.cat(image_index).to(pixels[0].device)
    out = model.beit3(torch.cat(pixels), torch.cat(ids), torch.cat(masks), image_index=image_index)
    result, start = _Grounding([], [], [], []), 0
    for c in clips:
        frames = slice(start, start + c.num_frames)
        prior = model.mask_prior_generator(out.cls[frames], out.patches[frames])
        result.prior_logits.append(prior.prior_logits)
        result.patches.append(out.patches[frames])
        result.cls.append(out.cls[frames])
        result.video_tokens.append(prior.video_tokens)
        start += c.num_frames
    return result


@torch.no_grad()
def prior_iou(model: MPGSAM2, clips: list[TrainingClip]) -> float:
    """Mean IoU of (prior > 0.5) with (target covers > half a cell) on the prior's grid."""
    was_training = model.training
    model.eval()
    ious = []
    for clip in clips:
        logits = _prior_logits(model, [clip])[0]
        pred = logits > 0
        cover = torch.nn.functional.interpolate(clip.targets[:, None], size=logits.shape[-2:], mode="area")[:, 0] > 0.5
        union = (pred | cover).sum()
        ious.append(1.0 if union == 0 else float((pred & cover).sum() / union))
    model.train(was_training)
    return float(np.mean(ious))


@torch.no_grad()
def caption_effect(model: MPGSAM2, clips: list[TrainingClip]) -> float:
    """How much the prior depends on the caption: the mean absolute deviation of the prior
    probabilities from their mean over the captions of the same video (0: text ignored)."""
    was_training = model.training
    model.eval()
    by_video: dict[str, list[torch.Tensor]] = {}
    for clip in clips:
        by_video.setdefault(clip.key.split("/")[0], []).append(_prior_logits(model, [clip])[0].sigmoid())
    model.train(was_training)
    effects = [(torch.stack(p) - torch.stack(p).mean(0)).abs().mean() for p in by_video.values() if len(p) > 1]
    return float(torch.stack(effects).mean()) if effects else 0.0


class PriorForward(nn.Module):
    """``forward(clips, num_valid) -> {"loss", ...}``: the mean prior loss over the clips, plus
    ``attribute_weight`` times the mean attribute loss with an ``attribute_head`` and
    ``caption_weight`` times the mean caption loss with a ``caption_head`` and ``motion_weight``
    times the mean motion loss with a ``motion_head`` (``num_valid`` unused)."""

    def __init__(self, model: MPGSAM2, autocast_dtype: torch.dtype | None = None,
                 attribute_head: AttributeHead | None = None, attribute_weight: float = 0.0,
                 caption_head: CaptionHead | None = None, caption_weight: float = 0.0,
                 motion_head: MotionHead | None = None, motion_weight: float = 0.0) -> None:
        super().__init__()
        self.model = model
        self.autocast_dtype = autocast_dtype
        self.attribute_head = attribute_head
        self.attribute_weight = attribute_weight
        self.caption_head = caption_head
        self.caption_weight = caption_weight
        self.motion_head = motion_head
        self.motion_weight = motion_weight

    def forward(self, clips: list[TrainingClip], num_valid: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        clips = [c.to(self.model.device) for c in clips]
        with self.model.autocast(self.autocast_dtype):
            grounding = _grounding(self.model, clips)
            attribute_logits = None if self.attribute_head is None else [self.attribute_head(x) for x in grounding.patches]
            caption_logits = None if self.caption_head is None else [self.caption_head(x) for x in grounding.cls]
            motion_logits = None if self.motion_head is None else [self.motion_head(x) for x in grounding.video_tokens]
        prior = torch.stack([mask_prior_loss(x.float(), c.targets) for x, c in zip(grounding.prior_logits, clips)]).mean()
        terms = {"prior": prior}
        loss = prior
        if attribute_logits is not None:
            terms["attributes"] = torch.stack([
                attribute_loss(x, c.object_labels, attribute_targets(c.object_labels, c.objects, "crop" not in c.augmentations))
                for x, c in zip(attribute_logits, clips)
            ]).mean()
            loss = loss + self.attribute_weight * terms["attributes"]
        if caption_logits is not None:
            terms["caption"] = torch.stack([caption_loss(x, caption_targets(c.text)) for x, c in zip(caption_logits, clips)]).mean()
            loss = loss + self.caption_weight * terms["caption"]
        if motion_logits is not None:
            targets = [motion_targets(c.object_labels, c.objects, "flip" in c.augmentations) for c in clips]
            # The mean over the clips with an object on the label grid: one without has no term.
            seen = [(x, t) for x, t in zip(motion_logits, targets) if has_objects(t)]
            terms["motion"] = (torch.stack([motion_loss(x, t) for x, t in seen]).mean() if seen
                               else motion_loss(motion_logits[0], targets[0]))
            loss = loss + self.motion_weight * terms["motion"]
        return {"loss": loss} if len(terms) == 1 else {"loss": loss, **terms}


class PriorObjective(Objective):
    """BEiT-3 and the mask prior generator on the prior loss, one AdamW group.

    Trained in batches of whole videos (``TrainConfig.by_video``, on in :data:`WARMUP_DEFAULTS`),
    a prior that ignores the caption fits at most one of a video's expressions, and their
    differences are a low-noise signal for the text; without them the network learns to ignore
    the text before it learns to read it.

    ``attribute_loss`` > 0 adds that times the per-patch attribute loss
    (:mod:`mpg_sam2.training.attribute_loss`, synthetic data only), ``caption_loss`` > 0 that times
    the loss of a head on BEiT-3's class tokens that says what the caption says
    (:mod:`mpg_sam2.training.caption_loss`, synthetic data only), ``motion_loss`` > 0 that times
    the loss of a head on the space-time layer's tokens that names the motion of the object under
    each patch (:mod:`mpg_sam2.training.motion_loss`, synthetic data only). Each head trains in a
    group of its own at the same rate and is saved with the optimizer state, not in the model.
    """

    name = "prior"

    def __init__(self, attribute_loss: float = 0.0, caption_loss: float = 0.0, motion_loss: float = 0.0) -> None:
        if attribute_loss < 0:
            raise ValueError(f"--attribute-loss must be at least 0, got {attribute_loss}")
        if caption_loss < 0:
            raise ValueError(f"--caption-loss must be at least 0, got {caption_loss}")
        if motion_loss < 0:
            raise ValueError(f"--motion-loss must be at least 0, got {motion_loss}")
        self.attribute_weight = attribute_loss
        self.caption_weight = caption_loss
        self.motion_weight = motion_loss
        self.attribute_head: AttributeHead | None = None
        self.caption_head: CaptionHead | None = None
        self.motion_head: MotionHead | None = None
        self._val_clips: list[TrainingClip] = []

    def build_optimizer(self, model: MPGSAM2, config: TrainConfig) -> torch.optim.Optimizer:
        params = [p for n, p in model.named_parameters() if n.startswith(GROUNDING_PREFIXES)]
        groups = [{"name": "grounding", "params": params, "lr": config.base_lr, "weight_decay": config.weight_decay}]
        if self.attribute_weight > 0:
            self.attribute_head = AttributeHead(model.config.beit3.embed_dim).to(model.device)
            groups.append({"name": "attribute_head", "params": list(self.attribute_head.parameters()),
                           "lr": config.base_lr, "weight_decay": config.weight_decay})
        if self.caption_weight > 0:
            self.caption_head = CaptionHead(model.config.beit3.embed_dim).to(model.device)
            groups.append({"name": "caption_head", "params": list(self.caption_head.parameters()),
                           "lr": config.base_lr, "weight_decay": config.weight_decay})
        if self.motion_weight > 0:
            self.motion_head = MotionHead(model.config.beit3.embed_dim).to(model.device)
            groups.append({"name": "motion_head", "params": list(self.motion_head.parameters()),
                           "lr": config.base_lr, "weight_decay": config.weight_decay})
        return torch.optim.AdamW(groups, lr=config.base_lr, weight_decay=config.weight_decay)

    def learning_rates(self, config: TrainConfig) -> dict[str, float]:
        return {"grounding": config.base_lr, "attribute_head": config.base_lr, "caption_head": config.base_lr,
                "motion_head": config.base_lr}

    def label_grid(self, model_config: MPGSAM2Config) -> int | None:
        return model_config.beit3.grid_size if self.attribute_weight > 0 or self.motion_weight > 0 else None

    def _heads(self) -> dict[str, nn.Module]:
        heads = (("attribute_head", self.attribute_head), ("caption_head", self.caption_head), ("motion_head", self.motion_head))
        return {name: head for name, head in heads if head is not None}

    def state_dict(self) -> dict[str, Any] | None:
        return {name: head.state_dict() for name, head in self._heads().items()} or None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # A checkpoint of another --attribute-loss / --caption-loss / --motion-loss setting was refused already:
        # its optimizer state has other parameter groups (checkpointing.load_checkpoint).
        for name, head in self._heads().items():
            head.load_state_dict(state[name])

    def forward_module(self, model: MPGSAM2, autocast_dtype: torch.dtype | None) -> nn.Module:
        return PriorForward(model, autocast_dtype, self.attribute_head, self.attribute_weight, self.caption_head,
                            self.caption_weight, self.motion_head, self.motion_weight)

    def load_validation(self, config: TrainConfig, tokenizer: ReferringTokenizer, model_config: MPGSAM2Config) -> str | None:
        entries = load_entries(config.dataset, config.data, "valid")[: config.val_expressions]
        sizes = (model_config.sam2.image_size, model_config.beit3.image_size)
        clips = ClipDataset(entries, tokenizer, *sizes, config.frames, augment=AugmentConfig.none(), seed=config.seed)
        self._val_clips = [clips[(i, i)] for i in range(len(entries))]
        return None

    def validate(self, model: MPGSAM2, tokenizer: ReferringTokenizer, autocast_dtype: torch.dtype | None) -> dict[str, float] | None:
        if not self._val_clips:
            return None
        clips = [clip.to(model.device) for clip in self._val_clips]  # kept on the CPU between validations
        return {"prior_iou": prior_iou(model, clips), "caption_effect": caption_effect(model, clips)}

    def describe_validation(self, scores: dict[str, float]) -> str:
        return f"validation prior IoU {scores['prior_iou']:.3f}, caption effect {scores['caption_effect']:.4f}"

    def summary(self, config: TrainConfig) -> str:
        unit = "whole videos" if config.by_video else "expressions"
        loss = ("the prior loss" + (f" + {self.attribute_weight:g} x the attribute loss" if self.attribute_weight > 0 else "")
                + (f" + {self.caption_weight:g} x the caption loss" if self.caption_weight > 0 else "")
                + (f" + {self.motion_weight:g} x the motion loss" if self.motion_weight > 0 else ""))
        return f"batches of {unit}, BEiT-3 + mask prior generator on {loss}, lr {config.base_lr:g}"

    def training_args(self, config: TrainConfig) -> dict[str, Any]:
        return {**config.to_json(), "attribute_loss": self.attribute_weight,
                "caption_loss": self.caption_weight, "motion_loss": self.motion_weight}


def warm_up_prior(data: str | Path, out: str | Path, *, attribute_loss: float = 0.0,
                  caption_loss: float = 0.0, motion_loss: float = 0.0, log: Callable[[str], None] | None = None,
                  **settings: Any) -> Path:
    """Train BEiT-3 + the mask prior generator; returns the checkpoint folder (``out``/step-NNNNNN).

    ``settings`` are :class:`TrainConfig` fields over :data:`WARMUP_DEFAULTS`, e.g. ``steps``,
    ``lr``, ``init_from`` (a checkpoint to continue from: its weights and tokenizer, a fresh
    optimizer), ``motion_features``, ``conv_stem`` or ``model_config`` (instead of the preset).
    """
    from mpg_sam2.training.trainer import train

    init_from = settings.get("init_from")
    if init_from is not None and not has_tokenizer(Path(init_from)):
        # Its text embedding was trained with the tokenizer it was saved with; a fresh one would
        # give other ids.
        raise ValueError(f"{init_from} has no tokenizer files; a warm-up continues only from a full checkpoint")
    config = TrainConfig(data=Path(data), out=Path(out), **{**WARMUP_DEFAULTS, **settings})
    return train(config, log, PriorObjective(attribute_loss, caption_loss, motion_loss)).checkpoint


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m mpg_sam2.training.prior_warmup``."""
    parser = argparse.ArgumentParser(prog="python -m mpg_sam2.training.prior_warmup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--dataset", default="synthetic", choices=["synthetic", "ref-youtube-vos", "mevis"])
    parser.add_argument("--out", type=Path, required=True)
    defaults = {**dataclasses.asdict(TrainConfig(data=Path(), out=Path())), **WARMUP_DEFAULTS}
    for name in ("preset", "steps", "batch_size", "frames", "lr", "warmup_steps", "weight_decay", "grad_clip", "seed",
                 "threads", "val_every", "val_expressions", "log_every"):
        default = defaults[name]
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default) if default is not None else int, default=default)
    parser.add_argument("--lr-schedule", default="constant", choices=["constant", "cosine"],
                        help="cosine: the rate decays to 0 at the last step (default constant)")
    parser.add_argument("--frame-sampling", default="window", choices=list(FRAME_SAMPLINGS),
                        help="how a clip's frames are drawn: window (one random stride and start; default) or span "
                             "(the video's first and last frame always, the others at random between)")
    parser.add_argument("--embedding-init", default="default", choices=["default", "small"],
                        help="small: from random weights, BEiT-3's text and position embeddings start from N(0, 0.02)")
    parser.add_argument("--init-from", type=Path, default=None,
                        help="checkpoint folder to continue from (e.g. an earlier warm-up's step-NNNNNN/)")
    parser.add_argument("--attribute-loss", type=float, default=0.0,
                        help="weight of a per-patch attribute loss on BEiT-3's patches (synthetic data only; default 0: off)")
    parser.add_argument("--caption-loss", type=float, default=0.0,
                        help="weight of a loss on BEiT-3's class tokens saying what the caption says (synthetic data only; default 0: off)")
    parser.add_argument("--motion-loss", type=float, default=0.0,
                        help="weight of a loss on the space-time layer's tokens naming the motion of the object under each "
                             "patch (synthetic data only; default 0: off)")
    parser.add_argument("--motion-features", action="store_true", default=None,
                        help="a new model's mask prior generator reads patch motion (MaskPriorConfig.motion_features; "
                             "not in the paper; off for every preset; a checkpoint cannot change it)")
    parser.add_argument("--conv-stem", type=conv_stem_widths, default=None, metavar="C1,C2,...",
                        help="a new model's BEiT-3 gets a convolutional stem beside its patch projection, with these "
                             "widths (BEiT3Config.conv_stem; not in BEiT-3; off for every preset; a checkpoint cannot change it)")
    parser.add_argument("--no-by-video", dest="by_video", action="store_false",
                        help="batches of independent expressions instead of whole videos")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    final = warm_up_prior(**vars(args))
    print(f"checkpoint: {final}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
