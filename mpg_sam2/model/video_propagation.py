"""The frame loop: SAM 2's memory propagation for one or several expressions at once.

Behaviour reproduced (SPEC §5): frame 0 is the only conditioning frame, propagation runs
forward, every frame decodes with multimask output and keeps the best-IoU mask, frames whose
object score is not positive are gated to -1024, and spatial memories are stored in bfloat16
(also in float32 runs: SAM 2's predictor does that and the released checkpoints were
evaluated with it). Clicked frames become further conditioning frames afterwards, tracked again
in both directions by :mod:`mpg_sam2.model.click_correction` through :meth:`ExpressionTracker.track`.

:func:`propagate` is the one frame loop of the project (the reference runner, the pipeline,
evaluation and training all run it): per frame, SAM 2's image encoder runs once (or once per
batch of frames) and every expression's :class:`ExpressionTracker` takes one step on those
shared features (its own memory bank: memory attention, heads, memory encoder). Only the
memories SAM 2 can still attend to are kept, so memory stays flat however long the video is
(unless a tracker keeps its history for click corrections).
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Iterator, Sequence

import torch

from mpg_sam2.model.frame_features import FrameFeatures, FrameFeatureSource
from mpg_sam2.model.mask_decoder import DecoderContext
from mpg_sam2.model.point_prompt import PointPrompt
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
        keep_history: keep every frame's memory entry (needed to correct the result with
            clicks afterwards, :mod:`mpg_sam2.model.click_correction`); by default only the
            entries SAM 2 can still read are kept.
    """

    def __init__(
        self,
        sam2: PromptedSAM2,
        prompts: ReferringPrompts,
        storage_device: torch.device | str | None = None,
        keep_history: bool = False,
    ) -> None:
        self.sam2 = sam2
        self.prompts = prompts
        self.storage_device = storage_device
        self.keep_history = keep_history
        self.next_frame = 0
        self.output_dict: dict[str, dict[int, dict[str, Any]]] = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
        # Direction each frame was last tracked in (True: in reverse); a clicked frame is
        # re-run in that direction's memory, as SAM 2's video predictor does.
        self.tracked_in_reverse: dict[int, bool] = {}
        # Non-conditioning frames older than this are never read again (spatial memory window
        # and object-pointer window), so they are dropped.
        num_frames = prompts.num_frames
        self._keep = max(sam2.num_maskmem - 1, min(num_frames, sam2.max_obj_ptrs_in_encoder) - 1)

    @property
    def num_frames(self) -> int:
        return self.prompts.num_frames

    @property
    def conditioning_frames(self) -> list[int]:
        return sorted(self.output_dict["cond_frame_outputs"])

    def step(self, features: FrameFeatures) -> FrameOutput:
        """Track the next frame given its image features (frame 0 is the conditioning frame)."""
        t = self.next_frame
        if t >= self.num_frames:
            raise RuntimeError(f"all {self.num_frames} frames of this expression are already tracked")
        out = self.track(t, features, conditioning=t == 0)
        if not self.keep_history:
            self.output_dict["non_cond_frame_outputs"].pop(t - self._keep, None)
        self.next_frame = t + 1
        return out

    def track(
        self,
        t: int,
        features: FrameFeatures,
        *,
        conditioning: bool = False,
        points: PointPrompt | None = None,
        reverse: bool = False,
    ) -> FrameOutput:
        """Track frame ``t`` (in either direction) and store its memory entry.

        A conditioning frame replaces whatever entry ``t`` had; it reads the other memories
        unless there is no other conditioning frame (then it is the initial frame, as frame 0).
        """
        cond, non_cond = self.output_dict["cond_frame_outputs"], self.output_dict["non_cond_frame_outputs"]
        if conditioning:
            cond.pop(t, None)
            non_cond.pop(t, None)
        is_init_cond_frame = conditioning and not cond
        out, entry = _track_frame(
            self.sam2, t, features, self.prompts, self.output_dict, self.storage_device,
            is_init_cond_frame=is_init_cond_frame, points=points, reverse=reverse,
        )
        (cond if conditioning else non_cond)[t] = entry
        self.tracked_in_reverse[t] = reverse
        return out


@dataclass
class TrackedFrame:
    """What :func:`propagate` yields per frame: one output per tracker, in tracker order."""

    frame_index: int
    outputs: list[FrameOutput]


