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

The saved checkpoint is a whole model (SAM 2 at the random initialisation the same seed gives a
from-scratch run) with its tokenizer, in the format ``load_pretrained`` reads.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from mpg_sam2.config import MPGSAM2Config, get_preset
from mpg_sam2.model.mpg_sam2 import MPGSAM2
from mpg_sam2.training.augment import AugmentConfig
from mpg_sam2.training.datasets import ClipDataset, TrainingClip, load_entries
from mpg_sam2.training.losses import mask_prior_loss

__all__ = ["PriorWarmupConfig", "prior_iou", "warm_up_prior", "main"]

TRAINED_PREFIXES = ("beit3.", "mask_prior_generator.")


@dataclass
class PriorWarmupConfig:
    data: Path
    out: Path
    dataset: str = "synthetic"
    preset: str = "nano"
    steps: int = 3000
    batch_size: int = 8
    frames: int = 4
    lr: float = 5e-4
    weight_decay: float = 5e-4
    grad_clip: float = 1.0
    seed: int = 0
    threads: int | None = None
    val_every: int = 500
    val_expressions: int = 80
    tokenizer_vocab_size: int = 100
    # Batches of whole videos: every expression of a video on the same frames and augmentation.
    # A prior that ignores the caption then fits at most one of them, and the pairs' differences
    # are a low-noise signal for the text; without it the network learns to ignore the text
    # before it learns to read it (batch_size then counts videos).
    by_video: bool = True
    # A checkpoint folder to continue from (its weights and tokenizer; fresh optimizer state),
    # e.g. an earlier warm-up stage. None: random weights of ``seed``.
    init_from: Path | None = None
    model_config: MPGSAM2Config | None = None  # instead of the preset (Python API only)


def _prior_logits(model: MPGSAM2, clips: list[TrainingClip]) -> list[torch.Tensor]:
    """Prior logits ``[T_i, g, g]`` of each clip; BEiT-3 runs once on all (frame, caption) pairs.

    Captions are right-padded to the longest with the pad id and masked out, which leaves every
    real token's output unchanged; batching is what makes this stage cheap on a CPU.
    """
    pad = model.config.pad_token_id
    length = max(c.input_ids.shape[1] for c in clips)
    pixels, ids, masks = [], [], []
    for c in clips:
        extra = length - c.input_ids.shape[1]
        ids.append(torch.nn.functional.pad(c.input_ids, (0, extra), value=pad).expand(c.num_frames, -1))
        masks.append(torch.nn.functional.pad(c.attention_mask, (0, extra), value=False).expand(c.num_frames, -1))
        pixels.append(c.beit_pixels)
    out = model.beit3(torch.cat(pixels), torch.cat(ids), torch.cat(masks))
    logits, start = [], 0
    for c in clips:
        frames = slice(start, start + c.num_frames)
        logits.append(model.mask_prior_generator(out.cls[frames], out.patches[frames]).prior_logits)
        start += c.num_frames
    return logits


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


