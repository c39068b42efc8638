"""What a training run starts from: its tokenizer, model configuration and initial weights.

One place decides this for every objective (the full training and the prior warm-up), in this
order of precedence:

* tokenizer: ``--tokenizer``, else the files of the resumed or ``--init-from`` checkpoint, else
  (synthetic data only) a small sentencepiece tokenizer trained into ``OUT/tokenizer``;
* configuration: the resumed checkpoint's, else the ``--init-from`` checkpoint's, else
  ``model_config`` (Python API) or the preset; the ablation switches and ``--click-radius`` are
  applied on top, and ``--motion-features`` to a new model only;
* weights: the resumed checkpoint (loaded later with the optimizer state), else the
  ``--init-from`` checkpoint, else the seed's random initialisation with the official SAM 2 /
  BEiT-3 files (``--init-sam2``, ``--init-beit3``) loaded over it. ``--embedding-init small``
  redraws BEiT-3's embeddings of a random start first (:func:`small_embeddings`).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from mpg_sam2.checkpoint.files import has_tokenizer
from mpg_sam2.config import MPGSAM2Config, get_preset
from mpg_sam2.model.mpg_sam2 import MPGSAM2
from mpg_sam2.checkpoint.tokenizer_files import load_tokenizer
from mpg_sam2.tokenizer import ReferringTokenizer
from mpg_sam2.training.ablations import with_ablations
from mpg_sam2.training.checkpointing import TRAINING_ARGS_FILE, latest_checkpoint
from mpg_sam2.training.distributed import DistributedContext
from mpg_sam2.training.train_config import TrainConfig

__all__ = ["RunStart", "start_run"]


@dataclass
class RunStart:
    """The model (on the CPU, initial weights loaded unless resuming) and what it came from."""

    tokenizer: ReferringTokenizer
    model: MPGSAM2
    resume_dir: Path | None  # the checkpoint to load weights and optimizer state from
    sam2_trained: bool  # SAM 2's weights are trained ones (a resumed run counts as trained)
    previous_args: dict[str, Any] = field(default_factory=dict)  # the resumed run's training_args.json
    notes: list[str] = field(default_factory=list)


def start_run(config: TrainConfig, context: DistributedContext, say: Callable[[str], None]) -> RunStart:
    """Tokenizer, configuration and initial weights of a run (see the module docstring)."""
    notes: list[str] = []
    resume_dir = latest_checkpoint(config.resume) if config.resume is not None else None
    tokenizer = _tokenizer(config, resume_dir, context, notes)
    model_config, init_state = _model_config(config, resume_dir)
    if len(tokenizer) > model_config.beit3.vocab_size:
        raise ValueError(
            f"the tokenizer has {len(tokenizer)} ids but the model's text embedding has "
            f"{model_config.beit3.vocab_size} rows; use a preset with a larger vocab_size or a smaller tokenizer"
        )
    torch.manual_seed(config.seed)
    model = MPGSAM2(model_config)
    sam2_trained = True
    if resume_dir is None:
        sam2_trained = _initialise(model, config, init_state, say)
    previous_args = {}
    if resume_dir is not None and (resume_dir / TRAINING_ARGS_FILE).is_file():
        previous_args = json.loads((resume_dir / TRAINING_ARGS_FILE).read_text(encoding="utf-8"))
    return RunStart(tokenizer, model, resume_dir, sam2_trained, previous_args, notes)


def _tokenizer(config: TrainConfig, resume_dir: Path | None, context: DistributedContext, notes: list[str]) -> ReferringTokenizer:
    if config.tokenizer is not None:
        return load_tokenizer(config.tokenizer)
    for checkpoint in (resume_dir, config.init_from):
        if checkpoint is not None and has_tokenizer(checkpoint):
            return load_tokenizer(checkpoint)
    if config.dataset == "synthetic":
        from mpg_sam2.training.tokenizer_training import train_tokenizer

        folder = config.out / "tokenizer"
        notes.append(f"trained a sentencepiece tokenizer on the synthetic vocabulary: {folder}")
        if context.is_main:
            train_tokenizer(folder, vocab_size=config.tokenizer_vocab_size)
        context.barrier()
        return load_tokenizer(folder)
    raise ValueError(
        f"--dataset {config.dataset} needs a tokenizer: pass --tokenizer DIR (BEiT-3's XLM-R sentencepiece "
        "tokenizer, e.g. a released checkpoint's folder)"
    )


def _model_config(config: TrainConfig, resume_dir: Path | None) -> tuple[MPGSAM2Config, dict[str, torch.Tensor] | None]:
    """The model configuration, and the ``--init-from`` weights when there are some."""
    from mpg_sam2.checkpoint.files import read_config_json
    from mpg_sam2.checkpoint.pretrained import load_pretrained

    init_state = None
    if resume_dir is not None:
        model_config = MPGSAM2Config.from_dict(read_config_json(resume_dir))
    elif config.init_from is not None:
        # Ours or the authors' checkpoint format (renamed through the one table).
        pretrained = load_pretrained(config.init_from, load_tokenizer_files=False)
        model_config, init_state = pretrained.model.config, pretrained.model.state_dict()
    else:
        model_config = config.model_config or get_preset(config.preset)
    # A resumed ablation keeps its switches (they are in its config.json) even without the flags.
    model_config = with_ablations(model_config, config.no_mask_prior, config.no_aggregator)
    if config.click_radius is not None:
        model_config = model_config.with_mask_prior(click_radius=config.click_radius)
    if config.motion_features is not None and config.motion_features != model_config.mask_prior.motion_features:
        if resume_dir is not None or init_state is not None:
            start = resume_dir if resume_dir is not None else config.init_from
            raise ValueError(f"{start} was trained {'without' if config.motion_features else 'with'} the mask prior "
                             "generator's motion features, and its weights fit only that model; drop --motion-features "
                             "or start a new model")
        model_config = dataclasses.replace(
            model_config, mask_prior=dataclasses.replace(model_config.mask_prior, motion_features=config.motion_features))
    if config.conv_stem is not None and config.conv_stem != model_config.beit3.conv_stem:
        if resume_dir is not None or init_state is not None:
            start = resume_dir if resume_dir is not None else config.init_from
            raise ValueError(f"{start} has BEiT-3 conv stem {model_config.beit3.conv_stem or 'none'}, and its weights fit only "
                             f"that model; drop --conv-stem or start a new model")
        model_config = dataclasses.replace(model_config, beit3=dataclasses.replace(model_config.beit3, conv_stem=config.conv_stem))
    return model_config, init_state


def _initialise(model: MPGSAM2, config: TrainConfig, init_state: dict[str, torch.Tensor] | None,
                say: Callable[[str], None]) -> bool:
    """Load initial weights into a new model; True when SAM 2's weights are trained ones."""
    from mpg_sam2.training.init_weights import init_from_beit3, init_from_sam2, left_at_init

    if init_state is not None:
        from mpg_sam2.checkpoint.strict_loading import load_strict

        load_strict(model, init_state)
        say(f"initialised from {config.init_from}")
        return True
    if config.embedding_init == "small":
        small_embeddings(model)
        say("BEiT-3 text and position embeddings and class token drawn from N(0, 0.02)")
    reports = []
    if config.init_sam2 is not None:
        reports.append(init_from_sam2(model, config.init_sam2))
    if config.init_beit3 is not None:
        reports.append(init_from_beit3(model, config.init_beit3))
    for report in reports:
        say(f"initialised {report.summary()}")
    if reports:
        left = left_at_init(model, reports)
        modules = sorted({".".join(name.split(".")[:2]) for name in left})
        say(f"left at initialisation: {len(left)} tensors in {', '.join(modules)}")
    return config.init_sam2 is not None


EMBEDDING_STD = 0.02


def small_embeddings(model: MPGSAM2) -> None:
    """Redraw BEiT-3's text and position embeddings and its class token from N(0, 0.02), as BERT
    and ViT start; ``--embedding-init small``.

    By default they start as PyTorch's ``nn.Embedding`` does, N(0, 1): in a model trained from
    random weights the position of a patch then outweighs its pixels (std 1 against 0.34 for
    ``nano``'s patch projection of a synthetic frame at initialisation) and a word's position its identity, until Adam has moved every entry by
    about 1. Measured on the recipe's prior warm-up (one seed, validation split,
    ``bench/results/offline_warmup_experiments.md``): after 1,900 cosine steps the prior's IoU is
    0.411 against 0.373 and its J&F 0.257 against 0.241, with the same hit rate (0.440 against
    0.447).
    """
    beit3 = model.beit3
    with torch.no_grad():
        for weight in (beit3.text_embed.weight, beit3.vision_positions.weight, beit3.text_positions.weight,
                       beit3.vision_embed.cls_token):
            torch.nn.init.normal_(weight, std=EMBEDDING_STD)
