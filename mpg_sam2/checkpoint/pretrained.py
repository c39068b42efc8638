"""Load and save MPG-SAM 2 checkpoints: ours, the authors' releases, and training dumps.

:func:`load_pretrained` is the one way in. Accepted sources:

* the name of a released checkpoint (``ref-youtube-vos``, ``mevis``, ``tiny``;
  :mod:`mpg_sam2.checkpoint.registry`), found in the authors' Hub repository;
* a directory written by :func:`save_pretrained` (``config.json`` with ``model_type:
  "mpg_sam2"``, ``model.safetensors`` or shards, tokenizer files);
* an authors' Hugging Face-style directory (``config.json`` with ``model_type: "evf"``,
  ``model.safetensors`` / ``pytorch_model.bin``, possibly sharded, tokenizer files);
* a single weights file, e.g. a training checkpoint with ``module.`` / ``evf_model.``
  prefixes (then ``preset`` says which architecture it is);
* a Hugging Face Hub repo id with ``revision`` / ``subfolder`` (downloaded into the Hub
  cache; ``HF_HUB_OFFLINE=1`` or ``local_files_only=True`` uses the cache only). Nothing
  touches the network at import.

Weights are read with safetensors, or ``torch.load(weights_only=True)``; no remote code runs.
The authors' names go through the one rename table in :mod:`mpg_sam2.checkpoint.key_mapping`,
then strict loading reports every missing or unexpected key.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from mpg_sam2.checkpoint.files import CONFIG_FILE, TOKENIZER_FILES, has_tokenizer, read_config_json
from mpg_sam2.checkpoint.hub import download_file, is_repo_id, resolve_checkpoint
from mpg_sam2.checkpoint.key_mapping import convert_authors_state_dict, is_authors_state_dict
from mpg_sam2.checkpoint.read_weights import read_state_dict
from mpg_sam2.checkpoint.registry import REGISTRY, locate_release
from mpg_sam2.checkpoint.strict_loading import empty_weights, load_strict
from mpg_sam2.checkpoint.tokenizer_files import load_tokenizer, save_tokenizer
from mpg_sam2.checkpoint.write_weights import write_checkpoint_dir
from mpg_sam2.config import MPGSAM2Config, get_preset
from mpg_sam2.model.mpg_sam2 import MPGSAM2
from mpg_sam2.model.precision import check_precision_name, hold_in_precision, model_precision
from mpg_sam2.tokenizer import ReferringTokenizer

__all__ = ["Pretrained", "config_from_checkpoint", "load_pretrained", "save_pretrained"]

# The authors' EvfConfig names the BEiT-3 size; the SAM 2 variant is implied by it.
_AUTHORS_SCALE_TO_PRESET = {"large": "release-large", "base": "release-tiny"}


@dataclass
class Pretrained:
    model: MPGSAM2
    tokenizer: ReferringTokenizer | None  # None when the checkpoint carries no tokenizer files
    path: Path  # the local checkpoint (after any download)

    def text_tokenizer(self) -> ReferringTokenizer:
        """The tokenizer, for everything that reads sentences; RuntimeError when the checkpoint
        has none (the one place that says so, for the CLI, evaluation and the app alike)."""
        if self.tokenizer is None:
            raise RuntimeError(
                f"checkpoint {self.path} has no tokenizer files ({' or '.join(TOKENIZER_FILES)}), so it cannot "
                "read text; load the checkpoint folder that was saved with its tokenizer"
            )
        return self.tokenizer


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
    local_files_only: bool = False,
    precision: str = "fp32",
) -> Pretrained:
    """Build the model a checkpoint describes and load its weights strictly (eval mode).

    Args:
        name_or_path: a local checkpoint folder or weights file, a released checkpoint's name
            (:data:`mpg_sam2.checkpoint.registry.REGISTRY`), or a Hub repo id ``owner/name``;
            a local path wins over a name.
        revision: branch, tag or commit of the Hub repo.
        subfolder: folder inside the repo (or local folder) holding the checkpoint; a released
            checkpoint's folder is found by its name instead.
        preset: the architecture (:data:`mpg_sam2.config.PRESETS`) when the checkpoint has no
            ``config.json``; it overrides one that has.
        device: where the model goes.
        cache_dir: Hub cache folder (default: huggingface_hub's).
        load_tokenizer_files: also load the tokenizer stored with the checkpoint.
        local_files_only: use only what is on this machine (the Hub cache), never the network.
        precision: ``"fp32"`` (the reference) or ``"bf16"``: the grounding path held in
            bfloat16, as the authors' bf16 inference (:mod:`mpg_sam2.model.precision`).

    Raises:
        ValueError: ``name_or_path`` is none of the above, or the config does not fit.
        RuntimeError: a released checkpoint has no tokenizer files, a download failed, or the
            weights do not match the model (every mismatching key is named).
    """
    check_precision_name(precision)  # before any download
    name = str(name_or_path)
    loaded = None
    if isinstance(name_or_path, str) and not Path(name).expanduser().exists():
        if name in REGISTRY:
            if subfolder is not None:
                raise ValueError(f"{name!r} is a released checkpoint, found by its name; pass no subfolder")
            loaded = _load_release(name, revision, preset, device, cache_dir, load_tokenizer_files, local_files_only)
        elif name.strip() and not is_repo_id(name):
            raise ValueError(
                f"{name!r} is neither a local checkpoint, a Hub repo id 'owner/name' nor a known model; "
                f"known: {sorted(REGISTRY)}"
            )
    if loaded is None:
        path = resolve_checkpoint(
            name_or_path, revision=revision, subfolder=subfolder, cache_dir=cache_dir, local_files_only=local_files_only
        )
        loaded = _load_local(path, preset, device, load_tokenizer_files)
    hold_in_precision(loaded.model, precision)
    return loaded


def _load_local(path: Path, preset: str | None, device: str | torch.device, load_tokenizer_files: bool) -> Pretrained:
    state_dict = read_state_dict(path)
    if is_authors_state_dict(state_dict):
        state_dict = convert_authors_state_dict(state_dict)
    config_json = read_config_json(path) if path.is_dir() and (path / CONFIG_FILE).exists() else None
    config = config_from_checkpoint(config_json, state_dict, preset)
    with empty_weights():
        model = MPGSAM2(config)
    load_strict(model, state_dict)
    model = model.to(device).eval()
    tokenizer = None
    if load_tokenizer_files and has_tokenizer(path):
        tokenizer = load_tokenizer(path, max_tokens=config.beit3.max_text_tokens)
    return Pretrained(model=model, tokenizer=tokenizer, path=path)


def _load_release(
    name: str,
    revision: str | None,
    preset: str | None,
    device: str | torch.device,
    cache_dir: str | Path | None,
    load_tokenizer_files: bool,
    local_files_only: bool,
) -> Pretrained:
    """A released checkpoint: a folder (with config.json) or a bare weights file in the repo, and
    its tokenizer from the closest folder that has one."""
    entry = REGISTRY[name]
    revision = revision or entry.revision
    found = locate_release(entry, revision, cache_dir, local_files_only=local_files_only)
    if found.is_file:
        local = download_file(entry.repo_id, found.path, revision, cache_dir, local_files_only=local_files_only)
        pretrained = _load_local(local, preset or entry.preset, device, load_tokenizer_files)
    else:
        subfolder = None if found.path in ("", ".") else found.path
        path = resolve_checkpoint(entry.repo_id, revision, subfolder, cache_dir, local_files_only=local_files_only)
        pretrained = _load_local(path, preset, device, load_tokenizer_files)
    if load_tokenizer_files and pretrained.tokenizer is None:
        if found.tokenizer_folder is None:
            raise RuntimeError(f"{entry.repo_id} holds no tokenizer files ({' / '.join(TOKENIZER_FILES)})")
        folder = None if found.tokenizer_folder in ("", ".") else found.tokenizer_folder
        tokenizer_path = resolve_checkpoint(entry.repo_id, revision, folder, cache_dir, local_files_only=local_files_only)
        pretrained.tokenizer = load_tokenizer(tokenizer_path, max_tokens=pretrained.model.config.beit3.max_text_tokens)
    return pretrained


def save_pretrained(
    model: MPGSAM2,
    directory: str | Path,
    tokenizer: ReferringTokenizer | None = None,
    max_shard_bytes: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``config.json`` + safetensors weights (+ tokenizer files) in our names.

    The weights directory is written atomically; the tokenizer files go in afterwards. A model
    held in bf16 (:mod:`mpg_sam2.model.precision`) is refused: its rounded weights would load
    back as a float32 model.
    """
    if model_precision(model) != "fp32":
        raise ValueError("this model holds its grounding weights in bf16; save the float32 model (load it without precision='bf16')")
    directory = write_checkpoint_dir(
        directory, model.state_dict(), model.config.to_dict(), max_shard_bytes=max_shard_bytes, overwrite=overwrite
    )
    if tokenizer is not None:
        save_tokenizer(tokenizer, directory)
    return directory
