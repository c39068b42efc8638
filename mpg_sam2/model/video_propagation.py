"""Frame-by-frame propagation through SAM 2's memory, as the authors' forked predictor does.

Behaviour reproduced (SPEC §5): frame 0 is the only conditioning frame, propagation runs
forward, every frame decodes with multimask output and keeps the best-IoU mask, frames whose
object score is not positive are gated to -1024, and spatial memories are stored in bfloat16
(also in float32 runs: SAM 2's predictor does that and the released checkpoints were
evaluated with it). Each frame runs the image encoder once, then one tracking step, then the
memory encoder on its own prediction. Only the memories SAM 2 can still attend to are kept,
so memory stays flat however long the video is.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch

from mpg_sam2.model.mask_decoder import DecoderContext
from mpg_sam2.model.prompted_sam2 import FramePrompts, HeadsOutput, PromptedSAM2

# Spatial memories are kept in this dtype between frames (SAM 2 predictor behaviour).
MEMORY_STORAGE_DTYPE = torch.bfloat16


@dataclass
class ReferringPrompts:
    """Per-video prompts of one expression batch (B expressions, T frames)."""

    text_tokens: torch.Tensor  # [T, B, 1, D]: sparse text prompt per frame
    text_features: torch.Tensor  # [T, B, L, D]: projected caption tokens per frame
    mask_priors: torch.Tensor  # [T, B, 1, g, g]
    global_context: torch.Tensor  # [B, T*N, D]
    global_patches: torch.Tensor  # [B, T*(g/p)^2, D]

    @property
    def num_frames(self) -> int:
        return self.mask_priors.shape[0]


@dataclass
class FrameOutput:
    """What propagation yields for frame ``frame_index``."""

    frame_index: int
    heads: HeadsOutput
    memory_features: torch.Tensor | None  # [B, 64, h, w] before the bfloat16 storage cast


@dataclass
class FrameFeatures:
    """SAM 2 image features of one frame; computed once, shared by every expression."""

    vision_feats: list[torch.Tensor]  # per level [HW, B, C]
    vision_pos: list[torch.Tensor]  # per level [HW, B, C]
    feat_sizes: list[tuple[int, int]]
    high_res: list[torch.Tensor] | None  # levels 0 and 1 as [B, C, H, W] (decoder upscaling path)

    @property
    def batch_size(self) -> int:
        return self.vision_feats[-1].shape[1]

    def select(self, index: int) -> "FrameFeatures":
        """The features of batch entry ``index`` (one frame of a batch encoded together):
        [HW, 1, C] per level and [1, C, H, W] for the high-resolution levels, contiguous as a
        one-frame encoding gives them (SAM 2 reshapes them with ``view``)."""
        pick = slice(index, index + 1)
        return FrameFeatures(
            vision_feats=[x[:, pick].contiguous() for x in self.vision_feats],
            vision_pos=[x[:, pick].contiguous() for x in self.vision_pos],
            feat_sizes=self.feat_sizes,
            high_res=None if self.high_res is None else [x[pick].contiguous() for x in self.high_res],
        )


def image_features(sam2: PromptedSAM2, image: torch.Tensor) -> FrameFeatures:
    """Hiera + FPN (+ the decoder's conv_s0 / conv_s1) on ``image [B, 3, S, S]``."""
    backbone_out = sam2.forward_image(image)
    _, vision_feats, vision_pos, feat_sizes = sam2._prepare_backbone_features(backbone_out)
    high_res = None
    if sam2.use_high_res_features_in_sam:
        high_res = [
            x.permute(1, 2, 0).reshape(x.shape[1], x.shape[2], *size)
            for x, size in zip(vision_feats[:-1], feat_sizes[:-1])
        ]
    return FrameFeatures(vision_feats, vision_pos, feat_sizes, high_res)


class ExpressionTracker:
    """SAM 2's memory bank for one expression (batch B), stepped through frames 0, 1, 2, ...

    Args:
        sam2: the prompted SAM 2 model.
        prompts: the expression's prompts for all frames.
        storage_device: where spatial memories are kept between frames (e.g. the CPU, to save
            GPU memory on long videos); they move back to the compute device when read.
    """

    def __init__(
        self, sam2: PromptedSAM2, prompts: ReferringPrompts, storage_device: torch.device | str | None = None
    ) -> None:
        self.sam2 = sam2
        self.prompts = prompts
        self.storage_device = storage_device
        self.next_frame = 0
        self.output_dict: dict[str, dict[int, dict[str, Any]]] = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
        # Non-conditioning frames older than this are never read again (spatial memory window
        # and object-pointer window), so they are dropped.
        num_frames = prompts.num_frames
        self._keep = max(sam2.num_maskmem - 1, min(num_frames, sam2.max_obj_ptrs_in_encoder) - 1)

    def step(self, features: FrameFeatures) -> FrameOutput:
        """Track the next frame given its image features."""
        t = self.next_frame
        if t >= self.prompts.num_frames:
            raise RuntimeError(f"all {self.prompts.num_frames} frames of this expression are already tracked")
        out = _track_frame(self.sam2, t, features, self.prompts, self.output_dict, self.storage_device)
        self.output_dict["non_cond_frame_outputs"].pop(t - self._keep, None)
        self.next_frame = t + 1
        return out


def propagate(
    sam2: PromptedSAM2,
    sam_image: Callable[[int], torch.Tensor],
    prompts: ReferringPrompts,
    autocast: Callable[[], Any] | None = None,
    storage_device: torch.device | str | None = None,
) -> Iterator[FrameOutput]:
    """Yield one :class:`FrameOutput` per frame, in order 0..T-1.

    Args:
        sam2: the prompted SAM 2 model (eval mode, no grad is the caller's choice).
        sam_image: ``t -> [B, 3, S, S]`` normalised SAM 2 input of frame ``t``; called once per
            frame, so frames can be read lazily.
        prompts: the expression's prompts for all frames.
        autocast: optional context-manager factory (e.g. bf16 autocast) around the encoders
            and heads; memories and outputs stay float32.
        storage_device: see :class:`ExpressionTracker`.
    """
    tracker = ExpressionTracker(sam2, prompts, storage_device)
    for t in range(prompts.num_frames):
        with autocast() if autocast is not None else contextlib.nullcontext():
            yield tracker.step(image_features(sam2, sam_image(t)))


def _track_frame(
    sam2: PromptedSAM2,
    t: int,
    features: FrameFeatures,
    prompts: ReferringPrompts,
    output_dict: dict[str, dict[int, dict[str, Any]]],
    storage_device: torch.device | str | None,
) -> FrameOutput:
    is_conditioning = t == 0
    vision_feats, vision_pos, feat_sizes = features.vision_feats, features.vision_pos, features.feat_sizes
    pix_feat = sam2._prepare_memory_conditioned_features(
        frame_idx=t,
        is_init_cond_frame=is_conditioning,
        current_vision_feats=vision_feats[-1:],
        current_vision_pos_embeds=vision_pos[-1:],
        feat_sizes=feat_sizes[-1:],
        output_dict=output_dict,
        num_frames=prompts.num_frames,
    )
    pointers, pointer_pos = sam2.object_pointer_history(t, output_dict, prompts.num_frames)
    frame_prompts = FramePrompts(
        text_token=prompts.text_tokens[t],
        mask_prior=prompts.mask_priors[t],
        decoder_context=DecoderContext(
            global_context=prompts.global_context,
            global_patches=prompts.global_patches,
            text_features=prompts.text_features[t],
            pointers=pointers,
            pointer_pos=pointer_pos,
        ),
    )
    heads = sam2.forward_heads(
        pix_feat, features.high_res, frame_prompts, multimask_output=sam2._use_multimask(is_conditioning, None)
    )
    memory_features = None
    # The pointer stays on the compute device: SAM 2 stacks pointers without moving them.
    entry: dict[str, Any] = {"obj_ptr": heads.obj_ptr, "maskmem_features": None, "maskmem_pos_enc": None}
    if sam2.num_maskmem > 0:
        memory_features, memory_pos = sam2._encode_new_memory(
            current_vision_feats=vision_feats,
            feat_sizes=feat_sizes,
            pred_masks_high_res=heads.highres_logits,
            object_score_logits=heads.object_score_logits,
            is_mask_from_pts=False,
        )
        entry["maskmem_features"] = memory_features.to(device=storage_device, dtype=MEMORY_STORAGE_DTYPE)
        entry["maskmem_pos_enc"] = [p.to(storage_device) for p in memory_pos]
    bank = "cond_frame_outputs" if is_conditioning else "non_cond_frame_outputs"
    output_dict[bank][t] = entry
    return FrameOutput(frame_index=t, heads=heads, memory_features=memory_features)
