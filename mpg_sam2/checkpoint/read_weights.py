"""Read the weights of a checkpoint file or folder into ``{name: tensor}``.

Nothing here knows the model classes. Renaming the authors' keys to ours
(:mod:`mpg_sam2.checkpoint.key_mapping`) and strict loading
(:mod:`mpg_sam2.checkpoint.strict_loading`) happen elsewhere; this module only turns files into
``{name: tensor}``.

Supported inputs (:func:`read_state_dict`):

* a file: ``*.safetensors``, or ``*.bin`` / ``*.pt`` / ``*.pth`` read with
  ``torch.load(weights_only=True)`` (tensors and plain containers only; arbitrary pickled code is
  never run), or a ``*.index.json`` of a sharded checkpoint;
* a Hugging Face style directory holding ``model.safetensors``, ``pytorch_model.bin`` or a sharded
  checkpoint with ``model.safetensors.index.json`` / ``pytorch_model.bin.index.json``;
  safetensors wins when both kinds are present;
* training checkpoints: a top-level ``{"module" | "model" | "state_dict" | "model_state_dict": sd}``
  is unwrapped and the DeepSpeed / training-wrapper prefixes ``module.`` and ``evf_model.`` are
  removed (the authors' merge script strips ``module.evf_model.``).
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from mpg_sam2.checkpoint.files import weights_file_in

__all__ = ["TRAINING_PREFIXES", "read_state_dict"]

_TORCH_SUFFIXES = (".bin", ".pt", ".pth")
# Keys under which training loops store the weights (DeepSpeed: "module"; plain loops: "model",
# "state_dict", "model_state_dict"), tried in this order.
_WRAPPER_KEYS = ("module", "model", "state_dict", "model_state_dict")
# DeepSpeed wraps the model as `module`, and the authors' training model holds the network as
# `evf_model`; both are stripped wherever they lead a key (so `module.evf_model.x` becomes `x`).
TRAINING_PREFIXES = ("module.", "evf_model.")


def read_state_dict(path: str | Path, strip_prefixes: Sequence[str] = TRAINING_PREFIXES) -> dict[str, torch.Tensor]:
    """Read all tensors of a checkpoint file or directory onto the CPU.

    Args:
        path: a weights file (``.safetensors``, ``.bin``, ``.pt``, ``.pth``, ``*.index.json``) or a
            directory holding ``model.safetensors``, ``pytorch_model.bin`` or a sharded checkpoint.
        strip_prefixes: leading key prefixes removed, in order, from every key that has them
            (default ``("module.", "evf_model.")``); pass ``()`` to keep keys unchanged.

    Returns:
        ``{name: tensor}`` with tensors in the stored dtype.

    Raises:
        FileNotFoundError: the path, a weights file in a directory, or a shard is missing.
        ValueError: unknown file type or malformed index.
        RuntimeError: the file cannot be read, holds non-tensor pickled objects, holds no tensors,
            or stripping prefixes makes two keys collide.
    """
    path = Path(path)
    if path.is_dir():
        path = weights_file_in(path)
    elif not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")

    if path.name.endswith(".index.json"):
        state_dict = _read_sharded(path)
    else:
        state_dict = _read_weights_file(path)
    return _strip_prefixes(state_dict, strip_prefixes, source=path)


def _read_weights_file(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as error:
            raise RuntimeError(f"cannot read safetensors file {path}: {error}; is it complete?") from error
    if path.suffix in _TORCH_SUFFIXES:
        return _read_torch_file(path)
    raise ValueError(
        f"unknown checkpoint file type {path.name!r}: expected .safetensors, .bin, .pt, .pth or *.index.json"
    )


def _read_torch_file(path: Path) -> dict[str, torch.Tensor]:
    try:
        # weights_only: a checkpoint is data; unpickling arbitrary objects could run any code.
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise RuntimeError(
            f"{path} holds pickled objects other than tensors and plain containers, and is not loaded "
            "(weights_only=True never runs code from a checkpoint). If you trust the file, re-save its "
            "state dict with safetensors or torch.save(model.state_dict()) and load that."
        ) from error
    except Exception as error:  # torch raises RuntimeError/EOFError/... for damaged files
        raise RuntimeError(f"cannot read {path} with torch.load: {type(error).__name__}: {error}") from error
    return _unwrap_training_checkpoint(obj, path)


def _unwrap_training_checkpoint(obj: Any, source: Path) -> dict[str, torch.Tensor]:
    """``{"module": sd, "optimizer": ..., ...}`` -> ``sd``; non-tensor entries are dropped."""
    for _ in range(len(_WRAPPER_KEYS)):  # wrappers can nest, e.g. {"state_dict": {"model": sd}}
        if not isinstance(obj, Mapping):
            break
        inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None or any(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise RuntimeError(f"{source} holds a {type(obj).__name__}, not a state dict (a dict of tensors)")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        keys = sorted(str(k) for k in obj)[:10]
        raise RuntimeError(
            f"no tensors found in {source}; its top-level keys are {keys}. Expected a state dict, or a "
            f"training checkpoint with the weights under one of {list(_WRAPPER_KEYS)}"
        )
    return tensors


def _read_sharded(index_path: Path) -> dict[str, torch.Tensor]:
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{index_path} is not valid JSON ({error}); re-download the checkpoint") from error
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise ValueError(f"{index_path} has no 'weight_map' {{tensor name: shard file}}; is it a sharded index?")

    shards: dict[str, list[str]] = {}
    for key, shard in weight_map.items():
        shards.setdefault(str(shard), []).append(str(key))
    state_dict: dict[str, torch.Tensor] = {}
    for shard, keys in shards.items():  # each shard is read once
        shard_path = index_path.parent / shard
        if Path(shard).is_absolute() or ".." in Path(shard).parts:
            raise ValueError(f"{index_path} names shard {shard!r} outside its directory; refusing to read it")
        if not shard_path.is_file():
            raise FileNotFoundError(
                f"shard {shard!r} listed in {index_path.name} is missing from {index_path.parent} "
                f"({len(keys)} tensors, e.g. {keys[0]!r}); the download is incomplete: fetch it again"
            )
        part = _read_weights_file(shard_path)
        missing = [k for k in keys if k not in part]
        if missing:
            raise RuntimeError(
                f"{shard_path.name} lacks {len(missing)} tensors that {index_path.name} places there, "
                f"e.g. {missing[:3]}; the shard and the index do not belong together"
            )
        for key, tensor in part.items():
            if key in state_dict:
                raise RuntimeError(f"tensor {key!r} appears in more than one shard of {index_path}")
            state_dict[key] = tensor
    return state_dict


def _strip_prefixes(
    state_dict: dict[str, torch.Tensor], prefixes: Sequence[str], source: Path
) -> dict[str, torch.Tensor]:
    if not prefixes:
        return state_dict
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        new_key = key
        for prefix in prefixes:  # in order, so "module.evf_model.x" -> "evf_model.x" -> "x"
            if new_key.startswith(prefix):
                new_key = new_key[len(prefix) :]
        if new_key in out:
            raise RuntimeError(
                f"removing the prefixes {list(prefixes)} from the keys of {source} maps two entries to "
                f"{new_key!r}; load it with strip_prefixes=() and rename the keys yourself"
            )
        out[new_key] = tensor
    return out