def warm_up_prior(config: PriorWarmupConfig, log=print) -> Path:
    """Train BEiT-3 + the mask prior generator; returns the checkpoint folder (``config.out``/final)."""
    from mpg_sam2.checkpoint.pretrained import save_pretrained
    from mpg_sam2.tokenizer import load_tokenizer
    from mpg_sam2.training.tokenizer_training import train_tokenizer

    if config.threads:
        torch.set_num_threads(config.threads)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    if config.init_from is not None:
        from mpg_sam2.checkpoint.pretrained import load_pretrained

        pretrained = load_pretrained(config.init_from)
        if pretrained.tokenizer is None:
            raise ValueError(f"{config.init_from} has no tokenizer files; a warm-up continues only from a full checkpoint")
        model, tokenizer = pretrained.model.train(), pretrained.tokenizer
        model_config = model.config
    else:
        tokenizer_dir = out / "tokenizer"
        if not (tokenizer_dir / "tokenizer.json").is_file():
            train_tokenizer(tokenizer_dir, vocab_size=config.tokenizer_vocab_size)
        tokenizer = load_tokenizer(tokenizer_dir)
        model_config = config.model_config or get_preset(config.preset)
        torch.manual_seed(config.seed)  # the same initial weights as a from-scratch run of this seed
        model = MPGSAM2(model_config).train()
    params = [p for n, p in model.named_parameters() if n.startswith(TRAINED_PREFIXES)]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)

    sizes = (model_config.sam2.image_size, model_config.beit3.image_size)
    train_set = ClipDataset(load_entries(config.dataset, config.data), tokenizer, *sizes, config.frames, seed=config.seed)
    val_entries = load_entries(config.dataset, config.data, "valid")[: config.val_expressions]
    val_set = ClipDataset(val_entries, tokenizer, *sizes, config.frames, augment=AugmentConfig.none(), seed=config.seed)
    val_clips = [val_set[(i, i)] for i in range(len(val_entries))]
    groups: dict[str, list[int]] = {}
    for index, entry in enumerate(train_set.entries):
        groups.setdefault(entry.key.split("/")[0] if config.by_video else entry.key, []).append(index)
    units = list(groups.values())  # what one draw covers: a video's expressions, or one expression

    log_path = out / "log.jsonl"
    log_path.write_text("", encoding="utf-8")
    unit_order = np.random.default_rng(config.seed).permutation(len(units))
    draw = 0
    start = time.perf_counter()
    for step in range(1, config.steps + 1):
        clips = []
        for _ in range(config.batch_size):
            epoch, position = divmod(draw, len(units))
            if position == 0 and epoch > 0:
                unit_order = np.random.default_rng([config.seed, epoch]).permutation(len(units))
            # One draw id per unit: the same frames, flip and jitter for all its expressions.
            clips.extend(train_set[(index, draw)] for index in units[unit_order[position]])
            draw += 1
        logits = _prior_logits(model, clips)
        loss = torch.stack([mask_prior_loss(x, c.targets) for x, c in zip(logits, clips)]).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        optimizer.step()
        record = {"step": step, "loss": loss.item(), "seconds": time.perf_counter() - start}
        if config.val_every and (step % config.val_every == 0 or step == config.steps):
            record["val_prior_iou"] = prior_iou(model, val_clips)
            record["val_caption_effect"] = caption_effect(model, val_clips)
            log(f"step {step}: prior loss {loss.item():.4f}, validation prior IoU {record['val_prior_iou']:.3f}, "
                f"caption effect {record['val_caption_effect']:.4f} ({record['seconds']:.0f} s)")
        with open(log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
    final = save_pretrained(model.eval(), out / "final", tokenizer, overwrite=True)
    args = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items() if k != "model_config"}
    (final / "prior_warmup_args.json").write_text(json.dumps(args, indent=1) + "\n", encoding="utf-8")
    return final


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mpg_sam2.training.prior_warmup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--dataset", default="synthetic", choices=["synthetic", "ref-youtube-vos", "mevis"])
    parser.add_argument("--out", type=Path, required=True)
    defaults = PriorWarmupConfig(data=Path(), out=Path())
    for name in ("preset", "steps", "batch_size", "frames", "lr", "weight_decay", "grad_clip", "seed", "threads",
                 "val_every", "val_expressions"):
        default = getattr(defaults, name)
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default) if default is not None else int, default=default)
    parser.add_argument("--init-from", type=Path, default=None,
                        help="checkpoint folder to continue from (e.g. an earlier warm-up's final/)")
    parser.add_argument("--no-by-video", dest="by_video", action="store_false",
                        help="batches of independent expressions instead of whole videos")
    args = parser.parse_args(argv)
    final = warm_up_prior(PriorWarmupConfig(**vars(args)))
    print(f"checkpoint: {final}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
