"""File-level checkpoint IO: read and write state dicts and checkpoint directories.

Nothing here knows the model classes. Renaming the authors' keys to ours and strict loading happen
in one place elsewhere; this module only turns files into ``{name: tensor}`` and back.

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
import os
import pickle
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from mpg_sam2.atomic import atomic_dir

__all__ = [
    "CONFIG_NAME",
    "SAFETENSORS_INDEX_NAME",
    "SAFETENSORS_NAME",
    "TORCH_INDEX_NAME",
    "TORCH_NAME",
    "TRAINING_PREFIXES",
    "read_config_json",
    "read_state_dict",
    "resolve_checkpoint",
    "write_checkpoint_dir",
]

CONFIG_NAME = "config.json"
SAFETENSORS_NAME = "model.safetensors"
SAFETENSORS_INDEX_NAME = "model.safetensors.index.json"
TORCH_NAME = "pytorch_model.bin"
TORCH_INDEX_NAME = "pytorch_model.bin.index.json"
# Preference order inside a directory: safetensors (no pickle at all) before torch pickles.
_DIRECTORY_CANDIDATES = (SAFETENSORS_NAME, SAFETENSORS_INDEX_NAME, TORCH_NAME, TORCH_INDEX_NAME)
_TORCH_SUFFIXES = (".bin", ".pt", ".pth")
# Keys under which training loops store the weights (DeepSpeed: "module"; plain loops: "model",
# "state_dict", "model_state_dict"), tried in this order.
_WRAPPER_KEYS = ("module", "model", "state_dict", "model_state_dict")
# DeepSpeed wraps the model as `module`, and the authors' training model holds the network as
# `evf_model`; both are stripped wherever they lead a key (so `module.evf_model.x` becomes `x`).
TRAINING_PREFIXES = ("module.", "evf_model.")
# Files write_checkpoint_dir owns; anything else in an existing directory (tokenizer files, a
# README) is carried over when it is rewritten.
_OWNED_FILE = re.compile(
    r"^(config\.json|model(-\d+-of-\d+)?\.safetensors|pytorch_model(-\d+-of-\d+)?\.bin|.*\.index\.json)$"
)
# Hub repo ids: "owner/name", letters, digits, "-", "_", "." (no "--" or ".." , at most 96 chars).
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


# ----------------------------------------------------------------------------------------------
# Reading


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
        path = _weights_file_in(path)
    elif not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")

    if path.name.endswith(".index.json"):
        state_dict = _read_sharded(path)
    else:
        state_dict = _read_weights_file(path)
    return _strip_prefixes(state_dict, strip_prefixes, source=path)


def _weights_file_in(directory: Path) -> Path:
    for name in _DIRECTORY_CANDIDATES:
        if (directory / name).is_file():
            return directory / name
    found = sorted(p.name for p in directory.iterdir())
    raise FileNotFoundError(
        f"no weights in {directory}: expected one of {', '.join(_DIRECTORY_CANDIDATES)}; found "
        f"{found or 'nothing'}. Is this the checkpoint directory (the one with config.json)?"
    )


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


def read_config_json(directory: str | Path) -> dict[str, Any]:
    """Read ``config.json`` of a checkpoint directory.

    Args:
        directory: the checkpoint directory (or the ``config.json`` file itself).

    Returns:
        the parsed JSON object.

    Raises:
        FileNotFoundError: no such directory or no ``config.json`` in it.
        ValueError: the file is not valid JSON or not a JSON object.
    """
    directory = Path(directory)
    path = directory if directory.is_file() else directory / CONFIG_NAME
    if not directory.exists():
        raise FileNotFoundError(f"checkpoint directory {str(directory)!r} does not exist")
    if not path.is_file():
        raise FileNotFoundError(
            f"no {CONFIG_NAME} in {directory}; a checkpoint directory carries its config next to the weights"
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(config, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(config).__name__}")
    return config


# ----------------------------------------------------------------------------------------------
# Writing


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
            save_file(shards[0], str(staging / SAFETENSORS_NAME), metadata=metadata)
        else:
            weight_map: dict[str, str] = {}
            for i, shard in enumerate(shards, start=1):
                name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
                save_file(shard, str(staging / name), metadata=metadata)
                weight_map.update({key: name for key in shard})
            index = {"metadata": {"total_size": sum(t.nbytes for t in tensors.values())}, "weight_map": weight_map}
            (staging / SAFETENSORS_INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
        (staging / CONFIG_NAME).write_text(config_text, encoding="utf-8")
        for old in existing:  # keep tokenizer files etc.; our own files were just rewritten
            if not _OWNED_FILE.match(old.name):
                if old.is_dir():
                    shutil.copytree(old, staging / old.name)
                else:
                    shutil.copy2(old, staging / old.name)
    return directory


# ----------------------------------------------------------------------------------------------
# Locating


def _is_truthy(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def resolve_checkpoint(
    name_or_path: str | Path,
    revision: str | None = None,
    subfolder: str | None = None,
    cache_dir: str | Path | None = None,
) -> Path:
    """Turn a local path or a Hugging Face Hub repo id into a local path.

    A path that exists is returned as is (joined with ``subfolder`` when one is given). Anything
    else must be a repo id ``owner/name``; its files (only ``subfolder/*`` when a subfolder is
    given) are fetched with ``huggingface_hub.snapshot_download`` into the Hub cache, or taken from
    the cache alone when ``HF_HUB_OFFLINE`` is set.

    Args:
        name_or_path: local file/directory, or a repo id such as ``"owner/mpg-sam2"``.
        revision: branch, tag or commit of the repo (default branch if None).
        subfolder: folder inside the repo (or local directory) that holds the checkpoint.
        cache_dir: Hub cache folder (default: huggingface_hub's).

    Returns:
        path to the local checkpoint directory (or file).

    Raises:
        ValueError: ``name_or_path`` is neither an existing path nor a valid repo id, or a bad
            ``subfolder``.
        FileNotFoundError: ``subfolder`` does not exist under a local path.
        RuntimeError: the download (or the offline cache lookup) failed, or the repo lacks
            ``subfolder``.
    """
    if isinstance(name_or_path, str) and not name_or_path.strip():
        # Path("") is the working directory, which exists: never resolve an empty name to it.
        raise ValueError(
            "an empty name is neither an existing file or directory nor a Hugging Face Hub repo id; "
            "pass a checkpoint path or 'owner/name'"
        )
    if subfolder is not None:
        subfolder = str(subfolder).strip("/")
        if not subfolder or Path(subfolder).is_absolute() or ".." in Path(subfolder).parts:
            raise ValueError(f"subfolder must be a relative folder inside the checkpoint, got {subfolder!r}")
    local = Path(name_or_path).expanduser()
    if local.exists():
        if subfolder is None:
            return local
        if not (local / subfolder).exists():
            raise FileNotFoundError(f"{local} has no subfolder {subfolder!r}")
        return local / subfolder

    repo_id = str(name_or_path)
    if not _REPO_ID.match(repo_id) or len(repo_id) > 96 or "--" in repo_id or ".." in repo_id:
        raise ValueError(
            f"{repo_id!r} is neither an existing file or directory nor a Hugging Face Hub repo id of the "
            "form 'owner/name'; check the path"
        )

    # Read the variable now: huggingface_hub reads HF_HUB_OFFLINE once at import time, so a value
    # set later (by the CLI, the app or a test) would otherwise be ignored.
    offline = _is_truthy(os.environ.get("HF_HUB_OFFLINE")) or _is_truthy(os.environ.get("TRANSFORMERS_OFFLINE"))
    try:
        from huggingface_hub import snapshot_download  # lazily: no Hub machinery at import
    except ImportError as error:
        raise RuntimeError(
            f"{repo_id!r} is not a local path, and fetching it from the Hub needs huggingface_hub: "
            "pip install huggingface_hub"
        ) from error

    kwargs: dict[str, Any] = {
        "revision": revision,
        "allow_patterns": [f"{subfolder}/*"] if subfolder else None,
        "cache_dir": str(cache_dir) if cache_dir is not None else None,
    }
    if offline:
        kwargs["local_files_only"] = True
    where = (
        f"repo {repo_id!r} (revision {revision or 'default branch'}, subfolder {subfolder or '<root>'}, "
        f"cache {cache_dir or 'default'})"
    )
    try:
        snapshot = Path(snapshot_download(repo_id, **kwargs))
    except Exception as error:  # HTTP, offline-mode, auth and cache errors all land here
        mode = "HF_HUB_OFFLINE is set, so only the local cache was searched. " if offline else ""
        raise RuntimeError(
            f"could not get {where}: {type(error).__name__}: {str(error).rstrip('. ')}. {mode}"
            "Check the network connection, "
            "HF_HUB_OFFLINE (unset it to download, or download once while online), and that the repo id, "
            f"revision and subfolder are right. A local checkpoint named {repo_id!r} does not exist either."
        ) from error
    result = snapshot / subfolder if subfolder else snapshot
    if not result.exists():
        raise RuntimeError(f"{where} was fetched to {snapshot} but holds no folder {subfolder!r}")
    return result
