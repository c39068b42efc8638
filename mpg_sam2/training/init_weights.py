"""Initialise a model from the official SAM 2 and BEiT-3 releases, given as local files.

* SAM 2 (``sam2_hiera_{t,s,b+,l}.pt``): the state dict under ``"model"`` in SAM 2's own names;
  each key ``k`` goes to our ``sam2.k`` (our SAM 2 keeps SAM 2's module names). The aggregator
  inside the mask decoder is new and stays at its random initialisation.
* BEiT-3 (``beit3_{base,large}_patch16_224.pth`` from unilm): the state dict under ``"model"``
  with torchscale names ``beit3.*``; they are the authors' ``mm_extractor.beit3.*`` keys, so
  they go through the one rename table in :mod:`mpg_sam2.checkpoint.key_mapping`. Keys outside ``beit3.``
  (task heads of fine-tuned BEiT-3 files) are reported as ignored.

Loading is strict about what it maps: a key with no place in the model, or a shape that does not
match (a different SAM 2 variant, BEiT-3 size or vocabulary), is an error naming every such key.
What the files do not cover (the mask prior generator, the aggregator, the text projections, ...)
is reported as left at initialisation.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import torch

from mpg_sam2.checkpoint.key_mapping import authors_key_to_ours
from mpg_sam2.checkpoint.read_weights import read_state_dict
from mpg_sam2.checkpoint.strict_loading import mismatch_report
from mpg_sam2.model.mpg_sam2 import MPGSAM2

__all__ = ["InitReport", "init_from_beit3", "init_from_sam2", "left_at_init"]


@dataclass
class InitReport:
    source: Path
    loaded: list[str] = field(default_factory=list)  # our names
    ignored: list[str] = field(default_factory=list)  # file keys deliberately not used

    def summary(self) -> str:
        text = f"{self.source}: {len(self.loaded)} tensors loaded"
        if self.ignored:
            text += f", {len(self.ignored)} ignored ({', '.join(self.ignored[:5])}{', ...' if len(self.ignored) > 5 else ''})"
        return text


def _assign(model: MPGSAM2, mapped: Mapping[str, torch.Tensor], source: Path) -> list[str]:
    own = model.state_dict()
    report = mismatch_report(
        f"{source} does not fit this model configuration:",
        own,
        mapped,
        unexpected_label="keys with no place in the model",
        hint="check the preset (SAM 2 variant, BEiT-3 size, vocabulary) against the file",
        limit=20,
    )
    if report is not None:
        raise ValueError(report)
    with torch.no_grad():
        for name, tensor in mapped.items():
            own[name].copy_(tensor.to(dtype=own[name].dtype))
    return sorted(mapped)


def init_from_sam2(model: MPGSAM2, path: str | Path) -> InitReport:
    """Copy an official SAM 2 checkpoint into ``model.sam2`` (in place)."""
    path = Path(path)
    state_dict = read_state_dict(path, strip_prefixes=())
    if any(k.startswith(("visual_model.", "mm_extractor.", "sam2.")) for k in state_dict):
        raise ValueError(f"{path} is not an official SAM 2 checkpoint (its keys are not SAM 2's own names)")
    mapped = {f"sam2.{k}": v for k, v in state_dict.items()}
    return InitReport(path, loaded=_assign(model, mapped, path))


def init_from_beit3(model: MPGSAM2, path: str | Path) -> InitReport:
    """Copy an official (torchscale) BEiT-3 checkpoint into ``model.beit3`` (in place)."""
    path = Path(path)
    state_dict = read_state_dict(path, strip_prefixes=())
    mapped, ignored = {}, []
    for key, tensor in state_dict.items():
        if not key.startswith("beit3."):
            ignored.append(key)
            continue
        try:
            mapped[authors_key_to_ours("mm_extractor." + key)] = tensor
        except ValueError:
            raise ValueError(f"{path}: BEiT-3 key {key!r} has no rule in the rename table (mpg_sam2/checkpoint/key_mapping.py)") from None
    if not mapped:
        raise ValueError(f"{path} holds no beit3.* keys; is it a torchscale BEiT-3 checkpoint (beit3_*_patch16_224.pth)?")
    return InitReport(path, loaded=_assign(model, mapped, path), ignored=sorted(ignored))


def left_at_init(model: MPGSAM2, reports: list[InitReport]) -> list[str]:
    """Names of the model's tensors that none of ``reports`` loaded."""
    loaded = {k for r in reports for k in r.loaded}
    return sorted(k for k in model.state_dict() if k not in loaded)
