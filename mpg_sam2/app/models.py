"""Which model the app runs, and loading it once per process.

Choices, best first: a local checkpoint named by ``MPG_SAM2_MODEL``; the released checkpoints
when the Hub is reachable or they are in the local Hub cache; the bundled offline model when it
exists. The app shows a note saying which model ran and why.
"""
from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from mpg_sam2.evaluation.synthetic_report import GROUNDING_MARGIN
from mpg_sam2.pipeline.registry import HUB_REPO, REGISTRY, load_model
from mpg_sam2.pretrained import Pretrained

# Where the offline model bundled with the project lives (trained on the synthetic benchmark).
BUNDLED_MODEL = Path(__file__).resolve().parents[2] / "checkpoints" / "offline"
LOCAL_MODEL_ENV = "MPG_SAM2_MODEL"


@dataclass(frozen=True)
class ModelChoice:
    label: str  # shown in the dropdown
    source: str  # registry name or local folder
    note: str  # why it is available / the default


def bundled_model_note(folder: Path = BUNDLED_MODEL) -> str:
    """What the bundled model is and how well it reads the sentence, from its ``evaluation.json``."""
    note = "bundled offline model trained on the synthetic benchmark; it knows only synthetic shapes"
    try:
        evaluation = json.loads((folder / "evaluation.json").read_text(encoding="utf-8"))
        model, chance = evaluation["test"], evaluation["test_random_object"]
        overall, appearance = model["overall"]["J&F"], model["appearance"]["J&F"]
        reference = chance["overall"]["J&F"]
    except (OSError, KeyError, TypeError, ValueError):
        return f"{note}; see {folder / 'README.md'}"
    if overall < reference + GROUNDING_MARGIN:
        reads = "does not read the sentence yet"
    else:
        reads = "reads the sentence" + (", far from perfectly" if overall < 0.75 else "")
    return (f"{note} and {reads}: test J&F {overall:.2f} (appearance {appearance:.2f}) against {reference:.2f} "
            f"for a random object of the clip; see checkpoints/offline/README.md")


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    try:
        from huggingface_hub import HfApi

        HfApi().model_info(HUB_REPO, timeout=timeout_s)
        return True
    except Exception:
        return False


def _hub_cached() -> bool:
    try:
        from huggingface_hub import scan_cache_dir

        return any(repo.repo_id == HUB_REPO for repo in scan_cache_dir().repos)
    except Exception:
        return False


def available_models(check_hub: bool = True) -> list[ModelChoice]:
    """The models this process can run, best first."""
    choices = []
    local = os.environ.get(LOCAL_MODEL_ENV)
    if local:
        choices.append(ModelChoice(f"local: {Path(local).name}", local, f"local checkpoint from ${LOCAL_MODEL_ENV}"))
    reachable = check_hub and _hub_reachable()
    cached = _hub_cached()
    if reachable or cached:
        why = "the Hugging Face Hub is reachable" if reachable else "found in the local Hub cache"
        for name, entry in REGISTRY.items():
            choices.append(ModelChoice(name, name, f"released checkpoint '{name}' ({entry.description}); {why}"))
    if (BUNDLED_MODEL / "config.json").exists():
        choices.append(ModelChoice("offline (bundled)", str(BUNDLED_MODEL), bundled_model_note()))
    if not choices:
        # Nothing local: offer the released checkpoints; the first run tries to download them.
        for name, entry in REGISTRY.items():
            choices.append(ModelChoice(name, name, f"released checkpoint '{name}'; not cached and the Hub did not answer, "
                                                    "so running it will try to download it"))
    return choices


_LOADED: dict[tuple[str, str], Pretrained] = {}
_LOCK = threading.Lock()


def get_model(source: str, device: torch.device) -> Pretrained:
    """Load a model once per (source, device) and keep it for the process's lifetime."""
    key = (source, str(device))
    with _LOCK:
        if key not in _LOADED:
            _LOADED[key] = load_model(source, device=device)
        return _LOADED[key]
