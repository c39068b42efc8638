"""``python -m mpg_sam2 train``: the subcommand's flags and its runner.

This module imports only ``argparse`` at import time (the main CLI registers the subcommand
without loading torch or the training code).

Examples::

    # the nano model from scratch on the synthetic benchmark, on a CPU (the paper's learning
    # rates assume pretrained SAM 2 / BEiT-3 weights; from scratch, pass larger ones)
    python -m mpg_sam2.data.synthetic --out data/synthetic --seed 0
    python -m mpg_sam2 train --data data/synthetic --dataset synthetic --preset nano --out runs/nano \\
        --steps 3000 --frames 4 --lr 1e-4 --lr-fusion 1e-4 --val-every 250 --save-every 250 --threads 1

    # the paper's recipe: RefCOCO pre-training, then Ref-YouTube-VOS fine-tuning (8 GPUs; 8 clips
    # per optimizer step in total, 1 per process: adjust --batch-size / --accumulate to your cards)
    torchrun --nproc_per_node=8 -m mpg_sam2 train --dataset refcoco --data data/coco --preset release-large \\
        --stage pretrain --batch-size 1 --frames 1 --tokenizer beit3_tokenizer/ \\
        --init-sam2 sam2_hiera_large.pt --init-beit3 beit3_large_patch16_224.pth --out runs/pretrain
    torchrun --nproc_per_node=8 -m mpg_sam2 train --dataset ref-youtube-vos --data data/ref-youtube-vos \\
        --stage finetune --frames 5 --init-from runs/pretrain/step-XXXXXX --out runs/ytvos
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

__all__ = ["add_train_parser", "conv_stem_widths", "run_train"]


def conv_stem_widths(text: str) -> tuple[int, ...]:
    """``--conv-stem`` on a command line: comma-separated channel counts, e.g. ``24,48,96``."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes comma-separated channel counts such as 24,48,96, got {text!r}") from None


def add_train_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("train", help="train or fine-tune a model (synthetic, Ref-YouTube-VOS, MeViS, RefCOCO)")
    data = p.add_argument_group("data")
    data.add_argument("--data", type=Path, required=True, help="dataset root (for refcoco: the coco folder)")
    data.add_argument("--dataset", required=True, choices=["synthetic", "ref-youtube-vos", "mevis", "refcoco"])
    data.add_argument("--frames", type=int, default=5, help="frames per clip (paper: 5 Ref-YouTube-VOS, 8 MeViS, 1 RefCOCO)")
    data.add_argument("--frame-sampling", default="window", choices=["window", "span"],
                      help="how a clip's frames are drawn: window (one random stride and start, the authors' kind; "
                           "default) or span (the video's first and last frame always, the others at random between)")
    data.add_argument("--by-video", action="store_true",
                      help="batches of whole videos: every caption of a video on the same frames, SAM 2's image "
                           "features shared among them (--batch-size counts videos; not the authors' recipe)")
    data.add_argument("--no-augment", action="store_true", help="no flip / jitter / crop")
    data.add_argument("--num-workers", type=int, default=0, help="data loader processes (default 0)")

    model = p.add_argument_group("model")
    model.add_argument("--preset", default="nano", help="model preset for a new model (default nano)")
    model.add_argument("--tokenizer", type=Path, help="tokenizer folder (default: trained on the synthetic vocabulary)")
    model.add_argument("--init-sam2", type=Path, help="official SAM 2 checkpoint (.pt) to start from")
    model.add_argument("--init-beit3", type=Path, help="official BEiT-3 checkpoint (.pth) to start from")
    model.add_argument("--init-from", type=Path, help="a checkpoint folder (ours or the authors') whose weights and config to start from (replaces --preset)")
    model.add_argument("--embedding-init", default="default", choices=["default", "small"],
                       help="small: a model from random weights starts with BEiT-3's text and position embeddings "
                            "drawn from N(0, 0.02) instead of N(0, 1) (default: default)")
    model.add_argument("--no-mask-prior", action="store_true", help="ablation: no dense prompt (SAM 2's no-mask embedding)")
    model.add_argument("--no-aggregator", action="store_true", help="ablation: skip the global-historical aggregator")
    model.add_argument("--motion-features", action="store_true", default=None,
                       help="a new model's mask prior generator reads patch motion from frame-to-frame correspondence "
                            "(MaskPriorConfig.motion_features; not in the paper; off for every preset; a checkpoint "
                            "cannot change it)")
    model.add_argument("--conv-stem", type=conv_stem_widths, default=None, metavar="C1,C2,...",
                       help="a new model's BEiT-3 gets a convolutional stem beside its patch projection, with these "
                            "widths (BEiT3Config.conv_stem; not in BEiT-3; off for every preset; a checkpoint cannot "
                            "change it)")

    optim = p.add_argument_group("optimisation")
    optim.add_argument("--steps", type=int, default=1000, help="optimizer steps to reach (default 1000)")
    optim.add_argument("--batch-size", type=int, default=1, help="clips per process per micro-batch")
    optim.add_argument("--accumulate", type=int, default=1, help="micro-batches per optimizer step")
    optim.add_argument("--stage", default="finetune", choices=["pretrain", "finetune"],
                       help="sets the default base lr: pretrain 1e-5, finetune 2e-6")
    optim.add_argument("--lr", type=float, help="base learning rate (default: the stage's)")
    optim.add_argument("--lr-fusion", type=float, default=5e-5,
                       help="learning rate of the mask prior generator and the aggregator (default 5e-5)")
    optim.add_argument("--authors-lr-groups", action="store_true",
                       help="the authors' code's fast group (leaves visual_ifi, meo_linear, patch_linear at the base rate)")
    optim.add_argument("--train-image-encoder", action="store_true",
                       help="also train the SAM 2 image encoder (not the paper's recipe: for models trained from scratch)")
    optim.add_argument("--lr-schedule", default="constant", choices=["constant", "cosine"],
                       help="constant (the authors) or cosine: every rate decays to 0 at the last step (default constant)")
    optim.add_argument("--warmup-steps", type=int, default=0, help="linear ramp of every rate over the first N steps (default 0)")
    optim.add_argument("--weight-decay", type=float, default=5e-4)
    optim.add_argument("--grad-clip", type=float, default=0.1)
    optim.add_argument("--object-score-loss", type=float,
                       help="weight of a BCE on SAM 2's object score (default: 0 with --init-sam2/--init-from/--resume, else 1)")
    optim.add_argument("--prior-loss", type=float,
                       help="weight of focal + dice on the mask prior itself (default: as --object-score-loss; "
                            "a resumed run keeps its own)")
    optim.add_argument("--click-probability", type=float, default=0.0,
                       help="share of clips corrected with simulated clicks on one frame (default 0: the authors' recipe)")
    optim.add_argument("--clicks-per-frame", type=int, default=1,
                       help="simulated clicks on a corrected frame, each from the error the previous ones left (default 1)")
    optim.add_argument("--mask-choice-loss", type=float,
                       help="weight of an L1 loss on SAM 2's IoU head, the mask losses reading each frame's lowest-loss "
                            "output (SAM 2's training; default: a resumed run's own, else 0 as the authors)")
    optim.add_argument("--click-radius", type=float,
                       help="clicks also paint disks of this radius (mask-prior cells) into their frame's prior "
                            "(MaskPriorConfig.click_radius; default: the starting model's, 0 for every preset)")
    optim.add_argument("--train-scope", choices=["all", "decoder", "sam2"],
                       help="decoder: only SAM 2's prompt encoder and mask decoder train (not the aggregator); "
                            "sam2: everything but BEiT-3 and the mask prior generator (keeps a warmed-up "
                            "grounding path); default: a resumed run's own, else all")
    optim.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"], help="auto: bf16 on CUDA")
    optim.add_argument("--seed", type=int, default=0)
    optim.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (torchrun: cuda:LOCAL_RANK)")
    optim.add_argument("--threads", type=int, help="torch CPU threads (on a busy CPU 1 can be much faster)")

    run = p.add_argument_group("run")
    run.add_argument("--out", type=Path, required=True, help="output folder for step-* checkpoints and log.jsonl")
    run.add_argument("--resume", type=Path, help="a step-* checkpoint, or an output folder (its newest checkpoint)")
    run.add_argument("--val-every", type=int, default=0, help="validation J&F every N steps (0: never)")
    run.add_argument("--val-expressions", type=int, default=16, help="expressions per validation (default 16)")
    run.add_argument("--val-split", help="validation split (default: synthetic valid, MeViS valid_u)")
    run.add_argument("--save-every", type=int, default=0, help="checkpoint every N steps (0: at the end only)")
    run.add_argument("--keep-last", type=int, default=3, help="checkpoints to keep (default 3)")
    run.add_argument("--log-every", type=int, default=1, help="print every N steps (the JSONL log has every step)")
    p.set_defaults(func=run_train)
    return p


