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
from mpg_sam2.model.precision import sam2_input
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

    @property
    def grounding_dtype(self) -> torch.dtype:
        """float32, or bfloat16 for a model held in bf16 (:mod:`mpg_sam2.model.precision`)."""
        return self.beit3.vision_embed.proj.weight.dtype

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
        # A model held in bf16 (precision.py) runs BEiT-3 on bfloat16 pixels, as the authors do.
        beit_pixels = beit_pixels.to(self.grounding_dtype)
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
        # SAM 2 reads its prompts in float32 (SPEC §9): cast here, once per video, not per frame.
        # In float32 `.float()` returns the same tensor.
        prompts = ReferringPrompts(
            text_tokens=self.text_prompt_proj(cls_t).float()[:, None, None],
            text_features=self.text_feature_proj(text_t).float()[:, None],
            mask_priors=prior.prior.float()[:, None],
            global_context=global_context,
            # Identical on every frame: compressed once per video and expression.
            global_patches=aggregator.compress_global_context(prior.global_context[None]),
        )
        return prompts, prior

    def propagate(
        self,
        sam_images: Callable[[int, int], torch.Tensor],
        prompts: ReferringPrompts,
        storage_device: torch.device | str | None = None,
        image_batch_size: int = 1,
    ) -> Iterator[FrameOutput]:
        """One expression through the frame loop: yields frames 0..T-1.

        ``sam_images(start, stop)`` gives frames ``start..stop-1`` as ``[n, 3, S, S]`` float32
        SAM 2 input (a model held in bf16 rounds it as the authors' runs do, precision.py);
        ``storage_device="cpu"`` keeps the per-frame memories on the CPU between frames.
        Several expressions on shared image features: :func:`video_propagation.propagate`.
        """
        dtype = self.grounding_dtype
        tracker = ExpressionTracker(self.sam2, prompts, storage_device)
        features = FrameFeatureSource(
            self.sam2, lambda start, stop: sam2_input(sam_images(start, stop), dtype), prompts.num_frames,
            batch_size=image_batch_size,
        )
        return (frame.outputs[0] for frame in propagate(features, [tracker]))

    def autocast(self, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
        """Training's mixed precision (``torch.bfloat16`` on CUDA); ``None`` keeps float32.
        Inference never autocasts: a model is held in one precision (precision.py)."""
        if dtype is None or dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)
