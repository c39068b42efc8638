"""Run one reference fixture case and collect our tensors in the fixtures' format.

The fixtures (tests/fixtures/reference/<case>/) are inputs, intermediates and outputs of the
authors' code on synthetic weights. Intermediates are collected with forward hooks, so the
model carries no test-only code; the strided "_sub" slices follow meta.json.
"""
from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mpg_sam2.frames import resize_frame
from mpg_sam2.reference import ReferenceRun, build_with_authors_weights, run_case
from mpg_sam2.synthetic_weights import read_layout

FIXTURES = Path(__file__).parent / "fixtures"
REFERENCE = FIXTURES / "reference"
CASES = sorted(p.name for p in REFERENCE.iterdir() if (p / "inputs.npz").exists())


def load_case(case: str) -> dict[str, dict]:
    folder = REFERENCE / case
    data = {name: dict(np.load(folder / f"{name}.npz")) for name in (
        "inputs", "intermediates_prior", "intermediates_sam", "lowres_before", "lowres_after", "outputs")}
    data["meta"] = json.loads((folder / "meta.json").read_text())
    return data


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().float().cpu().numpy()


def run_and_capture(case: str) -> tuple[dict, dict[str, np.ndarray]]:
    """Returns (fixture data, our arrays keyed like the fixture arrays)."""
    data = load_case(case)
    inputs = data["inputs"]
    model = build_with_authors_weights(read_layout(FIXTURES / "layout_mini.txt"), int(inputs["weight_seed"]))
    seen: dict[str, list] = defaultdict(list)

    def keep(name, fn):
        return lambda module, args, out: seen[name].append(fn(args, out))

    def keep_pre(name, fn):
        return lambda module, args, kwargs: seen[name].append(fn(args, kwargs))

    mpg = model.mask_prior_generator
    agg = model.sam2.sam_mask_decoder.aggregator
    hooks = [
        model.beit3.register_forward_hook(keep("beit3", lambda a, o: (o.cls, o.patches, o.text))),
        mpg.spatiotemporal_layer.register_forward_hook(keep("visual_ifi", lambda a, o: o[0])),
        mpg.class_token_proj.register_forward_hook(keep("mask_linear_out", lambda a, o: o)),
        model.sam2.image_encoder.register_forward_hook(
            keep("fpn", lambda a, o: [x.clone() for x in o["backbone_fpn"]])),
        model.sam2.sam_prompt_encoder.register_forward_pre_hook(
            keep_pre("dense_input", lambda a, k: k["masks"].clone()), with_kwargs=True),
        model.sam2.sam_prompt_encoder.register_forward_hook(keep("dense", lambda a, o: o[1])),
        model.sam2.sam_mask_decoder.register_forward_pre_hook(
            keep_pre("decoder_in", lambda a, k: (k["image_embeddings"], k["sparse_prompt_embeddings"])),
            with_kwargs=True),
        agg.pixel_fusion.register_forward_hook(keep("vtlfusion", lambda a, o: o)),
        agg.global_token_fusion.register_forward_hook(keep("mmfusion", lambda a, o: o)),
        agg.historical_token_fusion.register_forward_hook(keep("objfusion", lambda a, o: (o, a[1], a[2]))),
    ]
    try:
        run: ReferenceRun = run_case(model, inputs["frames"], inputs["input_ids"])
    finally:
        for h in hooks:
            h.remove()

    T = inputs["frames"].shape[0]
    cls, patches, text = (torch.cat(x) for x in zip(*seen["beit3"]))
    ours: dict[str, np.ndarray] = {}
    ours["frames_224"] = np.stack([resize_frame(f, 224) for f in inputs["frames"]])
    ours["frames_1024_sha256"] = [
        hashlib.sha256(np.ascontiguousarray(resize_frame(f, 1024)).tobytes()).hexdigest() for f in inputs["frames"]]
    ours["beit3_cls"] = _np(cls)
    ours["beit3_text"] = _np(text)
    ours["beit3_visual_sub"] = _np(patches[:, :, ::32])
    ours["beit3_visual_frame0_sub"] = _np(patches[0, :, ::4])
    ours["visual_ifi_out_sub"] = _np(seen["visual_ifi"][0][:, ::32])
    ours["vmtoken_out"] = _np(run.mask_prior.gated_cls)
    ours["mask_linear_out"] = _np(seen["mask_linear_out"][0])
    ours["mask_prior_logits"] = _np(run.mask_prior.prior_logits)
    ours["mask_prior"] = _np(run.mask_prior.prior)
    ours["temporal_pe"] = _np(model.mask_prior_generator.temporal_encoding(T, torch.device("cpu")))
    ours["mask_pred_frame0"] = _np(run.prompts.global_context[0, :196])
    ours["mask_pred_sub"] = _np(run.prompts.global_context[:, :, ::4])
    ours["text_prompt_embed"] = _np(run.prompts.text_tokens[:, 0])
    ours["text_feat"] = _np(run.prompts.text_features[:, 0])
    ours["sparse_embeddings"] = _np(torch.cat([s for _, s in seen["decoder_in"]]))
    ours["dense_prompt_input_frame0"] = _np(seen["dense_input"][0][0, 0])
    ours["dense_embeddings_sub"] = _np(torch.cat(seen["dense"])[:, ::8, ::4, ::4])
    fpn = [torch.cat(level) for level in zip(*seen["fpn"])]
    ours["image_encoder_fpn0_sub"] = _np(fpn[0][:, ::16, ::16, ::16])
    ours["image_encoder_fpn1_sub"] = _np(fpn[1][:, ::16, ::8, ::8])
    ours["image_encoder_fpn2_sub"] = _np(fpn[2][:, ::16, ::4, ::4])
    ours["pix_feat_with_mem_sub"] = _np(torch.cat([e for e, _ in seen["decoder_in"]])[:, ::8, ::4, ::4])
    ours["vtlfusion_out_sub"] = _np(torch.cat(seen["vtlfusion"])[:, ::32, ::4])
    ours["mmfusion_out"] = _np(torch.cat(seen["mmfusion"]))
    if seen["objfusion"]:
        ours["objfusion_out"] = _np(torch.cat([o for o, _, _ in seen["objfusion"]]))
    n_max = data["intermediates_sam"]["obj_memory"].shape[1]
    obj_memory = np.zeros((T, n_max, 256), np.float32)
    obj_memory_pos = np.zeros((T, n_max, 256), np.float32)
    obj_memory_len = np.zeros(T, np.int64)
    for t, (_, key, value) in enumerate(seen["objfusion"], start=1):
        n = value.shape[1]
        obj_memory[t, :n] = _np(value[0])
        obj_memory_pos[t, :n] = _np(key[0] - value[0])
        obj_memory_len[t] = n
    ours["obj_memory"], ours["obj_memory_pos"], ours["obj_memory_len"] = obj_memory, obj_memory_pos, obj_memory_len
    ours["memory_encoder_out_sub"] = _np(torch.cat([o.memory_features for o in run.frames])[:, ::4, ::4, ::4])
    heads = [o.heads for o in run.frames]
    ours["dec_iou"] = _np(torch.cat([h.ious for h in heads]))
    ours["best_mask_idx"] = torch.cat([h.best_mask_index for h in heads]).numpy()
    ours["object_score_logits"] = _np(torch.cat([h.object_score_logits[:, 0] for h in heads]))
    ours["obj_ptr"] = _np(torch.cat([h.obj_ptr for h in heads]))
    lowres_after = torch.cat([h.lowres_logits[:, 0] for h in heads])
    ours["lowres_logits_before"] = _np(torch.cat([h.lowres_logits_before[:, 0] for h in heads]))
    ours["lowres_logits_after"] = _np(lowres_after)
    video_1024 = F.interpolate(lowres_after[:, None], size=(1024, 1024), mode="bilinear", align_corners=False)[:, 0]
    ours["video_1024_sub"] = _np(video_1024[:, ::16, ::16])
    ours["final_logits"] = _np(run.final_logits)
    ours["final_masks"] = (run.final_logits.sigmoid() > 0.5).numpy()
    ours["is_object"] = ours["object_score_logits"] > 0
    return data, ours
