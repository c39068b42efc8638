"""MPG-SAM 2: BEiT-3 + mask prior generator + SAM 2 with the global-historical aggregator.

Data flow for one video and one expression (T frames, caption of L tokens)::

    frames --224--> BEiT-3 (per frame, with the caption) --> cls [T,C], patches [T,N,C], text [T,L,C]
    cls, patches --> mask prior generator --> prior [T,1,g,g], global context V_g [T,N,D]
    cls --> text_prompt_proj --> sparse text token [T,1,D];  text --> text_feature_proj [T,L,D]
    frames --1024--> SAM 2, frame 0 conditioning, forward propagation (video_propagation.py)
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
from torch import nn

from mpg_sam2.config import MPGSAM2Config
from mpg_sam2.model.beit3 import BEiT3
from mpg_sam2.model.frame_features import FrameFeatureSource
from mpg_sam2.model.mask_prior_generator import MaskPriorGenerator, MaskPriorOutput
from mpg_sam2.model.prompted_sam2 import build_prompted_sam2
from mpg_sam2.model.video_propagation import ExpressionTracker, FrameOutput, ReferringPrompts, propagate


class MPGSAM2(nn.Module):
    def __init__(self, config: MPGSAM2Config) -> None:
        super().__init__()
        self.config = config
        width, dim = config.beit3.embed_dim, config.prompt_dim
        grid = config.beit3.grid_size
        self.beit3 = BEiT3(config.beit3)
        self.mask_prior_generator = MaskPriorGenerator(width, dim, grid, config.mask_prior)
        # The sparse text prompt reads BEiT-3's raw class token (not the gated one).
        self.text_prompt_proj = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, dim))
        self.text_feature_proj = nn.Linear(width, dim)
        # Only the training "similarity" loss reads this head (SPEC §11); kept for checkpoints.
        self.text_similarity_head = nn.Linear(dim, 1)
        self.sam2 = build_prompted_sam2(
            config.sam2.config_file,
            overrides=config.sam2.overrides,
            image_size=config.sam2.image_size,
            max_obj_ptrs_in_encoder=config.sam2.max_obj_ptrs_in_encoder,
            aggregator_config=config.aggregator,
            global_grid_size=grid,
            dense_mask_prompt=config.mask_prior.dense_prompt,
            click_prior_radius=config.mask_prior.click_radius,
        )
        if self.sam2.hidden_dim != dim:
            raise ValueError(
                f"config prompt_dim={dim} but SAM 2 variant {config.sam2.variant!r} is {self.sam2.hidden_dim} wide"
            )
        self.sam2.freeze_image_encoder()

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def encode_expression(
        self,
        beit_pixels: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        frames_per_batch: int = 16,
    ) -> tuple[ReferringPrompts, MaskPriorOutput]:
        """BEiT-3 on every (frame, caption) pair, then the mask prior generator and projections.

        beit_pixels ``[T, 3, 224, 224]``; input_ids / attention_mask ``[1, L]`` (one expression;
        the mask is ``ids != pad``). BEiT-3 runs ``frames_per_batch`` frames at a time: frames
        do not interact there, so this only bounds memory.
        """
        if input_ids.ndim != 2 or input_ids.shape[0] != 1:
            raise ValueError(f"expected input_ids of shape [1, L] (one expression), got {tuple(input_ids.shape)}")
        cls, patches, text = [], [], []
        for chunk in beit_pixels.split(frames_per_batch):
            n = chunk.shape[0]
            out = self.beit3(chunk, input_ids.expand(n, -1), attention_mask.expand(n, -1))
            cls.append(out.cls)
            patches.append(out.patches)
            text.append(out.text)
        cls_t, patches_t, text_t = torch.cat(cls), torch.cat(patches), torch.cat(text)
        prior = self.mask_prior_generator(cls_t, patches_t)
        num_frames, num_patches, dim = prior.global_context.shape
        global_context = prior.global_context.reshape(1, num_frames * num_patches, dim)
        aggregator = self.sam2.sam_mask_decoder.aggregator
        prompts = ReferringPrompts(
            text_tokens=self.text_prompt_proj(cls_t)[:, None, None],
            text_features=self.text_feature_proj(text_t)[:, None],
            mask_priors=prior.prior[:, None],
            global_context=global_context,
            # Identical on every frame: compressed once per video and expression.
            global_patches=aggregator.compress_global_context(prior.global_context[None]),
        )
        return prompts, prior

    def propagate(
        self,
        sam_images: Callable[[int, int], torch.Tensor],
        prompts: ReferringPrompts,
        autocast_dtype: torch.dtype | None = None,
        storage_device: torch.device | str | None = None,
        image_batch_size: int = 1,
    ) -> Iterator[FrameOutput]:
        """One expression through the frame loop: yields frames 0..T-1.

        ``sam_images(start, stop)`` gives frames ``start..stop-1`` as ``[n, 3, S, S]`` SAM 2
        input; ``storage_device="cpu"`` keeps the per-frame memories on the CPU between frames.
        Several expressions on shared image features: :func:`video_propagation.propagate`.
        """
        tracker = ExpressionTracker(self.sam2, prompts, storage_device)
        features = FrameFeatureSource(self.sam2, sam_images, prompts.num_frames, batch_size=image_batch_size)
        frames = propagate(features, [tracker], frame_context=lambda: self.autocast(autocast_dtype))
        return (frame.outputs[0] for frame in frames)

    def autocast(self, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
        """Mixed precision for the encoders and heads; ``None`` keeps float32 (the reference)."""
        if dtype is None or dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)
