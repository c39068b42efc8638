"""SAM 2's mask decoder with the global-historical aggregator inside it (SPEC §6.4-6.6).

A subclass of ``sam2.modeling.sam.mask_decoder.MaskDecoder``: the two-way transformer, the
upscaling path and the heads are SAM 2's own modules (same parameter names, so SAM 2 keys
load unchanged). What changes is ``predict_masks``: before the two-way transformer the image
embedding goes through the pixel-level fusion and the four mask tokens through the
object-level fusions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from sam2.modeling.sam.mask_decoder import MaskDecoder

from mpg_sam2.model.global_historical_aggregator import GlobalHistoricalAggregator


@dataclass
class DecoderContext:
    """What one tracking step hands the decoder besides SAM 2's own inputs (batch B)."""

    global_context: torch.Tensor  # [B, T*N, D]: V_g, keys of the global object-level fusion
    global_patches: torch.Tensor  # [B, T*(g/p)^2, D]: V_g compressed, pixel-level keys
    text_features: torch.Tensor  # [B, L, D]: the current frame's projected caption tokens
    pointers: torch.Tensor | None = None  # [B, P, D]: object pointers of earlier frames
    pointer_pos: torch.Tensor | None = None  # [B, P, D]: sine code of their frame distance


class MPGMaskDecoder(MaskDecoder):
    """``MaskDecoder`` plus ``aggregator``; ``forward`` takes a :class:`DecoderContext`."""

    def __init__(self, *, aggregator: GlobalHistoricalAggregator, **mask_decoder_kwargs: Any) -> None:
        super().__init__(**mask_decoder_kwargs)
        if not self.pred_obj_scores:
            raise ValueError("MPG-SAM 2 needs SAM 2's object-score token (pred_obj_scores=True)")
        self.aggregator = aggregator

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool,
        repeat_image: bool,
        high_res_features: list[torch.Tensor] | None = None,
        context: DecoderContext | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """SAM 2's decoder contract (masks, IoU, output tokens, object score) with the context.

        With ``multimask_output`` the three multimask outputs (and their tokens, used for the
        object pointer) are returned, otherwise the single-mask output.

        Adapted from ``MaskDecoder.forward`` (sam2 1.1.0, ``sam2/modeling/sam/mask_decoder.py``):
        the same output selection, with the context passed on to :meth:`predict_masks`.
        """
        if context is None:
            raise RuntimeError(
                "the MPG-SAM 2 mask decoder needs the video/text context; "
                "run it through PromptedSAM2.forward_heads, not SAM 2's own track_step"
            )
        masks, iou_pred, mask_tokens_out, object_score_logits = self.predict_masks(
            image_embeddings,
            image_pe,
            sparse_prompt_embeddings,
            dense_prompt_embeddings,
            repeat_image=repeat_image,
            high_res_features=high_res_features,
            context=context,
        )
        if multimask_output:
            masks, iou_pred = masks[:, 1:], iou_pred[:, 1:]
        elif self.dynamic_multimask_via_stability and not self.training:
            masks, iou_pred = self._dynamic_multimask_via_stability(masks, iou_pred)
        else:
            masks, iou_pred = masks[:, :1], iou_pred[:, :1]
        if multimask_output and self.use_multimask_token_for_obj_ptr:
            tokens_out = mask_tokens_out[:, 1:]
        else:
            tokens_out = mask_tokens_out[:, :1]
        return masks, iou_pred, tokens_out, object_score_logits

    def predict_masks(
        self,
        image_embeddings: torch.Tensor,
        image_pe: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        repeat_image: bool = False,
        high_res_features: list[torch.Tensor] | None = None,
        *,
        context: DecoderContext,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns mask logits ``[B, 4, 4h, 4w]``, IoU ``[B, 4]``, mask tokens ``[B, 4, D]``
        (after the two-way transformer) and object-score logits ``[B, 1]``.

        Adapted from ``MaskDecoder.predict_masks`` (sam2 1.1.0,
        ``sam2/modeling/sam/mask_decoder.py``): the aggregator's pixel-level fusion replaces the
        image embedding and its object-level fusions rewrite the four mask tokens before the
        two-way transformer; the rest (token order, upscaling path, hypernetworks, heads) is
        SAM 2's computation on SAM 2's modules.
        """
        if repeat_image:
            raise ValueError("MPG-SAM 2 decodes one prompt set per image (repeat_image=False)")
        batch = sparse_prompt_embeddings.shape[0]
        # The aggregator replaces the image embedding before the dense prompt is added.
        src = self.aggregator.fuse_pixels(
            image_embeddings, image_pe, context.global_patches, context.text_features
        )
        mask_tokens = self.mask_tokens.weight.unsqueeze(0).expand(batch, -1, -1)
        mask_tokens = self.aggregator.fuse_mask_tokens(
            mask_tokens, context.global_context, context.pointers, context.pointer_pos
        )
        # [object score, IoU, 4 fused mask tokens, sparse prompts]; only the mask tokens fuse.
        fixed_tokens = torch.cat([self.obj_score_token.weight, self.iou_token.weight], dim=0)
        tokens = torch.cat(
            [fixed_tokens.unsqueeze(0).expand(batch, -1, -1), mask_tokens, sparse_prompt_embeddings], dim=1
        )
        src = src + dense_prompt_embeddings
        pos_src = image_pe.expand(batch, -1, -1, -1)
        b, c, h, w = src.shape
        hs, src = self.transformer(src, pos_src, tokens)
        object_token_out, iou_token_out = hs[:, 0], hs[:, 1]
        mask_tokens_out = hs[:, 2 : 2 + self.num_mask_tokens]

        src = src.transpose(1, 2).reshape(b, c, h, w)
        upscale1, norm1, act1, upscale2, act2 = self.output_upscaling
        if self.use_high_res_features:
            feat_s0, feat_s1 = high_res_features
            upscaled = act2(upscale2(act1(norm1(upscale1(src) + feat_s1))) + feat_s0)
        else:
            upscaled = act2(upscale2(act1(norm1(upscale1(src)))))
        hyper_in = torch.stack(
            [mlp(mask_tokens_out[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )
        b, c, h, w = upscaled.shape
        masks = (hyper_in @ upscaled.view(b, c, h * w)).view(b, -1, h, w)
        iou_pred = self.iou_prediction_head(iou_token_out)
        object_score_logits = self.pred_obj_score_head(object_token_out)
        return masks, iou_pred, mask_tokens_out, object_score_logits
