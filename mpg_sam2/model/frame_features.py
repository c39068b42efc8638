"""SAM 2 image features of video frames: computed once per frame, shared by every expression.

The image encoder (Hiera + FPN, and the decoder's ``conv_s0`` / ``conv_s1`` on the two
high-resolution levels) is the only part of a tracking step that does not depend on the
sentence, so the frame loop (:mod:`mpg_sam2.model.video_propagation`) runs it once per frame
(or once per batch of frames) and hands the same :class:`FrameFeatures` to every expression's
tracker.
"""
from __future__ import annotations

from dataclasses import dataclass

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
