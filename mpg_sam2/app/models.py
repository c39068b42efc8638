"""Which models the app offers, and the pool that holds them for the process's lifetime.

Choices, best first: a local checkpoint named by ``MPG_SAM2_MODEL``; the released checkpoints
in the local Hub cache (on a Space they are put there at build time by ``preload_from_hub``);
the bundled offline model; then, when downloads are allowed, the released checkpoints that
are not downloaded yet. Building the list never touches the network, and neither does loading
the models on this machine (they are read from the Hub cache alone): importing the app makes
no network call.

The app loads every offered model that is on this machine at import, on the GPU when there is
one (on ZeroGPU that is the documented pattern: ``spaces`` packs the weights moved to ``cuda``
at module level and moves them into each GPU worker). The GPU function only looks models up in
the pool; it never loads one.
"""
from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch

from mpg_sam2.checkpoint.evaluation import read_grounding_scores
from mpg_sam2.checkpoint.hub import hub_offline
from mpg_sam2.checkpoint.pretrained import Pretrained, load_pretrained
from mpg_sam2.checkpoint.registry import HUB_REPO, REGISTRY, cached_releases

# Where the offline model bundled with the project lives (trained on the synthetic benchmark).
BUNDLED_MODEL = Path(__file__).resolve().parents[2] / "checkpoints" / "offline"
LOCAL_MODEL_ENV = "MPG_SAM2_MODEL"


@dataclass(frozen=True)
class ModelChoice:
    label: str  # shown in the dropdown
    source: str  # registry name or local folder
    note: str  # why it is available / the default
    on_disk: bool  # False: loading it downloads it first


def bundled_model_note(folder: Path = BUNDLED_MODEL) -> str:
    """What the bundled model is and how well it reads the sentence, from its ``evaluation.json``."""
    note = "bundled offline model trained on the synthetic benchmark; it knows only synthetic shapes"
    scores = read_grounding_scores(folder)
    if scores is None:
        return f"{note}; see {folder / 'README.md'}"
    return (f"{note} and {scores.verdict}: test J&F {scores.overall:.2f} (appearance {scores.appearance:.2f}) against "
            f"{scores.random_object:.2f} for a random object of the clip; see checkpoints/offline/README.md")


def _cached_releases() -> list[str]:
    try:
        return cached_releases()
    except Exception:  # an unreadable cache: nothing cached
        return []


def available_models(offer_downloads: bool | None = None) -> list[ModelChoice]:
    """The models this process can run, best first.

    ``offer_downloads``: also list released checkpoints that are not in the Hub cache (their
    first run downloads them). Default: unless the Hub is switched off (``HF_HUB_OFFLINE``) or
    this is a ZeroGPU Space (a model loaded after start-up cannot move into its GPU workers).
    """
    from mpg_sam2.app.zerogpu import on_zerogpu

    if offer_downloads is None:
        offer_downloads = not hub_offline() and not on_zerogpu()
    choices = []
    local = os.environ.get(LOCAL_MODEL_ENV)
    if local:
        choices.append(ModelChoice(f"local: {Path(local).name}", local, f"local checkpoint from ${LOCAL_MODEL_ENV}", True))
    cached = _cached_releases()
    for name in cached:
        choices.append(ModelChoice(name, name, f"released checkpoint '{name}' ({REGISTRY[name].description})", True))
    if (BUNDLED_MODEL / "config.json").exists():
        choices.append(ModelChoice("offline (bundled)", str(BUNDLED_MODEL), bundled_model_note(), True))
    if offer_downloads:
        for name, entry in REGISTRY.items():
            if name in cached:
                continue
            choices.append(ModelChoice(
                f"{name} (downloads on first use)", name,
                f"released checkpoint '{name}' ({entry.description}); not downloaded yet: the first run "
                f"downloads it from {HUB_REPO} (several GB)", False,
            ))
    return choices


class ModelPool:
    """Models loaded once per process on one device, shared by every request.

    ``load`` runs in the main process only (at import for the models on disk, before the GPU
    call for one that must be downloaded); ``get`` is what the GPU function uses.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._loaded: dict[str, Pretrained] = {}
        self._lock = threading.Lock()

    def load(self, source: str, local_files_only: bool = False) -> Pretrained:
        """The model ``source``, loaded on first use (only the first use waits for the lock).

        ``local_files_only``: read a released checkpoint from the Hub cache alone, never the network.
        """
        if source in self._loaded:
            return self._loaded[source]
        with self._lock:
            if source not in self._loaded:
                self._loaded[source] = load_pretrained(source, device=self.device, local_files_only=local_files_only)
            return self._loaded[source]

    def get(self, source: str) -> Pretrained:
        try:
            return self._loaded[source]
        except KeyError:
            raise RuntimeError(
                f"model {source!r} is not loaded in this process (loaded: {sorted(self._loaded)}); "
                "load it in the main process before the GPU call"
            ) from None

    def preload(self, choices: Iterable[ModelChoice]) -> list[ModelChoice]:
        """Load every choice that is on disk, from the disk alone (no network call); returns the
        choices still offered (a model that fails to load is dropped with a warning instead of
        stopping the app)."""
        offered = []
        for choice in choices:
            if choice.on_disk:
                try:
                    self.load(choice.source, local_files_only=True)
                except Exception as error:  # a broken or partial checkpoint: offer the others
                    warnings.warn(f"model {choice.label!r} is not offered: {type(error).__name__}: {error}", stacklevel=2)
                    continue
            offered.append(choice)
        return offered
