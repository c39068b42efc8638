"""Run the model exactly as the authors' inference does, on synthetic weights.

:func:`run_reference_case` is the entry point of the equivalence checks against the reference
fixtures (outputs of the authors' code on weights from :mod:`mpg_sam2.synthetic_weights`). It
goes through the same conversion and strict loading as a real checkpoint and the same
preprocessing as the authors' ``inference_ytvos.py``, in float32 on the CPU.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from mpg_sam2.config import get_preset
from mpg_sam2.checkpoint.key_mapping import convert_authors_state_dict
from mpg_sam2.checkpoint.strict_loading import empty_weights, load_strict
from mpg_sam2.frames import encoder_input, logits_to_frame_size
from mpg_sam2.model.mask_prior_generator import MaskPriorOutput
from mpg_sam2.model.mpg_sam2 import MPGSAM2
from mpg_sam2.model.video_propagation import FrameOutput, ReferringPrompts
from mpg_sam2.synthetic_weights import synth_state_dict


def build_with_authors_weights(layout: Mapping[str, Sequence[int]], weight_seed: int, preset: str = "mini") -> MPGSAM2:
    """The preset's model holding ``synth_state_dict(layout, weight_seed)`` (authors' names)."""
    with empty_weights():
        model = MPGSAM2(get_preset(preset))
    state_dict = convert_authors_state_dict(synth_state_dict(dict(layout), int(weight_seed)))
    load_strict(model, state_dict)
    return model.eval()


@dataclass
class ReferenceRun:
    """Everything one run produced (tensors on the CPU, batch dimension of 1 removed)."""

    prompts: ReferringPrompts
    mask_prior: MaskPriorOutput
    frames: list[FrameOutput]
    final_logits: torch.Tensor  # [T, H, W]


def run_case(
    model: MPGSAM2,
    frames: np.ndarray,
    input_ids: np.ndarray | torch.Tensor,
) -> ReferenceRun:
    """frames uint8 ``[T, H, W, 3]`` RGB, input_ids int64 ``[1, L]`` (not re-tokenised).

    Runs on the model's device, in the precision the model holds (float32 is the reference;
    :func:`mpg_sam2.model.precision.hold_in_precision` gives the authors' bf16 inference).
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    device = model.device
    ids = torch.as_tensor(np.asarray(input_ids), dtype=torch.long).to(device)
    cfg = model.config
    # The authors' attention mask: ids != pad, where pad was set to <unk> (id 3).
    attention_mask = ids != cfg.pad_token_id
    num_frames, height, width, _ = frames.shape
    beit_pixels = encoder_input(frames, cfg.beit3.image_size).to(device)
    sam_size = cfg.sam2.image_size
    with torch.inference_mode():
        prompts, prior = model.encode_expression(beit_pixels, ids, attention_mask)
        outputs = list(model.propagate(lambda start, stop: encoder_input(frames[start:stop], sam_size).to(device), prompts))
        lowres = torch.cat([o.heads.lowres_logits for o in outputs])
        final = logits_to_frame_size(lowres, sam_size, height, width).cpu()
    return ReferenceRun(prompts=prompts, mask_prior=prior, frames=outputs, final_logits=final)


def run_reference_case(
    frames: np.ndarray,
    input_ids: np.ndarray | torch.Tensor,
    layout: Mapping[str, Sequence[int]],
    weight_seed: int,
    preset: str = "mini",
) -> dict[str, np.ndarray]:
    """Build the authors' state dict for ``layout`` and ``weight_seed``, load it, run the video.

    Returns numpy arrays: ``mask_prior`` ``[T,1,g,g]``, ``object_score_logits`` ``[T]``,
    ``lowres_logits_before`` ``[T,256,256]``, ``final_logits`` ``[T,H,W]`` and
    ``final_masks`` bool ``[T,H,W]`` (``sigmoid(logits) > 0.5``).
    """
    torch.manual_seed(0)  # nothing random runs in eval mode; kept for any future dropout
    model = build_with_authors_weights(layout, weight_seed, preset)
    run = run_case(model, frames, input_ids)
    final = run.final_logits
    return {
        "mask_prior": run.mask_prior.prior.numpy(),
        "object_score_logits": torch.cat([o.heads.object_score_logits[:, 0] for o in run.frames]).numpy(),
        "lowres_logits_before": torch.cat([o.heads.lowres_logits_before[:, 0] for o in run.frames]).numpy(),
        "final_logits": final.numpy(),
        "final_masks": (final.sigmoid() > 0.5).numpy(),
    }
