"""SAM 2 with a text (sparse) and a mask-prior (dense) prompt (paper §3.5, SPEC §5-6).

``PromptedSAM2`` subclasses ``sam2.modeling.sam2_base.SAM2Base``. It keeps SAM 2's image
encoder, memory attention, memory encoder and prompt encoder untouched and reuses SAM 2's own
methods for image features, memory conditioning and memory encoding. It changes:

* ``_build_sam_heads``: the mask decoder is :class:`MPGMaskDecoder` (same attribute name
  ``sam_mask_decoder``, so SAM 2 checkpoint keys still match);
* :meth:`forward_heads` (new, in place of SAM 2's ``_forward_sam_heads``): the prompts are
  two learned padding points plus the text token (or a frame's clicks, then one padding
  point, plus the text token), and the mask prior as a dense prompt; the decoder receives the
  language/video context as one :class:`DecoderContext`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from sam2.modeling.sam2_base import NO_OBJ_SCORE, SAM2Base
from sam2.modeling.sam2_utils import get_1d_sine_pe, select_closest_cond_frames

from mpg_sam2.config import AggregatorConfig
from mpg_sam2.model.global_historical_aggregator import GlobalHistoricalAggregator
from mpg_sam2.model.mask_decoder import DecoderContext, MPGMaskDecoder
from mpg_sam2.model.point_prompt import PointPrompt


@dataclass
class FramePrompts:
    """The prompts of one frame (batch B = number of expressions decoded together)."""

    text_token: torch.Tensor  # [B, 1, D]: sparse prompt from BEiT-3's class token
    mask_prior: torch.Tensor  # [B, 1, g, g]: prior probabilities, the dense prompt
    decoder_context: DecoderContext
    points: PointPrompt | None = None  # corrective clicks on this frame (none on the paper's path)


@dataclass
class HeadsOutput:
    """One frame's decoder outputs after SAM 2's mask selection and no-object gating."""

    multimask_logits: torch.Tensor  # [B, M, 4h, 4w] before gating (M = 3 with multimask)
    ious: torch.Tensor  # [B, M]
    best_mask_index: torch.Tensor  # [B] argmax of ious (first on ties)
    lowres_logits_before: torch.Tensor  # [B, 1, 4h, 4w]: selected mask before gating
    lowres_logits: torch.Tensor  # [B, 1, 4h, 4w]: -1024 everywhere when no object
    highres_logits: torch.Tensor  # [B, 1, S, S]: bilinear upsampling to the SAM input size
    object_score_logits: torch.Tensor  # [B, 1]
    obj_ptr: torch.Tensor  # [B, D]: no_obj_ptr on frames without object


class PromptedSAM2(SAM2Base):
    """SAM 2 driven by MPG-SAM 2's prompts. Extra keyword arguments:

    Args:
        aggregator_config: widths of the global-historical aggregator.
        dense_mask_prompt: False feeds SAM 2's "no mask" embedding instead of the mask prior
          (the paper's "w/o MPG" ablation).
        click_prior_radius: clicks also paint disks of this radius (prior cells) into their
          frame's prior (:meth:`PointPrompt.paint_prior`); 0: they do not (SAM 2, the paper).
        global_grid_size: side ``g`` of each frame's global-context grid (BEiT-3's patch grid).
        **sam2_kwargs: everything ``SAM2Base`` takes (from the SAM 2 YAML file).
    """

    def __init__(
        self,
        *,
        aggregator_config: AggregatorConfig,
        global_grid_size: int,
        dense_mask_prompt: bool = True,
        click_prior_radius: float = 0.0,
        **sam2_kwargs: Any,
    ) -> None:
        # _build_sam_heads runs inside SAM2Base.__init__ and needs these two.
        self._aggregator_config = aggregator_config
        self._global_grid_size = global_grid_size
        super().__init__(**sam2_kwargs)
        self.click_prior_radius = float(click_prior_radius)
        self.dense_mask_prompt = dense_mask_prompt
        _refuse_unsupported_options(self)
        self.memory_attention.register_forward_pre_hook(_memory_in_compute_dtype, with_kwargs=True)

    def _build_sam_heads(self) -> None:
        super()._build_sam_heads()
        base = self.sam_mask_decoder
        dim = self.sam_prompt_embed_dim
        # The same decoder SAM 2 just built (its two-way transformer is reused as is, its head
        # sizes read from it), plus the aggregator; the attribute name stays sam_mask_decoder so
        # SAM 2 checkpoint keys still match.
        self.sam_mask_decoder = MPGMaskDecoder(
            aggregator=GlobalHistoricalAggregator(dim, self._global_grid_size, self._aggregator_config),
            num_multimask_outputs=base.num_multimask_outputs,
            transformer=base.transformer,
            transformer_dim=dim,
            iou_head_depth=base.iou_prediction_head.num_layers,
            iou_head_hidden_dim=base.iou_prediction_head.layers[0].out_features,
            use_high_res_features=self.use_high_res_features_in_sam,
            iou_prediction_use_sigmoid=self.iou_prediction_use_sigmoid,
            pred_obj_scores=self.pred_obj_scores,
            pred_obj_scores_mlp=self.pred_obj_scores_mlp,
            use_multimask_token_for_obj_ptr=self.use_multimask_token_for_obj_ptr,
            **(self.sam_mask_decoder_extra_args or {}),
        )

    def forward_heads(
        self,
        backbone_features: torch.Tensor,
        high_res_features: list[torch.Tensor] | None,
        prompts: FramePrompts,
        multimask_output: bool,
    ) -> HeadsOutput:
        """Prompt encoder + MPG mask decoder + SAM 2's selection and no-object handling.

        backbone_features ``[B, D, h, w]`` is the memory-conditioned image embedding.

        Adapted from ``SAM2Base._forward_sam_heads`` (sam2 1.1.0, ``sam2/modeling/sam2_base.py``).
        What differs: the sparse prompt is SAM 2's points (its dummy point when there are no
        clicks) plus the text token;
        the dense prompt is the mask prior (or "no mask" for the w/o-MPG ablation); the decoder
        gets a :class:`DecoderContext`; the no-object gate is applied to the selected mask only
        (same values); the outputs are one typed :class:`HeadsOutput`. ``soft_no_obj_ptr`` is
        refused at construction (see :func:`_refuse_unsupported_options`).
        """
        batch, device = backbone_features.shape[0], backbone_features.device
        if prompts.points is not None:
            coords, labels = prompts.points.coords.float(), prompts.points.labels.int()
        else:
            # No clicks: SAM 2 inserts one dummy point (label -1) and the prompt encoder pads a
            # second; both become the learned not-a-point embedding. The authors keep them.
            coords = torch.zeros(batch, 1, 2, device=device)
            labels = -torch.ones(batch, 1, dtype=torch.int32, device=device)
        # The prior stays probabilities (not logits) and goes through SAM 2's mask
        # downscaler at the mask-input size; it is never used as the output mask.
        mask_input = None
        if self.dense_mask_prompt:
            prior = prompts.mask_prior
            if prompts.points is not None and self.click_prior_radius > 0:
                prior = prompts.points.paint_prior(prior, self.image_size, self.click_prior_radius)
            mask_input = F.interpolate(
                prior.float(),
                size=self.sam_prompt_encoder.mask_input_size,
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
        sparse, dense = self.sam_prompt_encoder(points=(coords, labels), boxes=None, masks=mask_input)
        sparse = torch.cat([sparse, prompts.text_token.to(sparse.dtype)], dim=1)
        masks, ious, tokens, object_score_logits = self.sam_mask_decoder(
            image_embeddings=backbone_features,
            image_pe=self.sam_prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask_output,
            repeat_image=False,
            high_res_features=high_res_features,
            context=prompts.decoder_context,
        )
        masks, ious, object_score_logits = masks.float(), ious.float(), object_score_logits.float()
        rows = torch.arange(batch, device=device)
        best = ious.argmax(dim=-1) if multimask_output else torch.zeros(batch, dtype=torch.long, device=device)
        lowres_before = masks[rows, best].unsqueeze(1)
        is_object = object_score_logits > 0  # [B, 1]
        # Hard gate, as SAM 2: frames without the object get a constant -1024 mask.
        lowres = torch.where(is_object[:, :, None, None], lowres_before, NO_OBJ_SCORE)
        highres = F.interpolate(lowres, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        token = tokens[rows, best] if tokens.shape[1] > 1 else tokens[:, 0]
        obj_ptr = self.obj_ptr_proj(token)
        present = is_object.to(obj_ptr.dtype)
        if self.fixed_no_obj_ptr:
            obj_ptr = present * obj_ptr
        obj_ptr = obj_ptr + (1 - present) * self.no_obj_ptr
        return HeadsOutput(
            multimask_logits=masks,
            ious=ious,
            best_mask_index=best,
            lowres_logits_before=lowres_before,
            lowres_logits=lowres,
            highres_logits=highres,
            object_score_logits=object_score_logits,
            obj_ptr=obj_ptr,
        )

    def object_pointer_history(
        self,
        frame_idx: int,
        output_dict: dict[str, dict[int, dict[str, Any]]],
        num_frames: int,
        track_in_reverse: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor] | tuple[None, None]:
        """Pointers and their distance codes for the historical object-level fusion.

        The same pointers, in the same order, as SAM 2's memory attention uses: the selected
        conditioning frames first (at most ``max_cond_frames_in_attn``, the closest; in eval
        mode only those already passed when ``only_obj_ptrs_in_the_past_for_eval``), then
        the frames before ``frame_idx`` (after it, when tracking in reverse), nearest first, up
        to ``min(T, max_obj_ptrs_in_encoder) - 1`` steps away. Here each stays one ``D``-wide
        token whose key carries the sine code of ``distance / (min(T, 16) - 1)`` (no
        projection, SPEC §6.5); a conditioning frame's distance is signed as SAM 2 signs it.
        Returns ``[B, P, D]`` twice, or ``(None, None)`` when there is no such frame.

        Adapted from the object-pointer part of ``SAM2Base._prepare_memory_conditioned_features``
        (sam2 1.1.0, ``sam2/modeling/sam2_base.py``).
        """
        max_ptrs = min(num_frames, self.max_obj_ptrs_in_encoder)
        direction = -1 if track_in_reverse else 1  # SAM 2's tpos_sign_mul
        selected, unselected = select_closest_cond_frames(
            frame_idx, output_dict["cond_frame_outputs"], self.max_cond_frames_in_attn
        )
        if not self.training and self.only_obj_ptrs_in_the_past_for_eval:
            selected = {t: out for t, out in selected.items() if (frame_idx - t) * direction >= 0}
        signed = self.use_signed_tpos_enc_to_obj_ptrs
        entries = [((frame_idx - t) * direction if signed else abs(frame_idx - t), out["obj_ptr"]) for t, out in selected.items()]
        for distance in range(1, max_ptrs):
            t = frame_idx - distance * direction
            if not 0 <= t < num_frames:
                break
            out = output_dict["non_cond_frame_outputs"].get(t, unselected.get(t))
            if out is not None:
                entries.append((distance, out["obj_ptr"]))
        if not entries:  # the conditioning frame itself
            return None, None
        distances, ptrs = zip(*entries)
        pointers = torch.stack(ptrs, dim=1)  # [B, P, D]
        steps = torch.tensor(distances, device=pointers.device)
        pos = get_1d_sine_pe(steps / (max_ptrs - 1), dim=pointers.shape[-1])
        return pointers, pos.unsqueeze(0).expand(pointers.shape[0], -1, -1).to(pointers.dtype)

    def freeze_image_encoder(self) -> None:
        """The paper (and the authors' training) keep the Hiera image encoder frozen."""
        self.image_encoder.requires_grad_(False)


def _memory_in_compute_dtype(module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
    """Spatial memories are stored in bfloat16. When the memory holds at least one object
    pointer (float32), SAM 2's ``torch.cat`` of memories and pointers promotes it back to
    float32 (SPEC §5); a frame that reads memories but no pointer (a clicked frame 0 while the
    other conditioning frames lie ahead) would hand memory attention bfloat16 next to float32
    weights. Casting to the current features' dtype is that same promotion, so every earlier
    case is unchanged."""
    curr, memory = kwargs.get("curr"), kwargs.get("memory")
    if memory is None or curr is None:
        return args, kwargs
    dtype = (curr[0] if isinstance(curr, list) else curr).dtype
    if memory.dtype != dtype:
        kwargs = {**kwargs, "memory": memory.to(dtype), "memory_pos": kwargs["memory_pos"].to(dtype)}
    return args, kwargs


def _refuse_unsupported_options(model: SAM2Base) -> None:
    """SAM 2 options that our adapted tracking step and heads do not implement raise here
    instead of being silently ignored (the SAM 2.0 / 2.1 configs never set them)."""
    unsupported = {
        "soft_no_obj_ptr": (model.soft_no_obj_ptr, False),  # forward_heads gates the pointer hard
        "use_mask_input_as_output_without_sam": (model.use_mask_input_as_output_without_sam, False),
        "pred_obj_scores": (model.pred_obj_scores, True),  # the no-object gate needs the score
        "use_obj_ptrs_in_encoder": (model.use_obj_ptrs_in_encoder, True),  # the historical fusion reads them
    }
    wrong = {name: seen for name, (seen, needed) in unsupported.items() if seen != needed}
    if wrong:
        needed = {name: unsupported[name][1] for name in wrong}
        raise ValueError(f"MPG-SAM 2 does not support the SAM 2 options {wrong}; use {needed}")


def build_prompted_sam2(
    variant_config_file: str,
    *,
    overrides: tuple[str, ...] = (),
    image_size: int,
    max_obj_ptrs_in_encoder: int,
    aggregator_config: AggregatorConfig,
    global_grid_size: int,
    dense_mask_prompt: bool = True,
    click_prior_radius: float = 0.0,
) -> PromptedSAM2:
    """Build :class:`PromptedSAM2` from one of the ``sam2`` package's SAM 2.0 YAML files.

    The YAML's image encoder, memory attention and memory encoder are instantiated as SAM 2
    does (adapted from ``build_sam2``, sam2 1.1.0, ``sam2/build_sam.py``: the same hydra
    compose and resolve, without its inference-only decoder overrides); its scalar options go
    to ``SAM2Base``. ``use_mask_input_as_output_without_sam`` is
    forced off: the authors disabled that branch, so the mask prior always goes through the
    prompt encoder and the decoder.
    """
    import sam2  # noqa: F401  (registers the package's config module with hydra)
    from hydra import compose
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = compose(config_name=variant_config_file, overrides=list(overrides))
    OmegaConf.resolve(cfg)
    model_cfg = cfg.model
    parts = {name: instantiate(model_cfg[name], _recursive_=True) for name in ("image_encoder", "memory_attention", "memory_encoder")}
    options = {
        key: value
        for key, value in OmegaConf.to_container(model_cfg).items()
        if key not in parts and key != "_target_"
    }
    options.update(
        image_size=image_size,
        max_obj_ptrs_in_encoder=max_obj_ptrs_in_encoder,
        use_mask_input_as_output_without_sam=False,
        compile_image_encoder=False,
    )
    return PromptedSAM2(
        aggregator_config=aggregator_config,
        global_grid_size=global_grid_size,
        dense_mask_prompt=dense_mask_prompt,
        click_prior_radius=click_prior_radius,
        **parts,
        **options,
    )