def propagate(
    features: FrameFeatureSource,
    trackers: Sequence[ExpressionTracker],
    *,
    frame_context: Callable[[], ContextManager] | None = None,
    step_context: Callable[[int], ContextManager] | None = None,
    seconds: dict[str, float] | None = None,
) -> Iterator[TrackedFrame]:
    """Yield one :class:`TrackedFrame` per frame, in order 0..T-1.

    Args:
        features: the video's image features by frame (encoded in batches, once per frame).
        trackers: one per expression, all over the same T frames; each steps once per frame on
            the shared image features.
        frame_context: entered around each frame's work (and the batch's encoding) and left
            before the yield, e.g. inference mode: a generator may be resumed in
            another thread, and the consumer's code must not run inside it.
        step_context: ``k -> context`` entered around tracker ``k``'s step (attention recording).
        seconds: if given, accumulates the trackers' wall time under ``"sam2_tracking"`` (the
            feature source times the encoder).
    """
    if not trackers:
        raise ValueError("propagate needs at least one expression tracker")
    num_frames = features.num_frames
    if any(tracker.num_frames != num_frames for tracker in trackers):
        raise ValueError(f"trackers cover {[t.num_frames for t in trackers]} frames, the video {num_frames}")
    frame_context = frame_context or contextlib.nullcontext
    step_context = step_context or (lambda k: contextlib.nullcontext())
    timings = seconds if seconds is not None else {}
    for t in range(num_frames):
        with frame_context():
            frame_features = features(t)
            outputs = []
            for k, tracker in enumerate(trackers):
                start = time.perf_counter()
                with step_context(k):
                    outputs.append(tracker.step(frame_features))
                timings["sam2_tracking"] = timings.get("sam2_tracking", 0.0) + time.perf_counter() - start
        yield TrackedFrame(frame_index=t, outputs=outputs)


def _track_frame(
    sam2: PromptedSAM2,
    t: int,
    features: FrameFeatures,
    prompts: ReferringPrompts,
    output_dict: dict[str, dict[int, dict[str, Any]]],
    storage_device: torch.device | str | None,
    *,
    is_init_cond_frame: bool,
    points: PointPrompt | None = None,
    reverse: bool = False,
) -> tuple[FrameOutput, dict[str, Any]]:
    """One tracking step of frame ``t``: its output and its memory entry (not stored here).

    Adapted from ``SAM2Base.track_step``, ``SAM2Base._track_step`` and
    ``SAM2Base._encode_memory_in_output`` (sam2 1.1.0, ``sam2/modeling/sam2_base.py``). What
    differs: the image features come precomputed (:mod:`mpg_sam2.model.frame_features`); the
    heads are :meth:`PromptedSAM2.forward_heads` with this frame's text token, mask prior,
    decoder context and clicks (if any) instead of SAM 2's ``point_inputs`` / ``mask_inputs``;
    the object-pointer history is gathered for the decoder's historical fusion; the spatial
    memory is stored in bfloat16 on ``storage_device`` (what SAM 2's video predictor does
    after ``track_step``); the memory encoder always runs (``run_mem_encoder=True``).
    """
    vision_feats, vision_pos, feat_sizes = features.vision_feats, features.vision_pos, features.feat_sizes
    pix_feat = sam2._prepare_memory_conditioned_features(
        frame_idx=t,
        is_init_cond_frame=is_init_cond_frame,
        current_vision_feats=vision_feats[-1:],
        current_vision_pos_embeds=vision_pos[-1:],
        feat_sizes=feat_sizes[-1:],
        output_dict=output_dict,
        num_frames=prompts.num_frames,
        track_in_reverse=reverse,
    )
    pointers, pointer_pos = sam2.object_pointer_history(t, output_dict, prompts.num_frames, track_in_reverse=reverse)
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
        points=points,
    )
    # SAM 2's rule: multimask output with at most one click (and on tracked frames only if
    # multimask_output_for_tracking); two or more clicks give one unambiguous mask.
    point_inputs = None if points is None else {"point_labels": points.labels}
    heads = sam2.forward_heads(
        pix_feat, features.high_res, frame_prompts, multimask_output=sam2._use_multimask(is_init_cond_frame, point_inputs)
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
            is_mask_from_pts=points is not None,
        )
        entry["maskmem_features"] = memory_features.to(device=storage_device, dtype=MEMORY_STORAGE_DTYPE)
        entry["maskmem_pos_enc"] = [p.to(storage_device) for p in memory_pos]
    return FrameOutput(frame_index=t, heads=heads, memory_features=memory_features), entry
