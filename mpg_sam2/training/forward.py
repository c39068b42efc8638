"""The training forward of a batch of clips: the inference path with gradients, then the loss.

Each clip runs exactly as at inference (SPEC §11: the authors train batch-size-1 clips through
the same SAM 2 video propagation): BEiT-3 on every (frame, caption) pair, the mask prior
generator, then SAM 2 from frame 0 forward with its memory bank, multimask output and best-IoU
selection. The prediction of frame ``t`` is the selected mask's logits upsampled to the SAM 2
input size ``[S, S]`` (1024 for the released models), after the no-object gate unless the
object-score loss is on (see :class:`~mpg_sam2.training.losses.LossWeights`). Clips of one video
drawn together (``TrainConfig.by_video``) share SAM 2's image features, as inference shares them
among a video's expressions; each still tracks with its own memory.

:class:`TrainingForward` is the ``nn.Module`` that ``DistributedDataParallel`` wraps: its
``forward`` returns the loss terms as a dict of tensors.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sam2.modeling.sam2_base import NO_OBJ_SCORE

from mpg_sam2.model.frame_features import FrameFeatureSource
from mpg_sam2.model.mpg_sam2 import MPGSAM2
from mpg_sam2.model.point_prompt import PointPrompt
from mpg_sam2.model.prompted_sam2 import HeadsOutput
from mpg_sam2.model.video_propagation import ExpressionTracker, propagate
from mpg_sam2.training.datasets import TrainingClip
from mpg_sam2.training.losses import ClipPrediction, LossWeights, lowest_loss_index, referring_loss
from mpg_sam2.training.click_training import ClickTraining, plan_clicks, sample_corrective_click

__all__ = ["TrainingForward", "frame_sharing_runs", "predict_clip", "predict_shared_frames"]


def _frame_logits(heads: HeadsOutput, lowres: torch.Tensor, gated: bool, size: torch.Size) -> torch.Tensor:
    """One frame's ``[1, 1, h, w]`` decoder logits at the SAM 2 input size ``[S, S]``; with
    ``gated`` the no-object gate applies (as :meth:`PromptedSAM2.forward_heads` does to its
    chosen mask, so for that mask this equals ``heads.highres_logits``)."""
    if gated:
        lowres = torch.where(heads.object_score_logits[:, :, None, None] > 0, lowres, NO_OBJ_SCORE)
    return F.interpolate(lowres, size=size, mode="bilinear", align_corners=False)[0, 0]


def predict_clip(
    model: MPGSAM2,
    clip: TrainingClip,
    autocast_dtype: torch.dtype | None = None,
    gated: bool = True,
    clicks: ClickTraining = ClickTraining(),
    choose_by_loss: LossWeights | None = None,
) -> ClipPrediction:
    """Logits ``[T, S, S]`` (float32), object scores and sentence scores of one clip on ``model.device``.

    With ``clicks`` enabled, the clip's planned frame (if any) is corrected with simulated clicks
    right after it is tracked (:mod:`mpg_sam2.training.click_training`); the loop continues on
    the corrected memory, and that frame's prediction is the corrected one.

    The prediction of a frame is the decoder output inference keeps (highest predicted IoU);
    with ``choose_by_loss`` it is the output with the lowest loss under these weights, and every
    output is kept for the IoU-head loss (:attr:`LossWeights.mask_choice`). Tracking itself
    always follows the inference choice.
    """
    with model.autocast(autocast_dtype):
        prompts, prior = model.encode_expression(clip.beit_pixels, clip.input_ids, clip.attention_mask)
        # text_similarity_head reads each frame's projected <s> token (SPEC §11).
        sentence_scores = model.text_similarity_head(prompts.text_features[:, 0, 0]).float()[:, 0]
    plan = plan_clicks(clicks, clip.click_seed, clip.num_frames)
    tracker = ExpressionTracker(model.sam2, prompts)
    features = FrameFeatureSource(model.sam2, lambda start, stop: clip.sam_pixels[start:stop], clip.num_frames, keep=plan is not None)
    logits, scores, candidates, predicted_ious = [], [], [], []
    for frame in propagate(features, [tracker], frame_context=lambda: model.autocast(autocast_dtype)):
        out = frame.outputs[0]
        if plan is not None and frame.frame_index == plan.frame:
            # Between two frames of the loop: the next frame reads the corrected memory.
            t, chosen = plan.frame, []
            for _ in range(plan.clicks):
                click = sample_corrective_click(out.heads.highres_logits[0, 0], clip.targets[t], plan.generator)
                if click is None:
                    break
                chosen.append(click)
                with model.autocast(autocast_dtype):
                    out = tracker.track(t, features(t), conditioning=True, points=PointPrompt.from_points(chosen, device=model.device))
        heads, t = out.heads, frame.frame_index
        lowres = heads.lowres_logits_before  # [1, 1, h, w]: the output inference keeps (no host sync)
        if choose_by_loss is not None:
            index = lowest_loss_index(heads.multimask_logits[0], clip.targets[t], choose_by_loss)
            lowres = heads.multimask_logits[:, index : index + 1]
            candidates.append(heads.multimask_logits[0])
            predicted_ious.append(heads.ious[0])
        logits.append(_frame_logits(heads, lowres, gated, clip.targets.shape[-2:]))
        scores.append(heads.object_score_logits[0, 0])
    kept = choose_by_loss is not None
    return ClipPrediction(logits=torch.stack(logits).float(), object_score_logits=torch.stack(scores).float(),
                          sentence_scores=sentence_scores, prior_logits=prior.prior_logits.float(),
                          mask_candidates=candidates if kept else None, predicted_ious=predicted_ious if kept else None)


def predict_shared_frames(
    model: MPGSAM2, clips: list[TrainingClip], autocast_dtype: torch.dtype | None = None, gated: bool = True
) -> list[ClipPrediction]:
    """:func:`predict_clip` of each of ``clips``, which show the same frames (one video's captions
    drawn together, :func:`frame_sharing_runs`): SAM 2's image encoder runs once per frame for all
    of them and every caption tracks on those features with its own memory, as inference does
    for a video's expressions. Each prediction equals its clip's own :func:`predict_clip` (no
    clicks, the inference mask choice); the encoder's gradient sums over the captions."""
    with model.autocast(autocast_dtype):
        encoded = [model.encode_expression(c.beit_pixels, c.input_ids, c.attention_mask) for c in clips]
        # text_similarity_head reads each frame's projected <s> token (SPEC §11).
        sentence_scores = [model.text_similarity_head(prompts.text_features[:, 0, 0]).float()[:, 0] for prompts, _ in encoded]
    trackers = [ExpressionTracker(model.sam2, prompts) for prompts, _ in encoded]
    pixels = clips[0].sam_pixels
    features = FrameFeatureSource(model.sam2, lambda start, stop: pixels[start:stop], clips[0].num_frames)
    logits: list[list[torch.Tensor]] = [[] for _ in clips]
    scores: list[list[torch.Tensor]] = [[] for _ in clips]
    for frame in propagate(features, trackers, frame_context=lambda: model.autocast(autocast_dtype)):
        for k, out in enumerate(frame.outputs):
            heads = out.heads
            logits[k].append(_frame_logits(heads, heads.lowres_logits_before, gated, clips[k].targets.shape[-2:]))
            scores[k].append(heads.object_score_logits[0, 0])
    return [ClipPrediction(logits=torch.stack(logits[k]).float(), object_score_logits=torch.stack(scores[k]).float(),
                           sentence_scores=sentence_scores[k], prior_logits=prior.prior_logits.float())
            for k, (_, prior) in enumerate(encoded)]


