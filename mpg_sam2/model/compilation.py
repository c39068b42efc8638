"""Optional ``torch.compile`` of SAM 2's per-frame parts (inference only, off by default).

Which parts, and how, follows what sam2 1.1.0 compiles for its fast video mode
(``SAM2VideoPredictorVOS._compile_all_components`` and ``compile_image_encoder`` in
``sam2/sam2_video_predictor.py`` / ``sam2/modeling/sam2_base.py``): the image encoder, memory
attention, memory encoder, prompt encoder and mask decoder, each module's ``forward`` replaced
on the instance. The frame loop around them (choosing memories, stacking pointers) stays
Python: it changes shape from frame to frame and costs no device time.

What differs from SAM 2: shapes are left to ``torch.compile``'s automatic dynamism (``dynamic``
unset) instead of fixed per part, because ours vary with the video, not only with the memory
count: the decoder's global context has ``T * (g/p)^2`` tokens. A first shape compiles static,
a second one recompiles once with symbolic sizes. Graph breaks are allowed (SAM 2 asks for
``fullgraph=True``) because the decoder's aggregator takes a dataclass of optional tensors.

Compiling costs a warm-up on the first frames (about 90 s for the test suite's tiny model on
this CPU, dominated by Inductor's C++ builds; on a GPU see ``bench/gpu_check.py``), and the
compiled code lives in the process: a ZeroGPU Space, whose GPU work runs in a fresh process per
request, would pay it on every request, so the app never compiles. The module's weights and
``state_dict`` are untouched, so a compiled model still saves and loads as before.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from mpg_sam2.model.mpg_sam2 import MPGSAM2

__all__ = ["COMPILE_MODES", "COMPILED_PARTS", "compile_sam2", "is_compiled"]

# SAM 2 submodules (attribute names of PromptedSAM2) whose forward is compiled.
COMPILED_PARTS = ("image_encoder", "memory_attention", "memory_encoder", "sam_prompt_encoder", "sam_mask_decoder")
# torch.compile modes offered: "default" compiles fastest; "max-autotune" (SAM 2's choice)
# benchmarks kernels and CUDA graphs while it compiles, for minutes on a large model.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


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
        part.forward = torch.compile(part.forward, mode=mode)
    return model
