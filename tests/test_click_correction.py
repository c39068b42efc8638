"""Click corrections: points on any frame, that frame becomes a conditioning frame, the video is
tracked again from it both ways on the kept image features, only the corrected expression."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mpg_sam2.model.click_correction import FrameClicks, repropagate
from mpg_sam2.model.frame_features import FrameFeatureSource
from mpg_sam2.model.point_prompt import PointPrompt
from mpg_sam2.model.video_propagation import ExpressionTracker, propagate
from mpg_sam2.pipeline.clicks import ClickError, Correction, parse_corrections, read_corrections
from mpg_sam2.pipeline.segmentation import SegmentationOptions, SegmentationRun, segment_video
from tiny_model import tiny_model, tiny_tokenizer

NUM_FRAMES = 6


@pytest.fixture(scope="module")
def model():
    m = tiny_model(seed=3).eval()
    with torch.no_grad():
        m.sam2.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(5.0)
    return m


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return tiny_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def frames():
    return np.random.default_rng(4).integers(0, 256, (NUM_FRAMES, 40, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def tracked(model):
    """One expression tracked over NUM_FRAMES random frames, history kept: (tracker, features)."""
    torch.manual_seed(0)
    size = model.config.sam2.image_size
    sam = torch.randn(NUM_FRAMES, 3, size, size)
    beit = torch.randn(NUM_FRAMES, 3, model.config.beit3.image_size, model.config.beit3.image_size)
    ids = torch.tensor([[0, 5, 9, 11, 2]])

    def build():
        with torch.no_grad():
            prompts, _ = model.encode_expression(beit, ids, ids != 1)
            tracker = ExpressionTracker(model.sam2, prompts, keep_history=True)
            features = FrameFeatureSource(model.sam2, lambda a, b: sam[a:b], NUM_FRAMES, keep=True)
            list(propagate(features, [tracker]))
        return tracker, features

    return build


def clicks_at(frame: int, *points: tuple[float, float, int]) -> FrameClicks:
    return FrameClicks(frame, PointPrompt.from_points(points))


def test_retracks_from_the_clicked_frame_forward_then_backward(tracked):
    tracker, features = tracked()
    with torch.no_grad():
        first = [out.frame_index for out in repropagate(tracker, clicks_at(3, (100, 120, 1)), features)]
        # Frame 0 (the text's conditioning frame) keeps its result; so does frame 3 next time.
        assert first == [3, 4, 5, 2, 1]
        assert tracker.conditioning_frames == [0, 3]
        # SAM 2 marks every frame a pass goes through, conditioning ones too: the reverse pass
        # from frame 3 ends on frame 3 and frame 0.
        assert tracker.tracked_in_reverse == {0: True, 1: True, 2: True, 3: True, 4: False, 5: False}
        second = [out.frame_index for out in repropagate(tracker, clicks_at(1, (10, 10, 0)), features)]
    assert second == [1, 2, 4, 5]
    assert tracker.conditioning_frames == [0, 1, 3]
    assert not set(tracker.output_dict["non_cond_frame_outputs"]) & {0, 1, 3}


def test_clicked_frame_is_conditioned_on_the_video_memory(tracked, model):
    """Clicking frame 0, the only other conditioning frame gone, gives the initial-frame result
    with points; clicking frame 3 reads the memories (differs from decoding it alone)."""
    tracker, features = tracked()
    fresh_tracker, _ = tracked()
    points = clicks_at(0, (128, 128, 1))
    with torch.no_grad():
        corrected = next(repropagate(tracker, points, features))
        alone = ExpressionTracker(model.sam2, fresh_tracker.prompts).track(0, features(0), conditioning=True, points=points.points)
    torch.testing.assert_close(corrected.heads.lowres_logits, alone.heads.lowres_logits, rtol=0, atol=0)

    tracker, _ = tracked()
    with torch.no_grad():
        in_video = next(repropagate(tracker, clicks_at(3, (128, 128, 1)), features))
        by_itself = ExpressionTracker(model.sam2, fresh_tracker.prompts).track(
            3, features(3), conditioning=True, points=clicks_at(3, (128, 128, 1)).points
        )
    assert not torch.allclose(in_video.heads.lowres_logits, by_itself.heads.lowres_logits)


def test_clicked_frame_follows_sam2_multimask_rule(tracked):
    tracker, features = tracked()
    with torch.no_grad():
        one = next(repropagate(tracker, clicks_at(2, (60, 200, 1)), features))
        two = next(repropagate(tracker, clicks_at(4, (60, 200, 1), (200, 30, 0)), features))
    # SAM 2: multimask output with at most one click (multimask_output_for_tracking is on in
    # its configs), a single mask with two or more.
    assert one.heads.multimask_logits.shape[1] == 3
    assert two.heads.multimask_logits.shape[1] == 1


def test_reverse_pointer_history_mirrors_sam2(model):
    """Tracking frame 3 in reverse among 10 frames with conditioning frames 0 and 6: SAM 2 takes
    the conditioning pointers at or after the frame (only 6, distance 3), then frames 4, 5, 7,
    8, 9 at distances 1, 2, 4, 5, 6 (6 is a selected conditioning frame, not repeated)."""
    dim = model.sam2.hidden_dim
    ptr = {t: torch.full((1, dim), float(t)) for t in range(10)}
    output_dict = {
        "cond_frame_outputs": {t: {"obj_ptr": ptr[t]} for t in (0, 6)},
        "non_cond_frame_outputs": {t: {"obj_ptr": ptr[t]} for t in (1, 2, 4, 5, 7, 8, 9)},
    }
    pointers, pos = model.sam2.object_pointer_history(3, output_dict, 10, track_in_reverse=True)
    assert pointers[0, :, 0].tolist() == [6, 4, 5, 7, 8, 9]
    from sam2.modeling.sam2_utils import get_1d_sine_pe

    expected = get_1d_sine_pe(torch.tensor([3, 1, 2, 4, 5, 6]) / 9, dim=dim)
    torch.testing.assert_close(pos[0], expected)
    # Forward, the same frame reads conditioning frame 0 (distance 3) and frames 2, 1.
    pointers, _ = model.sam2.object_pointer_history(3, output_dict, 10)
    assert pointers[0, :, 0].tolist() == [0, 2, 1]


def test_feature_source_encodes_aligned_batches_once(model):
    size = model.config.sam2.image_size
    images = torch.randn(5, 3, size, size)
    calls = []

    def read(start, stop):
        calls.append((start, stop))
        return images[start:stop]

    with torch.no_grad():
        source = FrameFeatureSource(model.sam2, read, 5, batch_size=2, keep=True)
        backward = [source(t) for t in (4, 3, 2, 1, 0)]
        again = [source(t) for t in range(5)]
        forward = [FrameFeatureSource(model.sam2, lambda a, b: images[a:b], 5, batch_size=2)(t) for t in range(5)]
    assert calls == [(4, 5), (2, 4), (0, 2)]
    for b, a, f in zip(backward[::-1], again, forward):
        assert all(x is y for x, y in zip(a.vision_feats, b.vision_feats))
        for x, y in zip(b.vision_feats + b.high_res, f.vision_feats + f.high_res):
            torch.testing.assert_close(x, y, rtol=0, atol=0)


# -- pipeline -----------------------------------------------------------------------------

TEXTS = ["the red circle", "a blue square moving left"]


def test_pipeline_corrects_only_that_expression_without_reencoding(model, tokenizer, frames, monkeypatch):
    plain = segment_video(frames, TEXTS, model, tokenizer)
    encoded = []
    original = model.sam2.forward_image
    monkeypatch.setattr(model.sam2, "forward_image", lambda images: encoded.append(len(images)) or original(images))
    corrections = [Correction(1, 2, ((20.0, 10.0, 1),)), Correction(1, 4, ((50.0, 30.0, 0), (10.0, 35.0, 1)))]
    corrected = segment_video(frames, TEXTS, model, tokenizer, corrections=corrections)
    assert sum(encoded) == NUM_FRAMES  # each frame once, for the first pass and both corrections
    np.testing.assert_array_equal(corrected.expressions[0].masks, plain.expressions[0].masks)
    np.testing.assert_array_equal(corrected.expressions[0].object_scores, plain.expressions[0].object_scores)
    first, fixed = plain.expressions[1], corrected.expressions[1]
    assert fixed.corrections == tuple(corrections) and first.corrections == ()
    assert fixed.object_scores[0] == first.object_scores[0]  # frame 0 stays a conditioning frame
    assert np.all(fixed.object_scores[1:] != first.object_scores[1:])  # every other frame re-tracked
    np.testing.assert_array_equal(fixed.mask_priors, first.mask_priors)  # the prior ignores clicks


def test_pipeline_equals_the_model_core_with_corrections(model, tokenizer, frames):
    """Pixels map to SAM 2 input as x / W * S, y / H * S; the pipeline's result equals driving
    the tracker and repropagate by hand."""
    from mpg_sam2.frames import encoder_input, logits_to_frame_size

    correction = Correction(0, 3, ((32.0, 20.0, 1),))
    result = segment_video(frames, TEXTS[:1], model, tokenizer, corrections=[correction])
    size = model.config.sam2.image_size
    clicks = correction.frame_clicks((40, 64), size, "cpu")
    assert clicks.points.coords.tolist() == [[[size / 2, size / 2]]]
    ids = tokenizer.encode(TEXTS[0])
    with torch.inference_mode():
        beit = encoder_input(frames, model.config.beit3.image_size)
        prompts, _ = model.encode_expression(beit, ids.input_ids, ids.attention_mask)
        tracker = ExpressionTracker(model.sam2, prompts, keep_history=True)
        features = FrameFeatureSource(model.sam2, lambda a, b: encoder_input(frames[a:b], size), NUM_FRAMES, keep=True)
        logits = {f.frame_index: f.outputs[0].heads.lowres_logits for f in propagate(features, [tracker])}
        logits.update({out.frame_index: out.heads.lowres_logits for out in repropagate(tracker, clicks, features)})
        masks = np.stack([(logits_to_frame_size(logits[t], size, 40, 64)[0] > 0).numpy() for t in range(NUM_FRAMES)])
    np.testing.assert_array_equal(result.expressions[0].masks, masks)


def test_attention_maps_follow_the_corrected_frames(model, tokenizer, frames):
    options = SegmentationOptions(record_attention=True)
    plain = segment_video(frames, TEXTS[:1], model, tokenizer, options=options)
    fixed = segment_video(frames, TEXTS[:1], model, tokenizer, options=options, corrections=[Correction(0, 2, ((5.0, 5.0, 1),))])
    before, after = plain.expressions[0].text_attention, fixed.expressions[0].text_attention
    assert after.shape == before.shape == (NUM_FRAMES,) + before.shape[1:]
    np.testing.assert_array_equal(after[0], before[0])  # frame 0 is not re-tracked
    # The frames after the click read a new memory: their maps are the re-tracked ones.
    assert all(not np.allclose(after[t], before[t]) for t in (3, 4, 5))


@pytest.mark.parametrize(
    "correction, message",
    [
        (Correction(2, 0, ((1.0, 1.0, 1),)), "expression 2 does not exist"),
        (Correction(0, NUM_FRAMES, ((1.0, 1.0, 1),)), f"frame {NUM_FRAMES} does not exist"),
        (Correction(0, 1, ((65.0, 1.0, 1),)), "outside the 64 x 40 frame"),
    ],
)
def test_pipeline_refuses_bad_corrections_before_any_work(model, tokenizer, frames, correction, message, monkeypatch):
    monkeypatch.setattr(model, "encode_expression", lambda *a, **k: pytest.fail("ran the model"))
    with pytest.raises(ClickError, match=message):
        segment_video(frames, TEXTS, model, tokenizer, corrections=[correction])


def test_corrections_from_json(tmp_path):
    path = tmp_path / "clicks.json"
    entries = [{"expression": 0, "frame": 12, "points": [[10, 20.5, 1], [3, 4, 0]]}, {"expression": 1, "frame": 0, "points": [[1, 1, 1]]}]
    path.write_text(json.dumps(entries))
    corrections = read_corrections(path)
    assert corrections == [Correction(0, 12, ((10.0, 20.5, 1), (3.0, 4.0, 0))), Correction(1, 0, ((1.0, 1.0, 1),))]
    assert [c.to_json() for c in corrections] == json.loads(json.dumps(entries))
    assert parse_corrections(entries[0]) == corrections[:1]  # one object is one correction


@pytest.mark.parametrize(
    "data, message",
    [
        ("nope", "must be an object or a list"),
        ([{"expression": 0, "frame": 1}], "points must be a non-empty list"),
        ([{"expression": 0, "frame": 1, "points": [[1, 2]]}], r"write \[x, y, label\]"),
        ([{"expression": 0, "frame": 1, "points": [[1, 2, 2]]}], "label must be 1"),
        ([{"expression": 0, "frame": 1, "points": [[1, float("nan"), 1]]}], "finite numbers"),
        ([{"expression": -1, "frame": 1, "points": [[1, 2, 1]]}], "expression must be a whole number"),
        ([{"expression": 0, "frame": 1.5, "points": [[1, 2, 1]]}], "frame must be a whole number"),
        ([{"expression": 0, "frame": 1, "points": [[1, 2, 1]], "box": []}], "unknown fields"),
    ],
)
def test_bad_json_is_refused_with_the_reason(data, message):
    with pytest.raises(ClickError, match=message):
        parse_corrections(data)


def test_unreadable_clicks_file(tmp_path):
    with pytest.raises(ClickError, match="does not exist"):
        read_corrections(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ClickError, match="not valid JSON"):
        read_corrections(tmp_path / "bad.json")


def test_corrections_one_at_a_time_equal_the_list(model, tokenizer, frames):
    corrections = [Correction(0, 4, ((12.0, 30.0, 1),)), Correction(0, 1, ((40.0, 8.0, 0),))]
    together = segment_video(frames, TEXTS[:1], model, tokenizer, corrections=corrections)
    run = SegmentationRun(frames, TEXTS[:1], model, tokenizer, correctable=True)
    with pytest.raises(RuntimeError, match="segment the video"):
        list(run.correct(corrections[0]))
    list(run.segment())
    first_pass = run.result().expressions[0].masks.copy()
    for correction in corrections:
        events = list(run.correct(correction))
        assert {e.stage for e in events} == {"correct"}
    one_by_one = run.result().expressions[0]
    np.testing.assert_array_equal(one_by_one.masks, together.expressions[0].masks)
    np.testing.assert_array_equal(one_by_one.object_scores, together.expressions[0].object_scores)
    assert one_by_one.corrections == tuple(corrections)
    assert not np.array_equal(first_pass, one_by_one.masks)


def test_only_correctable_expressions_keep_their_history(model, tokenizer, frames):
    run = SegmentationRun(frames, TEXTS, model, tokenizer, correctable=[1])
    list(run.segment())
    with pytest.raises(RuntimeError, match="expression 0 was not made correctable"):
        list(run.correct(Correction(0, 2, ((1.0, 1.0, 1),))))
    # The other expression's tracker keeps only SAM 2's window (flat memory).
    assert [tracker.keep_history for tracker in run._trackers] == [False, True]


def test_clicked_frame_zero_reads_the_memory_of_later_conditioning_frames(tracked, model):
    """After a click on frame 3 (whose reverse pass ends on frame 0), a click on frame 0 is
    re-run in reverse as SAM 2 does: it reads conditioning frame 3 and frames 1, 2, 4, 5, their
    spatial memories and their object pointers."""
    tracker, features = tracked()
    seen = []
    hook = model.sam2.memory_attention.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append((kwargs["memory"].shape[0], kwargs["num_obj_ptr_tokens"])), with_kwargs=True
    )
    try:
        with torch.no_grad():
            list(repropagate(tracker, clicks_at(3, (100, 120, 1)), features))
            seen.clear()
            order = [out.frame_index for out in repropagate(tracker, clicks_at(0, (30, 30, 0)), features)]
    finally:
        hook.remove()
    assert order == [0, 1, 2, 4, 5]
    assert tracker.conditioning_frames == [0, 3]
    tokens_per_memory = features(0).vision_feats[-1].shape[0]  # h * w of the lowest level
    per_pointer = model.sam2.hidden_dim // model.sam2.mem_dim
    memory, pointers = seen[0]
    assert pointers == 5 * per_pointer  # frame 3 (conditioning), then 1, 2, 4, 5
    assert memory == 5 * tokens_per_memory + pointers


def test_add_clicks_keeps_every_point_of_a_frame():
    from mpg_sam2.pipeline.clicks import add_clicks

    first = add_clicks([], 0, 2, [(1, 2, 1)])
    other = add_clicks(first, 1, 2, [(5, 5, 0)])  # another expression's frame 2 is its own
    again = add_clicks(other, 0, 2, [(3, 4, 0)])
    assert again[-1] == Correction(0, 2, ((1.0, 2.0, 1), (3.0, 4.0, 0)))
    assert again[:2] == other and other[-1] == Correction(1, 2, ((5.0, 5.0, 0),))
    assert add_clicks(again, 0, 3, [(0, 0, 1)])[-1] == Correction(0, 3, ((0.0, 0.0, 1),))


def test_too_many_points_on_a_frame_are_refused(model, tokenizer, frames):
    from mpg_sam2.pipeline.clicks import MAX_POINTS_PER_FRAME

    crowded = Correction(0, 1, tuple((1.0, 1.0, 1) for _ in range(MAX_POINTS_PER_FRAME + 1)))
    with pytest.raises(ClickError, match=f"at most {MAX_POINTS_PER_FRAME}"):
        segment_video(frames, TEXTS[:1], model, tokenizer, corrections=[crowded])


def test_a_correction_stopped_half_way_leaves_the_run_refusing(model, tokenizer, frames):
    run = SegmentationRun(frames, TEXTS[:1], model, tokenizer, correctable=True)
    list(run.segment())
    steps = run.correct(Correction(0, 2, ((5.0, 5.0, 1),)))
    next(steps)
    steps.close()  # the consumer gave up after the clicked frame: the other frames are stale
    with pytest.raises(RuntimeError, match="half-updated"):
        run.result()
    with pytest.raises(RuntimeError, match="half-updated"):
        list(run.correct(Correction(0, 3, ((5.0, 5.0, 1),))))


def test_fps_is_kept_as_given_without_timestamps(model, tokenizer, frames):
    assert segment_video(frames[:3], TEXTS[:1], model, tokenizer, fps=25.0).fps == 25.0
    stamps = [0.0, 0.04, 0.08]
    assert segment_video(frames[:3], TEXTS[:1], model, tokenizer, timestamps_s=stamps).fps == pytest.approx(25.0)


def test_paint_prior_sets_disks_in_click_order():
    prior = torch.full((1, 1, 8, 8), 0.5)
    # SAM 2 input of 64 px: 8 px per cell; (36, 20) is the centre of cell (row 2, column 4).
    clicks = PointPrompt(torch.tensor([[[36.0, 20.0], [44.0, 20.0], [4.0, 60.0]]]), torch.tensor([[1, 0, -1]], dtype=torch.int32))
    painted = clicks.paint_prior(prior, sam_size=64, radius=1.0)
    want = prior.clone()
    for row, col in ((1, 4), (2, 3), (2, 4), (3, 4)):
        want[0, 0, row, col] = 1.0  # the positive click's disk, less the cells the later negative one takes
    for row, col in ((1, 5), (2, 5), (3, 5), (2, 6), (2, 4)):
        want[0, 0, row, col] = 0.0  # the negative click comes later: it wins on cell (2, 4)
    torch.testing.assert_close(painted, want, rtol=0, atol=0)
    assert torch.equal(prior, torch.full((1, 1, 8, 8), 0.5)), "the prior itself is left as it was"
    # Radius 0: only the cells whose centre is clicked; the padding label (-1) paints nothing.
    small = clicks.paint_prior(prior, sam_size=64, radius=0.0)
    assert small[0, 0, 2, 4] == 1.0 and small[0, 0, 2, 5] == 0.0 and (small != 0.5).sum() == 2


def test_click_radius_paints_the_clicked_frame_prior_only(tracked, model):
    """With MaskPriorConfig.click_radius > 0 a click also sets the clicked frame's dense prompt;
    with 0 (the release presets) the decoder sees the prior as it is."""
    captured = []
    encoder = model.sam2.sam_prompt_encoder
    hook = encoder.register_forward_hook(lambda m, args, kwargs, out: captured.append(kwargs["masks"].clone()), with_kwargs=True)
    try:
        results = {}
        for radius in (0.0, 2.0):
            model.sam2.click_prior_radius = radius
            tracker, features = tracked()
            captured.clear()
            with torch.no_grad():
                results[radius] = list(repropagate(tracker, clicks_at(2, (128, 128, 1)), features))
            results[radius, "dense"] = captured[0]
            if radius == 0.0:
                captured_plain = list(captured[1:])
    finally:
        hook.remove()
        model.sam2.click_prior_radius = 0.0
    plain, painted = results[0.0, "dense"], results[2.0, "dense"]
    # The frames re-tracked after the clicked one decode with their priors as they are.
    for before, after in zip(results[0.0][1:], results[2.0][1:]):
        assert before.frame_index == after.frame_index
    assert len(captured) == len(results[2.0]) > 1 and all(torch.equal(a, b) for a, b in zip(captured_plain, captured[1:]))
    size = plain.shape[-1]
    centre = painted[0, 0, size // 2 - 2 : size // 2 + 2, size // 2 - 2 : size // 2 + 2]
    assert torch.allclose(centre, torch.ones_like(centre)) and not torch.allclose(plain, painted)
    assert torch.allclose(painted[0, 0, :2, :2], plain[0, 0, :2, :2])  # far from the click: untouched
    assert not torch.equal(results[0.0][0].heads.lowres_logits, results[2.0][0].heads.lowres_logits)
