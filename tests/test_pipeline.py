"""The segmentation pipeline: shared image features, equality with the model core, overlays."""
from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from mpg_sam2.pipeline.expressions import ExpressionError, prepare_expressions
from mpg_sam2.pipeline.segmentation import SegmentationOptions, iter_segment_video, segment_video
from mpg_sam2.reference import run_case
from tiny_model import tiny_model, tiny_tokenizer


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return tiny_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def model():
    m = tiny_model(seed=5).eval()
    with torch.no_grad():  # a mix of present / absent frames is not needed; keep objects present
        m.sam2.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(5.0)
    return m


@pytest.fixture(scope="module")
def frames():
    return np.random.default_rng(1).integers(0, 256, (4, 37, 53, 3), dtype=np.uint8)


EXPRESSIONS = ["the man in the red shirt", "a black dog running across the grass", "la girafe à gauche"]


def test_each_expression_equals_the_model_core(model, tokenizer, frames):
    result = segment_video(frames, EXPRESSIONS, model, tokenizer, fps=12.0)
    assert result.num_frames == 4 and result.frame_size == (37, 53)
    for expression in result.expressions:
        ids = tokenizer.encode(expression.text).input_ids
        core = run_case(model, frames, ids.numpy())
        np.testing.assert_array_equal(expression.masks, (core.final_logits.sigmoid() > 0.5).numpy())
        np.testing.assert_allclose(expression.mask_priors, core.mask_prior.prior[:, 0].numpy(), rtol=0, atol=1e-6)
        scores = torch.cat([f.heads.object_score_logits[:, 0] for f in core.frames]).numpy()
        np.testing.assert_allclose(expression.object_scores, scores, rtol=0, atol=1e-5)
    assert set(result.stage_seconds) >= {"beit3_and_mask_prior", "sam2_image_encoder", "sam2_tracking"}


def test_multiple_expressions_equal_separate_runs(model, tokenizer, frames):
    together = segment_video(frames, EXPRESSIONS[:2], model, tokenizer)
    for text in EXPRESSIONS[:2]:
        alone = segment_video(frames, [text], model, tokenizer)
        np.testing.assert_array_equal(together[text].masks, alone[text].masks)
        np.testing.assert_array_equal(together[text].object_scores, alone[text].object_scores)


def test_image_encoder_runs_once_per_frame(model, tokenizer, frames):
    calls = []
    hook = model.sam2.image_encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        segment_video(frames, EXPRESSIONS, model, tokenizer)
    finally:
        hook.remove()
    assert len(calls) == len(frames)


def test_batched_image_encoder_equals_one_frame_at_a_time(model, tokenizer, frames):
    """SAM 2's trunk works per frame: encoding 3 frames at once (then the last one alone)
    gives the masks of one-at-a-time and object scores equal to float rounding."""
    calls = []
    hook = model.sam2.image_encoder.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    try:
        batched = segment_video(frames, EXPRESSIONS[:2], model, tokenizer, options=SegmentationOptions(image_batch_size=3))
    finally:
        hook.remove()
    single = segment_video(frames, EXPRESSIONS[:2], model, tokenizer)
    assert calls == [3, 1]
    for text in EXPRESSIONS[:2]:
        np.testing.assert_array_equal(batched[text].masks, single[text].masks)
        np.testing.assert_allclose(batched[text].object_scores, single[text].object_scores, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="image_batch_size must be at least 1"):
        SegmentationOptions(image_batch_size=0)


def test_attention_recording_changes_nothing(model, tokenizer, frames):
    plain = segment_video(frames, EXPRESSIONS[:1], model, tokenizer)
    recorded = segment_video(frames, EXPRESSIONS[:1], model, tokenizer, options=SegmentationOptions(record_attention=True))
    a, b = plain.expressions[0], recorded.expressions[0]
    np.testing.assert_array_equal(a.masks, b.masks)
    np.testing.assert_array_equal(a.object_scores, b.object_scores)
    assert a.prior_attention is None and a.text_attention is None
    grid = model.config.beit3.grid_size
    side = model.config.sam2.image_size // 16
    assert b.prior_attention.shape == (4, grid, grid) and b.text_attention.shape == (4, side, side)
    for maps in (b.prior_attention, b.text_attention):
        assert maps.min() >= 0 and np.allclose(maps.reshape(4, -1).max(axis=1), 1.0)


def test_prior_attention_is_the_own_frame_block(model, tokenizer, frames):
    """Check the recorder against the full attention matrix computed directly."""
    from mpg_sam2.frames import encoder_input
    from mpg_sam2.pipeline.attention_maps import AttentionRecorder

    ids = tokenizer.encode(EXPRESSIONS[0]).input_ids
    beit = encoder_input(frames, model.config.beit3.image_size)
    captured = {}
    gen = model.mask_prior_generator
    hook = gen.class_token_attn.register_forward_hook(lambda m, args, out: captured.update(q=args[0], k=args[1]))
    with torch.no_grad(), AttentionRecorder(model, query_chunk=3) as rec:
        model.encode_expression(beit, ids, ids != 3)
    hook.remove()
    full = gen.class_token_attn.attention_weights(captured["q"], captured["k"])[0]  # [T, T*N]
    n = full.shape[1] // len(frames)
    for t in range(len(frames)):
        block = full[t, t * n : (t + 1) * n]
        torch.testing.assert_close(rec.prior_attention[t].flatten(), block / block.max())


