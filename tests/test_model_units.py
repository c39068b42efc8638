"""Unit tests of each model part: shapes, finite values, the authors' structural quirks, gradients."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from sam2.modeling.sam2_utils import get_1d_sine_pe

from mpg_sam2.config import AggregatorConfig, BEiT3Config, MaskPriorConfig
from mpg_sam2.model.attention import MultiHeadAttention
from mpg_sam2.model.beit3 import BEiT3
from mpg_sam2.model.global_historical_aggregator import FusionLayer, GlobalHistoricalAggregator
from mpg_sam2.model.mask_prior_generator import MaskPriorGenerator
from tiny_model import TINY, tiny_model

torch.manual_seed(0)


def test_attention_matches_torch_multihead_attention():
    ours = MultiHeadAttention(32, 4)
    ref = nn.MultiheadAttention(32, 4, batch_first=True)
    ref.load_state_dict(ours.state_dict())
    q, kv = torch.randn(2, 5, 32), torch.randn(2, 7, 32)
    expected, _ = ref(q, kv, kv, need_weights=False)
    torch.testing.assert_close(ours(q, kv, kv), expected, atol=1e-6, rtol=1e-5)
    weights = ref(q, kv, kv, need_weights=True, average_attn_weights=True)[1]
    torch.testing.assert_close(ours.attention_weights(q, kv), weights, atol=1e-6, rtol=1e-5)


def test_query_chunks_do_not_change_attention():
    full = MultiHeadAttention(16, 2)
    chunked = MultiHeadAttention(16, 2, query_chunk=3)
    chunked.load_state_dict(full.state_dict())
    x = torch.randn(1, 11, 16)
    torch.testing.assert_close(chunked(x, x, x), full(x, x, x), atol=1e-6, rtol=1e-5)


BEIT_TINY = BEiT3Config(embed_dim=32, num_layers=2, num_heads=4, ffn_dim=64, vocab_size=50, image_size=32)


def test_beit3_shapes_and_padding():
    model = BEiT3(BEIT_TINY).eval()
    pixels = torch.randn(2, 3, 32, 32)
    ids = torch.tensor([[0, 7, 3, 9, 2], [0, 7, 3, 9, 2]])
    mask = ids != 3
    out = model(pixels, ids, mask)
    assert out.cls.shape == (2, 32) and out.patches.shape == (2, 4, 32) and out.text.shape == (2, 5, 32)
    assert torch.isfinite(out.text).all()
    # A padded (unk) position is neither attended nor carries its embedding: its id is irrelevant.
    other = ids.clone()
    other[:, 2] = 11
    out2 = model(pixels, other, mask)
    torch.testing.assert_close(out2.cls, out.cls)
    torch.testing.assert_close(out2.text[:, [0, 1, 3, 4]], out.text[:, [0, 1, 3, 4]])
    # ...while the same id unmasked changes the result.
    assert not torch.allclose(model(pixels, other, torch.ones_like(mask)).cls, out.cls)


def test_beit3_multiway_experts_split_vision_and_text():
    model = BEiT3(BEIT_TINY).eval()
    pixels, ids = torch.randn(1, 3, 32, 32), torch.tensor([[0, 5, 6, 2]])
    before = model(pixels, ids, ids != 3)
    with torch.no_grad():
        model.final_norm.text.weight.mul_(2.0)
    after = model(pixels, ids, ids != 3)
    torch.testing.assert_close(after.cls, before.cls)
    torch.testing.assert_close(after.patches, before.patches)
    torch.testing.assert_close(after.text, before.text * 2 - model.final_norm.text.bias)


def test_beit3_rejects_captions_beyond_the_position_table():
    model = BEiT3(BEiT3Config(embed_dim=32, num_layers=1, num_heads=4, ffn_dim=64, vocab_size=50,
                              image_size=32, max_text_positions=8))
    ids = torch.zeros(1, 7, dtype=torch.long)
    with pytest.raises(ValueError, match="at most 6"):
        model(torch.randn(1, 3, 32, 32), ids, ids != 3)


def test_mask_prior_generator_outputs():
    gen = MaskPriorGenerator(32, 16, 4, MaskPriorConfig(num_heads=4, ffn_dim=64)).eval()
    cls, patches = torch.randn(3, 32), torch.randn(3, 16, 32)
    out = gen(cls, patches)
    assert out.prior.shape == (3, 1, 4, 4) and out.global_context.shape == (3, 16, 16)
    assert ((out.prior > 0) & (out.prior < 1)).all()
    torch.testing.assert_close(out.prior[:, 0], out.prior_logits.sigmoid())
    # Frames exchange information in the space-time layer: another frame 2 changes frame 0.
    patches2 = patches.clone()
    patches2[2] += 1.0
    assert not torch.allclose(gen(cls, patches2).prior[0], out.prior[0])


def test_temporal_encoding_formula():
    gen = MaskPriorGenerator(32, 8, 4, MaskPriorConfig(num_heads=4, ffn_dim=64))
    pe = gen.temporal_encoding(5, torch.device("cpu"))
    for t in range(5):
        for i in range(4):
            f = 10000 ** (2 * (i // 2) / 4)
            assert pe[t, i].item() == pytest.approx(math.sin(t / f), abs=1e-6)
            assert pe[t, 4 + i].item() == pytest.approx(math.cos(t / f), abs=1e-6)


def test_global_context_patches_are_channel_major():
    agg = GlobalHistoricalAggregator(8, 4, AggregatorConfig(num_heads=2, ffn_dim=16, global_patch_size=2))
    agg.global_patch_proj = nn.Identity()
    T, g, p, d = 2, 4, 2, 8
    ctx = torch.randn(1, T, g * g, d)
    out = agg.compress_global_context(ctx)
    assert out.shape == (1, T * 4, d * 4)
    for t in range(T):
        for py in range(2):
            for px in range(2):
                for c in range(d):
                    for dy in range(p):
                        for dx in range(p):
                            token = out[0, t * 4 + py * 2 + px, c * 4 + dy * 2 + dx]
                            assert token == ctx[0, t, (py * p + dy) * g + px * p + dx, c]


def test_fusion_layer_adds_position_to_the_query_only():
    layer = FusionLayer(8, 2, 16).eval()
    ref = nn.MultiheadAttention(8, 2, batch_first=True)
    ref.load_state_dict(layer.cross_attn.state_dict())
    q, kv, pos = torch.randn(1, 5, 8), torch.randn(1, 3, 8), torch.randn(1, 5, 8)
    y = layer.norm1(q + ref(q + pos, kv, kv, need_weights=False)[0])
    expected = layer.norm2(y + layer.fc2(torch.relu(layer.fc1(y))))
    torch.testing.assert_close(layer(q, kv, kv, query_pos=pos), expected, atol=1e-6, rtol=1e-5)


@pytest.fixture(scope="module")
def tiny():
    model = tiny_model(seed=0)
    # Make every frame an "object" frame, so pointers come from obj_ptr_proj (not no_obj_ptr).
    with torch.no_grad():
        model.sam2.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.fill_(20.0)
    return model


def _run(model, num_frames=3, ids=(0, 5, 9, 3, 2)):
    size = model.config.sam2.image_size
    beit = torch.randn(num_frames, 3, model.config.beit3.image_size, model.config.beit3.image_size)
    sam = torch.randn(num_frames, 1, 3, size, size)
    input_ids = torch.tensor([ids])
    prompts, prior = model.encode_expression(beit, input_ids, input_ids != 3)
    return prompts, prior, list(model.propagate(lambda start, stop: sam[start:stop, 0], prompts))


def test_full_model_shapes(tiny):
    tiny.eval()
    with torch.no_grad():
        prompts, prior, frames = _run(tiny, num_frames=4)
    g = TINY.beit3.grid_size
    assert prior.prior.shape == (4, 1, g, g)
    assert prompts.global_context.shape == (1, 4 * g * g, 256)
    assert prompts.global_patches.shape == (1, 4 * (g // 2) ** 2, 256)
    assert [f.frame_index for f in frames] == [0, 1, 2, 3]
    low = TINY.sam2.image_size // 4
    for f in frames:
        assert f.heads.lowres_logits.shape == (1, 1, low, low)
        assert f.heads.ious.shape == (1, 3)  # multimask on every frame
        assert torch.isfinite(f.heads.lowres_logits).all()
        assert f.heads.obj_ptr.shape == (1, 256)


def test_no_object_frames_are_gated(tiny):
    tiny.eval()
    head = tiny.sam2.sam_mask_decoder.pred_obj_score_head.layers[-1]
    with torch.no_grad():
        head.bias.fill_(-20.0)
        _, _, frames = _run(tiny, num_frames=2)
        head.bias.fill_(20.0)
    for f in frames:
        assert (f.heads.lowres_logits == -1024).all()
        assert not (f.heads.lowres_logits_before == -1024).all()
        torch.testing.assert_close(f.heads.obj_ptr, tiny.sam2.no_obj_ptr)


# Parameters that legitimately get no gradient from a mask loss at inference-time routing.
UNUSED = {
    "beit3.vision_embed.mask_token",  # masked-image pre-training only
    "sam2.mask_downsample.weight", "sam2.mask_downsample.bias",  # SAM 2 mask-as-output path (off)
    "sam2.no_mem_pos_enc",  # unused with directly_add_no_mem_embed
    "sam2.no_obj_ptr",  # every frame has the object in this test
    "text_similarity_head.weight", "text_similarity_head.bias",  # training "sim" loss only
    "sam2.sam_prompt_encoder.no_mask_embed.weight",  # a dense prompt is always given
}
UNUSED_PREFIXES = (
    "sam2.sam_prompt_encoder.point_embeddings.",  # no clicks: only not_a_point_embed is used
    "sam2.sam_mask_decoder.iou_prediction_head.",  # only argmax'ed (selection)
    "sam2.sam_mask_decoder.output_hypernetworks_mlps.0.",  # single-mask output, unused with multimask
    "sam2.sam_mask_decoder.pred_obj_score_head.",  # only thresholded (hard gate)
)


def test_gradients_reach_exactly_the_trainable_parameters(tiny):
    tiny.train()
    tiny.zero_grad()
    _, prior, frames = _run(tiny, num_frames=3)
    # All three multimask outputs enter the loss, so each hypernetwork MLP is exercised.
    loss = sum(f.heads.multimask_logits.float().mean() for f in frames) + prior.prior.mean()
    loss.backward()
    encoder = {n for n, _ in tiny.named_parameters() if n.startswith("sam2.image_encoder.")}
    assert encoder, "the SAM 2 image encoder has parameters"
    for name, param in tiny.named_parameters():
        if name in encoder:
            assert not param.requires_grad and param.grad is None, f"{name} must stay frozen"
            continue
        assert param.requires_grad, f"{name} should be trainable"
        unused = name in UNUSED or name.startswith(UNUSED_PREFIXES)
        got = param.grad is not None and bool(param.grad.abs().sum() > 0)
        assert got != unused, f"{name}: gradient {'present' if got else 'missing'}"
    tiny.eval()


@pytest.mark.parametrize("max_cond, expected", [(-1, [0, 5, 6, 4, 3, 2, 1]), (2, [5, 6, 4, 3, 2, 1, 0])])
def test_object_pointer_history_follows_sam2_conditioning_frame_selection(max_cond, expected):
    """Several conditioning frames: SAM 2's closest-frame selection (``max_cond_frames_in_attn``),
    only past ones in eval, and an unselected conditioning frame counts as a plain history frame."""
    sam2 = tiny_model(seed=0).sam2.eval()
    sam2.max_cond_frames_in_attn = max_cond
    dim = sam2.hidden_dim
    entry = lambda t: {"obj_ptr": torch.full((1, dim), float(t))}  # noqa: E731
    output_dict = {
        "cond_frame_outputs": {t: entry(t) for t in (0, 5, 9)},
        "non_cond_frame_outputs": {t: entry(t) for t in (1, 2, 3, 4, 6)},
    }
    pointers, pos = sam2.object_pointer_history(7, output_dict, num_frames=12)
    assert pointers[0, :, 0].tolist() == expected
    distances = [abs(7 - t) for t in expected]
    reference = get_1d_sine_pe(torch.tensor(distances) / (12 - 1), dim=dim)
    torch.testing.assert_close(pos[0], reference)
