"""What one tracked frame dispatches, pinned: no host synchronisation inside SAM 2's tracking
step, a flat operator count once the memory bank is full, and no scalar read in the pipeline
(masks and object scores reach the host by copies). A change that adds a sync (``.item()``,
Python branching on a tensor) or per-frame work fails here; if a change means to alter the
counts, update the numbers with the reason."""
from __future__ import annotations

import collections

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from mpg_sam2.frames import encoder_input
from mpg_sam2.model.frame_features import image_features
from mpg_sam2.model.video_propagation import ExpressionTracker
from mpg_sam2.pipeline.segmentation import segment_video
from tiny_model import tiny_model, tiny_tokenizer

# aten ops dispatched by one ExpressionTracker.step of the tiny model (torch 2.14 CPU) once all
# 7 memory slots are filled (frame 7 on); frames 0-6 dispatch fewer.
STEADY_STATE_OPS = 960
# The ops a host read of a tensor value dispatches (.item(), float(t), bool(t), `if t:`):
# the first outside inference mode, the others inside it. (.tolist() and .numpy() dispatch
# nothing on a CPU tensor; on a GPU they come after a device-to-host copy, `aten._to_copy`.)
SYNC_OPS = ("aten._local_scalar_dense", "aten.item", "aten.is_nonzero")


class OpCounter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))


@pytest.fixture(scope="module")
def model():
    return tiny_model(seed=5).eval()


@pytest.fixture(scope="module")
def frames():
    return np.random.default_rng(0).integers(0, 256, (10, 40, 56, 3), dtype=np.uint8)


def test_tracking_step_never_syncs_and_its_cost_is_flat(model, frames):
    cfg = model.config
    ids = torch.tensor([[0, 10, 11, 12, 2]])
    counts = []
    with torch.inference_mode():
        beit = encoder_input(frames, cfg.beit3.image_size)
        prompts, _ = model.encode_expression(beit, ids, ids != cfg.pad_token_id)
        tracker = ExpressionTracker(model.sam2, prompts)
        for frame in frames:
            features = image_features(model.sam2, encoder_input(frame, cfg.sam2.image_size))
            with OpCounter() as counter:
                tracker.step(features)
            counts.append(counter.ops)
    assert [sum(c[op] for op in SYNC_OPS) for c in counts] == [0] * len(frames)
    totals = [sum(c.values()) for c in counts]
    assert totals[7:] == [STEADY_STATE_OPS] * 3, totals
    assert max(totals[2:7]) < STEADY_STATE_OPS  # fewer memories, fewer ops: nothing grows past the bank


def test_pipeline_reads_no_scalar(model, frames, tmp_path_factory):
    """Masks and object scores reach the result by copies (pipeline/host_copies.py), never by a
    host read, yet every frame's score and mask is there."""
    tokenizer = tiny_tokenizer(tmp_path_factory.mktemp("tok"))
    texts = ["the man in the red shirt", "a black dog"]
    with OpCounter() as counter:
        result = segment_video(frames[:4], texts, model, tokenizer)
    assert sum(counter.ops[op] for op in SYNC_OPS) == 0
    reference = segment_video(frames[:4], texts[:1], model, tokenizer).expressions[0]
    assert np.all(result.expressions[0].object_scores != 0)
    np.testing.assert_array_equal(result.expressions[0].object_scores, reference.object_scores)
    np.testing.assert_array_equal(result.expressions[0].masks, reference.masks)


@pytest.mark.parametrize("inference", [False, True])
def test_the_counter_sees_host_reads(inference):
    """The zero above can fail: each way of reading a value on the host is counted."""
    with torch.inference_mode(inference):
        x = torch.randn(3)
        with OpCounter() as counter:
            x[0].item()
            float(x[1])
            if x[2] > 0:
                pass
    assert sum(counter.ops[op] for op in SYNC_OPS) == 3
