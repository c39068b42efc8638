"""The frame loop: SAM 2's memory propagation for one or several expressions at once.

Behaviour reproduced (SPEC §5): frame 0 is the only conditioning frame, propagation runs
forward, every frame decodes with multimask output and keeps the best-IoU mask, frames whose
object score is not positive are gated to -1024, and spatial memories are stored in bfloat16
(also in float32 runs: SAM 2's predictor does that and the released checkpoints were
evaluated with it).

:func:`propagate` is the one frame loop of the project (the reference runner, the pipeline,
evaluation and training all run it): per frame, SAM 2's image encoder runs once (or once per
batch of frames) and every expression's :class:`ExpressionTracker` takes one step on those
shared features (its own memory bank: memory attention, heads, memory encoder). Only the
memories SAM 2 can still attend to are kept, so memory stays flat however long the video is.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Iterator, Sequence

import torch

from mpg_sam2.model.frame_features import FrameFeatures, image_features
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


@dataclass
class TrackedFrame:
    """What :func:`propagate` yields per frame: one output per tracker, in tracker order."""

    frame_index: int
    outputs: list[FrameOutput]


def propagate(
    sam2: PromptedSAM2,
    sam_images: Callable[[int, int], torch.Tensor],
    trackers: Sequence[ExpressionTracker],
    *,
    image_batch_size: int = 1,
    frame_context: Callable[[], ContextManager] | None = None,
    step_context: Callable[[int], ContextManager] | None = None,
    seconds: dict[str, float] | None = None,
) -> Iterator[TrackedFrame]:
    """Yield one :class:`TrackedFrame` per frame, in order 0..T-1.

    Args:
        sam2: the prompted SAM 2 model (eval mode and no-grad are the caller's choice).
        sam_images: ``(start, stop) -> [stop - start, 3, S, S]``, the normalised SAM 2 input of
            frames ``start .. stop-1``; called once per batch, so frames can be read lazily.
        trackers: one per expression, all over the same T frames; each steps once per frame on
            the shared image features.
        image_batch_size: frames encoded together by the image encoder. Its trunk works per
            frame, so features equal one-at-a-time up to float rounding; 1 is the reference.
        frame_context: entered around each frame's work (and the batch's encoding) and left
            before the yield, e.g. inference mode plus autocast: a generator may be resumed in
            another thread, and the consumer's code must not run inside it.
        step_context: ``k -> context`` entered around tracker ``k``'s step (attention recording).
        seconds: if given, accumulates wall time under ``"sam2_image_encoder"`` and
            ``"sam2_tracking"``.
    """
    if not trackers:
        raise ValueError("propagate needs at least one expression tracker")
    num_frames = trackers[0].prompts.num_frames
    if any(tracker.prompts.num_frames != num_frames for tracker in trackers):
        raise ValueError(f"trackers cover different frame counts: {[t.prompts.num_frames for t in trackers]}")
    if image_batch_size < 1:
        raise ValueError(f"image_batch_size must be at least 1, got {image_batch_size}")
    frame_context = frame_context or contextlib.nullcontext
    step_context = step_context or (lambda k: contextlib.nullcontext())
    timings = seconds if seconds is not None else {}
    batch: FrameFeatures | None = None  # features of frames batch_start .. batch_start + B - 1
    for t in range(num_frames):
        with frame_context():
            if t % image_batch_size == 0:
                start = time.perf_counter()
                batch = image_features(sam2, sam_images(t, min(num_frames, t + image_batch_size)))
                timings["sam2_image_encoder"] = timings.get("sam2_image_encoder", 0.0) + time.perf_counter() - start
            features = batch.select(t % image_batch_size)
            outputs = []
            for k, tracker in enumerate(trackers):
                start = time.perf_counter()
                with step_context(k):
                    outputs.append(tracker.step(features))
                timings["sam2_tracking"] = timings.get("sam2_tracking", 0.0) + time.perf_counter() - start
        yield TrackedFrame(frame_index=t, outputs=outputs)


def _track_frame(
    sam2: PromptedSAM2,
    t: int,
    features: FrameFeatures,
    prompts: ReferringPrompts,
    output_dict: dict[str, dict[int, dict[str, Any]]],
    storage_device: torch.device | str | None,
) -> FrameOutput:
    """One tracking step of frame ``t``; its memory entry goes into ``output_dict``.

    Adapted from ``SAM2Base.track_step``, ``SAM2Base._track_step`` and
    ``SAM2Base._encode_memory_in_output`` (sam2 1.1.0, ``sam2/modeling/sam2_base.py``). What
    differs: the image features come precomputed (:mod:`mpg_sam2.model.frame_features`); the
    heads are :meth:`PromptedSAM2.forward_heads` with this frame's text token, mask prior and
    decoder context instead of SAM 2's ``point_inputs`` / ``mask_inputs``; the object-pointer
    history is gathered for the decoder's historical fusion; the spatial memory is stored in
    bfloat16 on ``storage_device`` (what SAM 2's video predictor does after ``track_step``);
    the memory encoder always runs (``run_mem_encoder=True``), there are no clicks
    (``is_mask_from_pts=False``) and tracking is forward only (``track_in_reverse=False``).
    """
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
