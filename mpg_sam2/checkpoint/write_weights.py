"""Write a checkpoint folder: ``config.json`` and safetensors weights, atomically.

Used by :func:`mpg_sam2.checkpoint.pretrained.save_pretrained`. Weights go out as safetensors
only, sharded in the Hugging Face index format when asked; files it does not own (tokenizer,
README, evaluation) in a folder it rewrites are carried over.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from mpg_sam2.atomic import atomic_dir
from mpg_sam2.checkpoint.files import CONFIG_FILE, SAFETENSORS_FILE, SAFETENSORS_INDEX_FILE

__all__ = ["write_checkpoint_dir"]

# Files write_checkpoint_dir owns; anything else in an existing directory (tokenizer files, a
# README) is carried over when it is rewritten.
_OWNED_FILE = re.compile(
    r"^(config\.json|model(-\d+-of-\d+)?\.safetensors|pytorch_model(-\d+-of-\d+)?\.bin|.*\.index\.json)$"
)


def _prepare_tensors(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU tensors that share no storage (safetensors refuses shared or
    non-contiguous tensors; tied weights are written twice, as transformers does with safetensors)."""
    seen_storages: set[int] = set()
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        if not isinstance(key, str):
            raise ValueError(f"state dict keys must be str, got {key!r}")
        if not isinstance(tensor, torch.Tensor):
            raise ValueError(f"state dict entry {key!r} is a {type(tensor).__name__}, not a tensor")
        t = tensor.detach().to("cpu").contiguous()
        storage = t.untyped_storage().data_ptr()
        if t.numel() > 0 and (storage in seen_storages or t.untyped_storage().nbytes() != t.nbytes):
            t = t.clone()  # own storage of exactly its size
            storage = t.untyped_storage().data_ptr()
        if t.numel() > 0:
            seen_storages.add(storage)
        out[key] = t
    return out


def _shard(tensors: dict[str, torch.Tensor], max_shard_bytes: int | None) -> list[dict[str, torch.Tensor]]:
    """Greedy split in state-dict order; a tensor larger than the limit gets a shard of its own."""
    if max_shard_bytes is None:
        return [tensors]
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key, tensor in tensors.items():
        if shards[-1] and size + tensor.nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][key] = tensor
        size += tensor.nbytes
    return shards


def write_checkpoint_dir(
    directory: str | Path,
    state_dict: Mapping[str, torch.Tensor],
    config: Mapping[str, Any],
    max_shard_bytes: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``config.json`` and the weights as safetensors, atomically.

    Everything is written into a temporary sibling directory that is renamed to ``directory``
    only when complete, so a failure (full disk, interrupt) never leaves a half-written
    checkpoint. With ``overwrite=True`` an existing checkpoint is replaced; its other files
    (tokenizer, README) are kept.

    Args:
        directory: target checkpoint directory.
        state_dict: ``{name: tensor}``; tensors are made contiguous, moved to CPU, and tensors
            sharing storage are cloned (safetensors refuses shared storage).
        config: JSON-serialisable model config, written as ``config.json``.
        max_shard_bytes: if given and the weights are larger, split them into
            ``model-0000k-of-0000n.safetensors`` plus ``model.safetensors.index.json``
            (Hugging Face index format).
        overwrite: replace an existing non-empty directory.

    Returns:
        ``directory`` as a Path.

    Raises:
        ValueError: bad arguments, a non-serialisable config, or an existing directory without
            ``overwrite``.
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    if max_shard_bytes is not None and max_shard_bytes <= 0:
        raise ValueError(f"max_shard_bytes must be positive, got {max_shard_bytes}")
    if not isinstance(config, Mapping):
        raise ValueError(f"config must be a dict, got {type(config).__name__}")
    try:
        config_text = json.dumps(dict(config), indent=2, sort_keys=True) + "\n"
    except (TypeError, ValueError) as error:
        raise ValueError(f"config is not JSON-serialisable: {error}") from error
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"{directory} exists and is not a directory; choose another path")
    existing = sorted(directory.iterdir()) if directory.is_dir() else []
    if existing and not overwrite:
        raise ValueError(f"{directory} already exists and is not empty; pass overwrite=True to replace the checkpoint")
    tensors = _prepare_tensors(state_dict)
    if not tensors:
        raise ValueError("state_dict is empty; nothing to write")

    with atomic_dir(directory) as staging:
        shards = _shard(tensors, max_shard_bytes)
        metadata = {"format": "pt"}  # what transformers writes; some readers check it
        if len(shards) == 1:
            save_file(shards[0], str(staging / SAFETENSORS_FILE), metadata=metadata)
        else:
            weight_map: dict[str, str] = {}
            for i, shard in enumerate(shards, start=1):
                name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
                save_file(shard, str(staging / name), metadata=metadata)
                weight_map.update({key: name for key in shard})
            index = {"metadata": {"total_size": sum(t.nbytes for t in tensors.values())}, "weight_map": weight_map}
            (staging / SAFETENSORS_INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
        (staging / CONFIG_FILE).write_text(config_text, encoding="utf-8")
        for old in existing:  # keep tokenizer files etc.; our own files were just rewritten
            if not _OWNED_FILE.match(old.name):
                if old.is_dir():
                    shutil.copytree(old, staging / old.name)
                else:
                    shutil.copy2(old, staging / old.name)
    return directory
