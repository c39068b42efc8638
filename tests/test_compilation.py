"""Optional compilation of SAM 2's per-frame parts (mpg_sam2/model/compilation.py): the compiled
model segments like the eager one, keeps its weights and state_dict, and misuse is refused."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from mpg_sam2.model.compilation import COMPILED_PARTS, compile_sam2, is_compiled
from mpg_sam2.reference import run_case
from tiny_model import tiny_model


@pytest.mark.slow
def test_compiled_sam2_tracks_like_eager():
    """Two clip lengths: the second recompiles the static decoder for another global-context
    size, and memory attention (dynamic) sees several memory counts in each; both the
    conditioning and the tracked paths run. Measured: largest low-res logit difference about
    5e-7 (Inductor's C++ kernels sum in another order); compiling takes a minute or two here."""
    eager = tiny_model(seed=5).eval()
    compiled = compile_sam2(copy.deepcopy(eager))
    assert is_compiled(compiled) and not is_compiled(eager)
    assert compiled.state_dict().keys() == eager.state_dict().keys()
    ids = np.array([[0, 10, 11, 12, 2]])
    for num_frames in (3, 4):
        frames = np.random.default_rng(num_frames).integers(0, 256, (num_frames, 40, 56, 3), dtype=np.uint8)
        runs = [run_case(model, frames, ids) for model in (eager, compiled)]
        for name in ("lowres_logits_before", "object_score_logits", "obj_ptr"):
            a, b = (torch.cat([getattr(f.heads, name) for f in run.frames]) for run in runs)
            assert torch.allclose(a, b, atol=1e-4, rtol=1e-4), (num_frames, name, (a - b).abs().max())
        assert torch.equal(runs[0].final_logits > 0, runs[1].final_logits > 0)


def test_compile_misuse_is_refused():
    model = tiny_model(seed=1)
    with pytest.raises(ValueError, match="call model.eval"):
        compile_sam2(model)
    model.eval()
    with pytest.raises(ValueError, match=r"compile mode must be one of \['default', 'max-autotune-no-cudagraphs'\]"):
        compile_sam2(model, mode="max-autotune")  # CUDA graphs would overwrite the memories the loop keeps
    assert not is_compiled(model)
    compile_sam2(model)  # compiles lazily: nothing runs until the first frame
    assert all(getattr(model.sam2, name).forward is not type(getattr(model.sam2, name)).forward for name in COMPILED_PARTS)
    with pytest.raises(ValueError, match="compiled already"):
        compile_sam2(model)
    # Attention maps come from hooks inside the compiled decoder: refused, not silently wrong.
    from mpg_sam2.pipeline.attention_maps import AttentionRecorder

    with pytest.raises(ValueError, match="attention maps cannot be recorded on a compiled model"):
        AttentionRecorder(model)
