"""Optional ``torch.compile`` of SAM 2's per-frame parts (inference only, off by default).

Which parts follows what sam2 1.1.0 compiles for its fast video mode
(``SAM2VideoPredictorVOS._compile_all_components`` and ``compile_image_encoder`` in
``sam2/sam2_video_predictor.py`` / ``sam2/modeling/sam2_base.py``): the image encoder, memory
attention, memory encoder, prompt encoder and mask decoder, each module's ``forward`` replaced
on the instance. Shapes as sam2 fixes them: static for every part but memory attention, whose
memory count grows over the first frames (symbolic sizes there). The decoder's global context
has ``T * (g/p)^2`` tokens, so each new video length compiles the decoder once more (sam2
keeps it static for accuracy); after torch's recompile limit a new length runs uncompiled.
The frame loop around the parts (choosing memories, stacking pointers) stays Python: it
changes from frame to frame and costs no device time.

What sam2 does and this does not: CUDA graphs (its ``max-autotune`` mode). A graph replay
reuses its output buffers, so sam2 clones every compiled output; our frame loop keeps memory
encoder outputs across frames, so only modes without CUDA graphs are offered.

Compiling costs a warm-up on the first frames of each new video length (about 90 s for the
test suite's tiny model on this CPU, mostly Inductor's C++ builds; on a GPU see
``bench/gpu_check.py``), and the compiled code lives in the process that compiled it: on
ZeroGPU, whose GPU work runs in short-lived processes, compiling on the fly does not pay
(Hugging Face's ZeroGPU ahead-of-time compilation post says so), so the app never compiles.

The weights and ``state_dict`` are untouched, so a compiled model saves and loads as before.
Compile a model last: ``copy.deepcopy`` of a compiled model keeps the compiled ``forward``
bound to the original's weights. Attention maps (``record_attention``) are recorded by hooks
inside the decoder and are refused on a compiled model.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from mpg_sam2.model.mpg_sam2 import MPGSAM2

__all__ = ["COMPILE_MODES", "COMPILED_PARTS", "DYNAMIC_PARTS", "compile_sam2", "is_compiled"]

# SAM 2 submodules (attribute names of PromptedSAM2) whose forward is compiled.
COMPILED_PARTS = ("image_encoder", "memory_attention", "memory_encoder", "sam_prompt_encoder", "sam_mask_decoder")
# torch.compile modes offered (none with CUDA graphs, see above): "default" compiles fastest;
# "max-autotune-no-cudagraphs" also benchmarks kernels while it compiles (minutes on a large model).
COMPILE_MODES = ("default", "max-autotune-no-cudagraphs")
# Parts whose input shapes change within a video (sam2's dynamic=True); the others are static.
DYNAMIC_PARTS = ("memory_attention",)


def is_compiled(model: MPGSAM2) -> bool:
    """True when :func:`compile_sam2` has compiled ``model``'s SAM 2 parts."""
    return all(getattr(getattr(model.sam2, name).forward, "_torchdynamo_orig_callable", None) is not None
               for name in COMPILED_PARTS)


def compile_sam2(model: MPGSAM2, mode: str = "default") -> MPGSAM2:
    """Compile ``model``'s SAM 2 parts in place (see the module docstring); returns ``model``.

    Compiling twice is refused rather than stacking a second compilation on the first. The
    first frames after this run slowly while the graphs compile.
    """
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile mode must be one of {list(COMPILE_MODES)}, got {mode!r}")
    if is_compiled(model):
        raise ValueError("this model's SAM 2 parts are compiled already")
    if model.training:
        raise ValueError("compile_sam2 is for inference: call model.eval() first (training runs uncompiled)")
    for name in COMPILED_PARTS:
        part = getattr(model.sam2, name)
        part.forward = torch.compile(part.forward, mode=mode, dynamic=name in DYNAMIC_PARTS)
    return model