def test_overlapping_runs_on_one_model_record_only_their_own_attention(model, tokenizer, frames):
    """Runs with attention recording that overlap on one shared model (an example's cache run
    beside a button run, two users) each give what they give alone: interleaved frame by frame
    in one thread, and at the same time in two threads."""
    options = SegmentationOptions(record_attention=True)
    texts = (EXPRESSIONS[0], EXPRESSIONS[2])  # different token counts: a mix-up cannot go unseen
    clips = (frames, frames[::-1].copy())

    def run(i: int):
        return iter_segment_video(clips[i], [texts[i]], model, tokenizer, options=options)

    alone = [list(run(i))[-1].result for i in range(2)]
    generators, interleaved = [run(0), run(1)], [None, None]
    while any(r is None for r in interleaved):
        for i, generator in enumerate(generators):
            if interleaved[i] is None:
                interleaved[i] = next(generator).result
    with ThreadPoolExecutor(2) as pool:
        threaded = list(pool.map(lambda i: list(run(i))[-1].result, range(2)))
    for i in range(2):
        expected = alone[i].expressions[0]
        for other in (interleaved[i], threaded[i]):
            got = other.expressions[0]
            np.testing.assert_array_equal(expected.masks, got.masks)
            np.testing.assert_array_equal(expected.prior_attention, got.prior_attention)
            np.testing.assert_array_equal(expected.text_attention, got.text_attention)


def test_the_caller_never_runs_in_inference_mode(model, tokenizer, frames):
    """Between two progress events, and after runs interleaved in one thread, the caller's
    autograd state is its own (a mode entered across a yield leaked into later training code)."""
    generators = [iter_segment_video(frames, [text], model, tokenizer) for text in EXPRESSIONS[:2]]
    done = [False, False]
    while not all(done):
        for i, generator in enumerate(generators):
            if not done[i]:
                done[i] = next(generator).result is not None
                assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
    assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()


def test_memory_offloading_stores_memories_on_the_cpu_with_equal_results(model, tokenizer, frames, monkeypatch):
    """The option reaches the trackers, every stored memory sits on the CPU in bfloat16, and the
    masks equal the run without it (on a GPU machine the memories really move; here the test
    still fails if the option is dropped on the way or memories are stored elsewhere)."""
    from mpg_sam2.pipeline import segmentation

    trackers = []

    class RecordedTracker(segmentation.ExpressionTracker):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            trackers.append(self)

    monkeypatch.setattr(segmentation, "ExpressionTracker", RecordedTracker)
    on_device = segment_video(frames, EXPRESSIONS[:1], model, tokenizer)
    offloaded = segment_video(frames, EXPRESSIONS[:1], model, tokenizer, options=SegmentationOptions(offload_memory_to_cpu=True))
    assert [t.storage_device for t in trackers] == [None, torch.device("cpu")]
    stored = [*trackers[1].output_dict["cond_frame_outputs"].values(), *trackers[1].output_dict["non_cond_frame_outputs"].values()]
    assert len(stored) == len(frames)
    for entry in stored:
        assert entry["maskmem_features"].device.type == "cpu" and entry["maskmem_features"].dtype == torch.bfloat16
        assert all(p.device.type == "cpu" for p in entry["maskmem_pos_enc"])
    np.testing.assert_array_equal(on_device.expressions[0].masks, offloaded.expressions[0].masks)


def test_progress_events(model, tokenizer, frames):
    events = list(iter_segment_video(frames, EXPRESSIONS[:2], model, tokenizer))
    stages = [(e.stage, e.done, e.total) for e in events]
    assert stages[:2] == [("encode", 1, 2), ("encode", 2, 2)]
    assert stages[2:6] == [("track", t, 4) for t in range(1, 5)]
    assert events[-1].stage == "done" and events[-1].result is not None


def test_one_frame_video(model, tokenizer, frames):
    result = segment_video(frames[:1], EXPRESSIONS[:1], model, tokenizer)
    assert result.expressions[0].masks.shape == (1, 37, 53)


@pytest.mark.parametrize(("texts", "message"), [
    ([], "no referring expression"),
    (["the dog", "   "], "expression 2 is empty"),
    (["the dog", "The  Dog "], "repeats expression 1"),
    ([None], "not text"),
])
def test_bad_expressions(tokenizer, texts, message):
    with pytest.raises(ExpressionError, match=message):
        prepare_expressions(texts, tokenizer)


def test_long_expression_is_truncated_with_a_warning(tokenizer):
    text = "the duck swimming closest to the camera " * 20
    with pytest.warns(UserWarning, match="was cut"):
        (prepared,) = prepare_expressions([text], tokenizer, max_tokens=16)
    assert prepared.truncated and prepared.input_ids.shape == (1, 16) and prepared.input_ids[0, -1] == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (short,) = prepare_expressions(["左边的狗 🐶"], tokenizer)
    assert not short.truncated


def test_bad_frames(model, tokenizer):
    with pytest.raises(ValueError, match="0 frames"):
        segment_video(np.zeros((0, 8, 8, 3), np.uint8), ["the dog"], model, tokenizer)
    with pytest.raises(ValueError, match="uint8 RGB"):
        segment_video(np.zeros((2, 8, 8), np.float32), ["the dog"], model, tokenizer)
    with pytest.raises(ValueError, match="threshold"):
        SegmentationOptions(threshold=1.5)


def test_segment_video_shows_the_generator_parameters():
    import inspect

    assert list(inspect.signature(segment_video).parameters) == list(inspect.signature(iter_segment_video).parameters)