def run_train(args: argparse.Namespace) -> int:
    from mpg_sam2.training.train_config import TrainConfig
    from mpg_sam2.training.trainer import train

    config = TrainConfig(
        data=args.data, out=args.out, dataset=args.dataset, preset=args.preset, steps=args.steps,
        batch_size=args.batch_size, frames=args.frames, accumulate=args.accumulate, stage=args.stage, lr=args.lr,
        lr_fusion=args.lr_fusion, lr_schedule=args.lr_schedule,
        warmup_steps=args.warmup_steps, weight_decay=args.weight_decay, grad_clip=args.grad_clip,
        authors_lr_groups=args.authors_lr_groups,
        train_image_encoder=args.train_image_encoder, object_score_loss=args.object_score_loss,
        prior_loss=args.prior_loss, click_probability=args.click_probability, clicks_per_frame=args.clicks_per_frame,
        mask_choice_loss=args.mask_choice_loss, train_scope=args.train_scope, click_radius=args.click_radius,
        motion_features=args.motion_features, conv_stem=args.conv_stem, augment=not args.no_augment, frame_sampling=args.frame_sampling, by_video=args.by_video, resume=args.resume, init_from=args.init_from, embedding_init=args.embedding_init,
        init_sam2=args.init_sam2, init_beit3=args.init_beit3, tokenizer=args.tokenizer, no_mask_prior=args.no_mask_prior,
        no_aggregator=args.no_aggregator, val_every=args.val_every, val_expressions=args.val_expressions,
        val_split=args.val_split, save_every=args.save_every, keep_last=args.keep_last, log_every=args.log_every,
        seed=args.seed, device=args.device, precision=args.precision, num_workers=args.num_workers,
        threads=args.threads,
    )
    result = train(config)
    if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 reports
        return 0
    print(f"done: {result.step} steps, {result.seconds_per_step:.2f}s per training step")
    if result.last_losses:
        print("  last step: " + ", ".join(f"{k} {v:.4f}" for k, v in result.last_losses.items()))
    for entry in result.validation[-3:]:
        print(f"  validation at step {entry['step']}: J&F {entry['J&F']:.3f} (J {entry['J']:.3f}, F {entry['F']:.3f})")
    for note in result.notes:
        print(f"  note: {note}")
    print(f"  checkpoint: {result.checkpoint}")
    print(f"  log: {config.out / 'log.jsonl'}")
    return 0
