"""The paper's ablation switches (Table 3), applied from the training side with forward hooks.

* ``no_mask_prior``: SAM 2 gets no dense prompt. The prompt encoder's dense output is replaced
  by SAM 2's own "no mask" embedding (``no_mask_embed`` broadcast to the embedding grid), which
  is exactly what ``PromptEncoder.forward(masks=None)`` returns. The mask prior generator still
  runs: its global context feeds the aggregator.
* ``no_aggregator``: the three fusion blocks of the global-historical aggregator return their
  query unchanged, so the image embedding and SAM 2's mask tokens reach the two-way transformer
  as in plain SAM 2. (The blocks still compute, and their result is thrown away.)

Hooks change no parameter, so the state dict keeps its keys and the checkpoint directory
loads with ``load_pretrained``. But the model code does not know about them: a checkpoint
trained with an ablation behaves as trained only when the same hooks are installed at inference
(``apply_ablations(model, ...)``); the trainer records the switches in ``training_args.json``.
Making them part of the configuration needs a change to the model code (see the report of
issue 5).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from mpg_sam2.model.mpg_sam2 import MPGSAM2

__all__ = ["Ablations", "apply_ablations"]


@dataclass
class Ablations:
    no_mask_prior: bool = False
    no_aggregator: bool = False
    handles: list[RemovableHandle] = field(default_factory=list, repr=False)

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


def _no_mask_dense(module: nn.Module, args: Any, output: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    sparse, dense = output
    no_mask = module.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(dense.shape[0], -1, *dense.shape[-2:])
    return sparse, no_mask.to(dense.dtype)


def _return_query(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
    return args[0]


def apply_ablations(model: MPGSAM2, no_mask_prior: bool = False, no_aggregator: bool = False) -> Ablations:
    """Install the hooks on ``model`` (in place); ``.remove()`` on the result undoes them."""
    ablations = Ablations(no_mask_prior, no_aggregator)
    if no_mask_prior:
        ablations.handles.append(model.sam2.sam_prompt_encoder.register_forward_hook(_no_mask_dense))
    if no_aggregator:
        aggregator = model.sam2.sam_mask_decoder.aggregator
        for block in (aggregator.pixel_fusion, aggregator.global_token_fusion, aggregator.historical_token_fusion):
            ablations.handles.append(block.register_forward_hook(_return_query))
    return ablations
