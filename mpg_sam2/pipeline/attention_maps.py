"""Attention overlays: where the sentence points, per frame (for the app and exports).

Two maps, recorded by forward hooks for the calls made while an :class:`AttentionRecorder` is
active; otherwise the hooks return at once. They never change a number of the segmentation:

* ``prior_attention`` ``[T, g, g]``: the mask prior generator's class-token cross-attention
  (query: frame t's class token, keys: all T*g*g video tokens), restricted to frame t's own
  patches: where, in that frame, the sentence-conditioned class token looks.
* ``text_attention`` ``[h, w]`` per frame: in the pixel-level global fusion, the share of each
  image token's attention that goes to the caption tokens (the rest goes to the video-context
  patches).

Each map is scaled by its frame's maximum into [0, 1] for display.
"""
from __future__ import annotations

import threading
from contextvars import ContextVar, Token

import torch

from mpg_sam2.model.compilation import is_compiled
from mpg_sam2.model.mpg_sam2 import MPGSAM2

# The recorder that the forward calls running in this thread / context report to. A model is
# shared by every request of a process (the app's button and an example's cache run may overlap
# in two threads), so the hooks stay on the model once installed and look up the recorder of
# the caller here instead of keeping per-run state on the model.
_ACTIVE_RECORDER: ContextVar["AttentionRecorder | None"] = ContextVar("mpg_sam2_attention_recorder", default=None)
_HOOKS_ATTRIBUTE = "_mpg_sam2_attention_hooks"
_INSTALL_LOCK = threading.Lock()


def _scale_per_frame(maps: torch.Tensor) -> torch.Tensor:
    peak = maps.flatten(1).amax(dim=1).clamp_min(1e-12)
    return maps / peak.view(-1, *([1] * (maps.ndim - 1)))


def _dispatch(method_name: str):
    def hook(module, args, output) -> None:
        recorder = _ACTIVE_RECORDER.get()
        if recorder is not None and module in recorder._modules:
            getattr(recorder, method_name)(module, args, output)

    return hook


def _install_hooks(model: MPGSAM2) -> None:
    """Once per model: forward hooks that report to the active recorder, if any (else a no-op)."""
    with _INSTALL_LOCK:
        if getattr(model, _HOOKS_ATTRIBUTE, None) is not None:
            return
        generator = model.mask_prior_generator
        fusion = model.sam2.sam_mask_decoder.aggregator.pixel_fusion
        handles = (
            generator.class_token_attn.register_forward_hook(_dispatch("_record_prior")),
            fusion.cross_attn.register_forward_hook(_dispatch("_record_text")),
        )
        object.__setattr__(model, _HOOKS_ATTRIBUTE, handles)


class AttentionRecorder:
    """Records the two maps of one run; ``with rec: <model calls>`` around each call to record.

    Read ``rec.prior_attention`` after ``encode_expression`` and ``rec.pop_text_attention()``
    after each tracked frame. Entering activates the recorder for the calls made inside the
    block (in this thread), so overlapping runs on one model each record only their own
    calls; a block may be entered again for the next call (a generator resumed in another
    thread stays correct that way).
    """

    def __init__(self, model: MPGSAM2, query_chunk: int = 256) -> None:
        if is_compiled(model):
            # The hooks below sit inside the compiled decoder, which does not run them as traced.
            raise ValueError("attention maps cannot be recorded on a compiled model: segment without compiling "
                             "(--compile) or without attention maps (--attention)")
        self.model = model
        self.query_chunk = query_chunk
        self.prior_attention: torch.Tensor | None = None  # [T, g, g]
        self._text_attention: torch.Tensor | None = None  # [B, h, w] of the last frame
        self._num_text_tokens = 0
        self._modules = (
            model.mask_prior_generator.class_token_attn,
            model.sam2.sam_mask_decoder.aggregator.pixel_fusion.cross_attn,
        )
        self._tokens: list[Token] = []
        _install_hooks(model)

    def __enter__(self) -> "AttentionRecorder":
        self._tokens.append(_ACTIVE_RECORDER.set(self))
        return self

    def __exit__(self, *exc: object) -> None:
        _ACTIVE_RECORDER.reset(self._tokens.pop())

    @torch.no_grad()
    def _record_prior(self, module, args, output) -> None:
        query, key = args[0], args[1]  # [1, T, C], [1, T*N, C]
        num_frames = query.shape[1]
        per_frame = key.shape[1] // num_frames
        grid = int(round(per_frame**0.5))
        maps = torch.empty(num_frames, per_frame, device=query.device)
        for start, weights in module.iter_attention_weights(query, key, self.query_chunk):
            for i in range(weights.shape[1]):
                t = start + i
                maps[t] = weights[0, i, t * per_frame : (t + 1) * per_frame]
        self.prior_attention = _scale_per_frame(maps.view(num_frames, grid, grid)).cpu()

    @torch.no_grad()
    def _record_text(self, module, args, output) -> None:
        query, key = args[0], args[1]  # [B, h*w, D] (with positional encoding), [B, P + L, D]
        num_text = self._num_text_tokens
        if num_text <= 0:
            raise RuntimeError("call expect_text_tokens(L) before tracking a frame with attention recording")
        share = torch.empty(query.shape[0], query.shape[1], device=query.device)
        for start, weights in module.iter_attention_weights(query, key, self.query_chunk):
            share[:, start : start + weights.shape[1]] = weights[:, :, key.shape[1] - num_text :].sum(dim=-1)
        side = int(round(query.shape[1] ** 0.5))
        self._text_attention = _scale_per_frame(share.view(-1, side, side)).cpu()

    def expect_text_tokens(self, count: int) -> None:
        """Number of caption tokens at the end of the keys of the next pixel-level fusions."""
        self._num_text_tokens = count

    def pop_text_attention(self) -> torch.Tensor | None:
        """``[B, h, w]`` text-attention map of the frame just tracked (None if none ran)."""
        out, self._text_attention = self._text_attention, None
        return out
