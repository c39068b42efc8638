"""The paper's ablation switches (Table 3) as model-configuration changes.

* ``no_mask_prior`` ("w/o MPG"): ``MaskPriorConfig.dense_prompt = False``. SAM 2 gets its own
  learned "no mask" dense prompt, exactly what ``PromptEncoder.forward(masks=None)`` returns.
  The mask prior generator still runs: its global context feeds the aggregator.
* ``no_aggregator`` ("w/o HGA"): ``AggregatorConfig.enabled = False``. The image embedding and
  SAM 2's mask tokens reach the two-way transformer as in plain SAM 2.

Both live in ``config.json``, so an ablated checkpoint behaves as trained wherever it is
loaded (app, CLI, evaluation), and its state dict keeps every key of the full model.
"""
from __future__ import annotations

import dataclasses

from mpg_sam2.config import MPGSAM2Config

__all__ = ["with_ablations", "ablation_name"]


def with_ablations(config: MPGSAM2Config, no_mask_prior: bool = False, no_aggregator: bool = False) -> MPGSAM2Config:
    """``config`` with the requested parts switched off; a part already off stays off."""
    if no_mask_prior:
        config = dataclasses.replace(config, mask_prior=dataclasses.replace(config.mask_prior, dense_prompt=False))
    if no_aggregator:
        config = dataclasses.replace(config, aggregator=dataclasses.replace(config.aggregator, enabled=False))
    return config


def ablation_name(config: MPGSAM2Config) -> str:
    """The row of the paper's Table 3 that ``config`` is: baseline, +MPG, +HGA or MPG+HGA."""
    mpg, hga = config.mask_prior.dense_prompt, config.aggregator.enabled
    return {(False, False): "baseline", (True, False): "+MPG", (False, True): "+HGA", (True, True): "MPG+HGA"}[(mpg, hga)]
