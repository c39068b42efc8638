"""Training checkpoints: a model directory ``load_pretrained`` reads, plus the optimizer state.

``<out>/step-000100/`` holds

* ``config.json``, ``model.safetensors`` and the tokenizer files (:func:`save_pretrained`), so
  any checkpoint can be used for inference or evaluation as is;
* ``training_args.json``: the run's settings (ablation switches included);
* ``training_state.pt``: optimizer state, step, stream position and RNG states. It is written
  last, so a directory without it is an interrupted save and is skipped on resume.

Resuming restores all of it, so the next step computes exactly what the uninterrupted run would.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mpg_sam2.atomic import atomic_file
from mpg_sam2.checkpoint.pretrained import save_pretrained
from mpg_sam2.checkpoint.read_weights import read_state_dict
from mpg_sam2.checkpoint.strict_loading import load_strict
from mpg_sam2.model.mpg_sam2 import MPGSAM2
from mpg_sam2.tokenizer import ReferringTokenizer

__all__ = [
    "TRAINING_ARGS_FILE",
    "TRAINING_STATE_FILE",
    "TrainingState",
    "checkpoint_dirs",
    "latest_checkpoint",
    "load_checkpoint",
    "prune_checkpoints",
    "save_checkpoint",
]

TRAINING_STATE_FILE = "training_state.pt"
TRAINING_ARGS_FILE = "training_args.json"
_FORMAT_VERSION = 1


@dataclass
class TrainingState:
    step: int  # optimizer steps done
    stream_position: int  # training items this process has consumed
    rng: dict[str, Any]  # torch CPU (and CUDA) generator states
    objective_state: dict[str, Any] | None = None  # Objective.state_dict(): weights outside the model

    @staticmethod
    def capture_rng() -> dict[str, Any]:
        state: dict[str, Any] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def restore_rng(self) -> None:
        torch.set_rng_state(self.rng["torch"])
        if "cuda" in self.rng and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(self.rng["cuda"])


def checkpoint_name(step: int) -> str:
    return f"step-{step:06d}"


def save_checkpoint(
    directory: str | Path,
    model: MPGSAM2,
    tokenizer: ReferringTokenizer | None,
    optimizer: torch.optim.Optimizer,
    state: TrainingState,
    training_args: dict[str, Any] | None = None,
) -> Path:
    """Write one checkpoint directory (replacing an earlier one of the same name)."""
    directory = Path(directory)
    save_pretrained(model, directory, tokenizer=tokenizer, overwrite=True)
    (directory / TRAINING_STATE_FILE).unlink(missing_ok=True)
    if training_args is not None:
        text = json.dumps(training_args, indent=2, sort_keys=True, default=str) + "\n"
        (directory / TRAINING_ARGS_FILE).write_text(text, encoding="utf-8")
    payload = {
        "format_version": _FORMAT_VERSION,
        "step": state.step,
        "stream_position": state.stream_position,
        "rng": state.rng,
        "optimizer": optimizer.state_dict(),
    }
    if state.objective_state is not None:
        payload["objective_state"] = state.objective_state
    with atomic_file(directory / TRAINING_STATE_FILE) as partial:
        torch.save(payload, partial)
    return directory


def load_checkpoint(directory: str | Path, model: MPGSAM2, optimizer: torch.optim.Optimizer | None = None) -> TrainingState:
    """Load weights into ``model`` (strictly), the optimizer state, and return the step and RNG."""
    directory = Path(directory)
    state_path = directory / TRAINING_STATE_FILE
    if not state_path.is_file():
        raise FileNotFoundError(
            f"{directory} has no {TRAINING_STATE_FILE}; it is not a complete training checkpoint "
            "(use --init-from to start from model weights only)"
        )
    payload = torch.load(state_path, map_location="cpu", weights_only=True)
    if payload.get("format_version") != _FORMAT_VERSION:
        raise ValueError(f"{state_path} has format version {payload.get('format_version')}, expected {_FORMAT_VERSION}")
    state_dict = read_state_dict(directory)
    device = model.device
    load_strict(model, {k: v.to(device) for k, v in state_dict.items()})
    if optimizer is not None:
        saved_groups = [g.get("name") for g in payload["optimizer"]["param_groups"]]
        groups = [g.get("name") for g in optimizer.param_groups]
        try:
            if saved_groups != groups:  # torch would load groups of equal sizes into each other
                raise ValueError(f"it has the groups {saved_groups}, this run {groups}")
            optimizer.load_state_dict(payload["optimizer"])
        except ValueError as e:  # torch: "loaded state dict has a different number of parameter groups", ...
            raise ValueError(f"{state_path}: its optimizer state does not fit this run's parameter groups ({e}); a run "
                             "with other settings (such as --attribute-loss, --caption-loss or --motion-loss) saved it: resume it with "
                             "the settings that started it, or start from its weights with --init-from") from None
    return TrainingState(step=int(payload["step"]), stream_position=int(payload["stream_position"]), rng=payload["rng"],
                         objective_state=payload.get("objective_state"))


def checkpoint_dirs(out: str | Path) -> list[Path]:
    """Complete checkpoints under ``out``, oldest first."""
    out = Path(out)
    if not out.is_dir():
        return []
    return sorted(p for p in out.glob("step-*") if (p / TRAINING_STATE_FILE).is_file())


def latest_checkpoint(path: str | Path) -> Path:
    """``path`` itself if it is a checkpoint, else the newest complete checkpoint inside it."""
    path = Path(path)
    if (path / TRAINING_STATE_FILE).is_file():
        return path
    found = checkpoint_dirs(path)
    if not found:
        raise FileNotFoundError(f"no training checkpoint (a step-* folder with {TRAINING_STATE_FILE}) in {path}")
    return found[-1]


def prune_checkpoints(out: str | Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest checkpoints; returns the deleted folders."""
    if keep < 1:
        return []
    old = checkpoint_dirs(out)[:-keep]
    for path in old:
        shutil.rmtree(path)
    return old
