"""Load and save MPG-SAM 2 checkpoints: ours, the authors' releases, and training dumps.

Accepted sources (``load_pretrained``):

* a directory written by :func:`save_pretrained` (``config.json`` with ``model_type:
  "mpg_sam2"``, ``model.safetensors`` or shards, tokenizer files);
* an authors' Hugging Face-style directory (``config.json`` with ``model_type: "evf"``,
  ``model.safetensors`` / ``pytorch_model.bin``, possibly sharded, tokenizer files);
* a single weights file, e.g. a training checkpoint with ``module.`` / ``evf_model.``
  prefixes (then ``preset`` says which architecture it is);
* a Hugging Face Hub repo id with ``revision`` / ``subfolder`` (downloaded into the Hub
  cache; ``HF_HUB_OFFLINE=1`` uses the cache only). Nothing touches the network at import.

Weights are read with safetensors, or ``torch.load(weights_only=True)``; no remote code runs.
The authors' names go through the one rename table in :mod:`mpg_sam2.key_mapping`, then
strict loading reports every missing or unexpected key.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from mpg_sam2.checkpoint_io import read_config_json, read_state_dict, resolve_checkpoint, write_checkpoint_dir
from mpg_sam2.config import MPGSAM2Config, get_preset
from mpg_sam2.key_mapping import convert_authors_state_dict, is_authors_state_dict, load_strict
from mpg_sam2.model.empty_weights import empty_weights
from mpg_sam2.model.mpg_sam2 import MPGSAM2
from mpg_sam2.tokenizer import ReferringTokenizer, load_tokenizer, save_tokenizer

# The authors' EvfConfig names the BEiT-3 size; the SAM 2 variant is implied by it.
_AUTHORS_SCALE_TO_PRESET = {"large": "release-large", "base": "release-tiny"}
_TOKENIZER_FILES = ("sentencepiece.bpe.model", "tokenizer.json", "tokenizer_config.json")


@dataclass
class Pretrained:
    model: MPGSAM2
    tokenizer: ReferringTokenizer | None  # None when the checkpoint carries no tokenizer files
    path: Path  # the local checkpoint (after any download)


def config_from_checkpoint(
    config_json: Mapping[str, Any] | None, state_dict: Mapping[str, torch.Tensor], preset: str | None
) -> MPGSAM2Config:
    """Our config for a checkpoint: from its config.json, or from ``preset``."""
    if preset is not None:
        config = get_preset(preset)
    elif config_json is None:
        raise ValueError("the checkpoint has no config.json; pass preset=... (e.g. 'release-large') to say what it is")
    elif config_json.get("model_type") == "mpg_sam2":
        return MPGSAM2Config.from_dict(config_json)
    elif config_json.get("model_type") == "evf":
        scale = config_json.get("mm_extractor_scale", "large")
        if scale not in _AUTHORS_SCALE_TO_PRESET:
            raise ValueError(f"authors' config has mm_extractor_scale={scale!r}; expected one of {sorted(_AUTHORS_SCALE_TO_PRESET)}")
        config = get_preset(_AUTHORS_SCALE_TO_PRESET[scale])
        hidden = config_json.get("hidden_size", config.beit3.embed_dim)
        if hidden != config.beit3.embed_dim:
            raise ValueError(f"authors' config has hidden_size={hidden} but BEiT-3 {scale} is {config.beit3.embed_dim} wide")
    else:
        raise ValueError(
            f"config.json has model_type={config_json.get('model_type')!r}; expected 'mpg_sam2' or the authors' 'evf'"
        )
    # The vocabulary size is whatever the checkpoint's text embedding holds (the authors' config
    # does not record it).
    embed = state_dict.get("beit3.text_embed.weight")
    if embed is not None and embed.shape[0] != config.beit3.vocab_size:
        config = dataclasses.replace(config, beit3=dataclasses.replace(config.beit3, vocab_size=int(embed.shape[0])))
    return config


def load_pretrained(
    name_or_path: str | Path,
    *,
    revision: str | None = None,
    subfolder: str | None = None,
    preset: str | None = None,
    device: str | torch.device = "cpu",
    cache_dir: str | Path | None = None,
    load_tokenizer_files: bool = True,
) -> Pretrained:
    """Build the model a checkpoint describes and load its weights strictly (eval mode)."""
    path = resolve_checkpoint(name_or_path, revision=revision, subfolder=subfolder, cache_dir=cache_dir)
    state_dict = read_state_dict(path)
    if is_authors_state_dict(state_dict):
        state_dict = convert_authors_state_dict(state_dict)
    config_json = read_config_json(path) if path.is_dir() and (path / "config.json").exists() else None
    config = config_from_checkpoint(config_json, state_dict, preset)
    with empty_weights():
        model = MPGSAM2(config)
    load_strict(model, state_dict)
    model = model.to(device).eval()
    tokenizer = None
    if load_tokenizer_files and path.is_dir() and any((path / f).exists() for f in _TOKENIZER_FILES):
        tokenizer = load_tokenizer(path, max_tokens=config.beit3.max_text_tokens)
    return Pretrained(model=model, tokenizer=tokenizer, path=path)


def save_pretrained(
    model: MPGSAM2,
    directory: str | Path,
    tokenizer: ReferringTokenizer | None = None,
    max_shard_bytes: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``config.json`` + safetensors weights (+ tokenizer files) in our names.

    The weights directory is written atomically; the tokenizer files go in afterwards.
    """
    directory = write_checkpoint_dir(
        directory, model.state_dict(), model.config.to_dict(), max_shard_bytes=max_shard_bytes, overwrite=overwrite
    )
    if tokenizer is not None:
        save_tokenizer(tokenizer, directory)
    return directory
