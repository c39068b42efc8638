"""The files of a checkpoint folder: their names, its ``config.json``, and whether it has a tokenizer.

A checkpoint folder (ours, or the authors' Hugging Face-style one) holds:

* ``config.json``: the model config (ours: ``model_type: "mpg_sam2"``; the authors': ``"evf"``);
* the weights: ``model.safetensors`` or ``pytorch_model.bin``, or their shards listed in
  ``model.safetensors.index.json`` / ``pytorch_model.bin.index.json``;
* the tokenizer: BEiT-3's sentencepiece model ``sentencepiece.bpe.model`` and/or transformers'
  ``tokenizer.json``, next to ``tokenizer_config.json``;
* optionally ``evaluation.json`` (:mod:`mpg_sam2.checkpoint.evaluation`) and a ``README.md``.

This module is the one list of these names; it imports nothing of the package.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = [
    "CONFIG_FILE",
    "SAFETENSORS_FILE",
    "SAFETENSORS_INDEX_FILE",
    "SENTENCEPIECE_FILE",
    "TOKENIZER_CONFIG_FILE",
    "TOKENIZER_FILES",
    "TOKENIZER_JSON_FILE",
    "TORCH_FILE",
    "TORCH_INDEX_FILE",
    "WEIGHTS_FILES",
    "has_tokenizer",
    "read_config_json",
    "weights_file_in",
]

CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX_FILE = "model.safetensors.index.json"
TORCH_FILE = "pytorch_model.bin"
TORCH_INDEX_FILE = "pytorch_model.bin.index.json"
# Preference order inside a folder: safetensors (no pickle at all) before torch pickles.
WEIGHTS_FILES = (SAFETENSORS_FILE, SAFETENSORS_INDEX_FILE, TORCH_FILE, TORCH_INDEX_FILE)

SENTENCEPIECE_FILE = "sentencepiece.bpe.model"  # BEiT-3's beit3.spm, as the authors saved it
TOKENIZER_JSON_FILE = "tokenizer.json"  # what transformers 5 saves
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
# Either file holds the vocabulary; tokenizer_config.json alone does not (transformers 5 would
# build a 5-token vocabulary from it), so it does not count as a tokenizer.
TOKENIZER_FILES = (SENTENCEPIECE_FILE, TOKENIZER_JSON_FILE)


def has_tokenizer(folder: str | Path) -> bool:
    """True when ``folder`` holds a tokenizer vocabulary (one of :data:`TOKENIZER_FILES`)."""
    folder = Path(folder)
    return folder.is_dir() and any((folder / name).is_file() for name in TOKENIZER_FILES)


def weights_file_in(directory: Path) -> Path:
    """The weights file (or shard index) of a checkpoint folder, in :data:`WEIGHTS_FILES` order.

    Raises:
        FileNotFoundError: the folder holds none of them.
    """
    for name in WEIGHTS_FILES:
        if (directory / name).is_file():
            return directory / name
    found = sorted(p.name for p in directory.iterdir())
    raise FileNotFoundError(
        f"no weights in {directory}: expected one of {', '.join(WEIGHTS_FILES)}; found "
        f"{found or 'nothing'}. Is this the checkpoint directory (the one with config.json)?"
    )


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
    path = directory if directory.is_file() else directory / CONFIG_FILE
    if not directory.exists():
        raise FileNotFoundError(f"checkpoint directory {str(directory)!r} does not exist")
    if not path.is_file():
        raise FileNotFoundError(
            f"no {CONFIG_FILE} in {directory}; a checkpoint directory carries its config next to the weights"
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(config, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(config).__name__}")
    return config