def frame_sharing_runs(clips: list[TrainingClip]) -> list[list[int]]:
    """Indices of ``clips`` split into runs of neighbours that show the same frames (the same
    video, frames and augmentation: a group of :class:`~mpg_sam2.training.datasets.ClipGroups`),
    in order. Pixels are compared, not trusted from the keys: a run shares image features."""
    runs: list[list[int]] = []
    for index, clip in enumerate(clips):
        if runs:
            first = clips[runs[-1][0]]
            same = (first.key.split("/")[0] == clip.key.split("/")[0] and first.frame_indices == clip.frame_indices
                    and first.sam_pixels.shape == clip.sam_pixels.shape and torch.equal(first.sam_pixels, clip.sam_pixels))
            if same:
                runs[-1].append(index)
                continue
        runs.append([index])
    return runs


class TrainingForward(nn.Module):
    """Wraps the model for training; ``forward(clips, num_valid) -> {"loss", "focal", ...}``.

    Args:
        model: the MPG-SAM 2 model (its parameters are this module's, under ``model.``).
        weights: loss weights.
        autocast_dtype: ``torch.bfloat16`` on CUDA (the authors train in bf16), None for float32.
        clicks: simulated corrective clicks (off by default, as in the authors' training).
    """

    def __init__(
        self,
        model: MPGSAM2,
        weights: LossWeights = LossWeights(),
        autocast_dtype: torch.dtype | None = None,
        clicks: ClickTraining = ClickTraining(),
    ) -> None:
        super().__init__()
        self.model = model
        self.weights = weights
        self.autocast_dtype = autocast_dtype
        self.clicks = clicks

    def forward(self, clips: list[TrainingClip], num_valid: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        gated = self.weights.object_score <= 0
        device = self.model.device
        clips = [c.to(device) for c in clips]
        choose_by_loss = self.weights if self.weights.mask_choice > 0 else None
        if self.clicks.enabled or choose_by_loss is not None:
            # Clicks and the lowest-loss choice are per clip: every clip on its own features.
            predictions = [predict_clip(self.model, c, self.autocast_dtype, gated=gated, clicks=self.clicks,
                                        choose_by_loss=choose_by_loss) for c in clips]
        else:
            predictions = [None] * len(clips)
            for run in frame_sharing_runs(clips):
                if len(run) == 1:
                    predictions[run[0]] = predict_clip(self.model, clips[run[0]], self.autocast_dtype, gated=gated)
                    continue
                shared = predict_shared_frames(self.model, [clips[i] for i in run], self.autocast_dtype, gated=gated)
                for i, prediction in zip(run, shared):
                    predictions[i] = prediction
        return referring_loss(predictions, [c.targets for c in clips], self.weights, num_valid).as_dict()
