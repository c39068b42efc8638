"""SAM 2 image features of video frames: computed once per frame, shared by every expression.

The image encoder (Hiera + FPN, and the decoder's ``conv_s0`` / ``conv_s1`` on the two
high-resolution levels) is the only part of a tracking step that does not depend on the
sentence, so the frame loop (:mod:`mpg_sam2.model.video_propagation`) runs it once per frame
(or once per batch of frames) and hands the same :class:`FrameFeatures` to every expression's
tracker.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch

from mpg_sam2.model.prompted_sam2 import PromptedSAM2


@dataclass
class FrameFeatures:
    """SAM 2 image features of B frames (B = 1 on the reference path)."""

    vision_feats: list[torch.Tensor]  # per level [HW, B, C]
    vision_pos: list[torch.Tensor]  # per level [HW, B, C]
    feat_sizes: list[tuple[int, int]]
    high_res: list[torch.Tensor] | None  # levels 0 and 1 as [B, C, H, W] (decoder upscaling path)

    @property
    def batch_size(self) -> int:
        return self.vision_feats[-1].shape[1]

    def to(self, device: torch.device | str) -> "FrameFeatures":
        move = lambda xs: [x.to(device) for x in xs]  # noqa: E731
        high_res = None if self.high_res is None else move(self.high_res)
        return FrameFeatures(move(self.vision_feats), move(self.vision_pos), self.feat_sizes, high_res)

    def select(self, index: int) -> "FrameFeatures":
        """The features of batch entry ``index`` (one frame of a batch encoded together):
        [HW, 1, C] per level and [1, C, H, W] for the high-resolution levels, contiguous as a
        one-frame encoding gives them (SAM 2 reshapes them with ``view``)."""
        if self.batch_size == 1:
            return self
        pick = slice(index, index + 1)
        return FrameFeatures(
            vision_feats=[x[:, pick].contiguous() for x in self.vision_feats],
            vision_pos=[x[:, pick].contiguous() for x in self.vision_pos],
            feat_sizes=self.feat_sizes,
            high_res=None if self.high_res is None else [x[pick].contiguous() for x in self.high_res],
        )


def image_features(sam2: PromptedSAM2, images: torch.Tensor) -> FrameFeatures:
    """Hiera + FPN (+ the decoder's conv_s0 / conv_s1) on ``images [B, 3, S, S]``.

    Runs SAM 2's own ``SAM2Base.forward_image`` and ``SAM2Base._prepare_backbone_features``.
    The reshape of the high-resolution levels to ``[B, C, H, W]`` is adapted from
    ``SAM2Base._track_step`` (sam2 1.1.0, ``sam2/modeling/sam2_base.py``), where it runs inside
    every tracking step; here it runs once per frame.
    """
    backbone_out = sam2.forward_image(images)
    _, vision_feats, vision_pos, feat_sizes = sam2._prepare_backbone_features(backbone_out)
    high_res = None
    if sam2.use_high_res_features_in_sam:
        high_res = [
            x.permute(1, 2, 0).reshape(x.shape[1], x.shape[2], *size)
            for x, size in zip(vision_feats[:-1], feat_sizes[:-1])
        ]
    return FrameFeatures(vision_feats, vision_pos, feat_sizes, high_res)


class FrameFeatureSource:
    """The image features of frame ``t`` of one video, encoded in aligned batches on demand.

    Frames ``[k * batch_size, (k + 1) * batch_size)`` are encoded together the first time one
    of them is asked for, so forward and reverse passes see the same batches (hence the same
    float rounding). With ``keep`` every frame's features stay after use, so a later pass
    (click corrections) never runs the image encoder again; otherwise only the current batch
    is held.

    Args:
        sam2: the prompted SAM 2 model.
        sam_images: ``(start, stop) -> [stop - start, 3, S, S]`` normalised SAM 2 input.
        num_frames: T.
        batch_size: frames per image-encoder call (1: the reference path).
        keep: keep every frame's features (on ``storage_device`` if given; about 17 MB per
            frame for the released Hiera-L at 1024, far less for the small presets).
        seconds: if given, encoder wall time accumulates under ``"sam2_image_encoder"``.
    """

    def __init__(
        self,
        sam2: PromptedSAM2,
        sam_images: Callable[[int, int], torch.Tensor],
        num_frames: int,
        *,
        batch_size: int = 1,
        keep: bool = False,
        storage_device: torch.device | str | None = None,
        seconds: dict[str, float] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"image_batch_size must be at least 1, got {batch_size}")
        self.sam2 = sam2
        self.sam_images = sam_images
        self.num_frames = num_frames
        self.batch_size = batch_size
        self.keep = keep
        self.storage_device = storage_device
        self.seconds = seconds if seconds is not None else {}
        self._batch_start = -1
        self._batch: FrameFeatures | None = None
        self._kept: dict[int, FrameFeatures] = {}

    def __call__(self, t: int) -> FrameFeatures:
        if not 0 <= t < self.num_frames:
            raise IndexError(f"frame {t} is outside the video's {self.num_frames} frames")
        if t in self._kept:
            kept = self._kept[t]
            return kept if self.storage_device is None else kept.to(self.sam2.device)
        start = t - t % self.batch_size
        if self._batch is None or start != self._batch_start:
            began = time.perf_counter()
            self._batch = image_features(self.sam2, self.sam_images(start, min(self.num_frames, start + self.batch_size)))
            self._batch_start = start
            self.seconds["sam2_image_encoder"] = self.seconds.get("sam2_image_encoder", 0.0) + time.perf_counter() - began
        features = self._batch.select(t - start)
        if self.keep:
            self._kept[t] = features if self.storage_device is None else features.to(self.storage_device)
        return features
