"""GPU check and benchmark (run on a CUDA machine; never part of the test suite).

1. The ``mini`` reference fixtures on CUDA in float32: largest errors against the authors'
   outputs (same tolerances as the CPU tests).
2. ``release-large`` (SAM 2.0 Hiera-L + BEiT-3 large) with synthetic weights, in float32, held
   in bf16 (the authors' bf16 inference, mpg_sam2/model/precision.py), and bf16 with TF32
   matmuls: their agreement with float32 on a 16-frame clip (low-res mask IoU, object-score
   sign agreement).
3. For T = 8, 32, 128 frames and K = 1, 4 expressions, per variant: ms per frame end to end
   (decoded frames to masks on the host), per stage, frames per second, peak GPU memory.
4. bf16 with SAM 2's per-frame parts compiled (mpg_sam2/model/compilation.py; skip it with
   --no-compile): its agreement with fp32, the time its first runs take (compiling included)
   and its rows at the largest T only, to keep the whole run in one lease.
Estimated at about 6 minutes on an H200 without compiling (not run yet); how long compiling
release-large takes is unknown, which is why the compiled variant comes last. Rows print as
they finish, so a run cut short still leaves its numbers. Every variant's weights stay on the
GPU for the whole run (printed before the table): the peak column includes them all, so
compare it within one run, or run with --no-compile to compare with runs before compiling.

``--device cpu --preset mini --skip-fixtures --frames 2 --expressions 1 2 --agreement-frames 2``
checks on a CPU that the script runs (5 minutes on 1 thread, 90 s of it compiling; add
``--no-compile`` to skip that).

    python bench/gpu_check.py [--frames 8 32 128] [--expressions 1 4] [--image-batch-size 1] [--profile]
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mpg_sam2.frames import encoder_input  # noqa: E402
from mpg_sam2.model.compilation import compile_sam2  # noqa: E402
from mpg_sam2.model.frame_features import FrameFeatureSource  # noqa: E402
from mpg_sam2.model.precision import hold_in_precision, sam2_input  # noqa: E402
from mpg_sam2.pipeline.expressions import PreparedExpression  # noqa: E402
from mpg_sam2.pipeline.segmentation import SegmentationOptions, segment_video  # noqa: E402
from mpg_sam2.reference import build_with_authors_weights, run_case  # noqa: E402
from mpg_sam2.synthetic_weights import read_layout  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
# A sentence of token ids inside each preset's vocabulary, [BOS ... EOS] (pad is id 3).
SENTENCES = {
    "release-large": np.array([[0, 1209, 5873, 73, 86, 3478, 4, 70, 23937, 2]], dtype=np.int64),
    "mini": np.array([[0, 17, 245, 963, 58, 2]], dtype=np.int64),
}


def synthetic_clip(num_frames: int, height: int, width: int) -> np.ndarray:
    """A moving disc and a moving square over a colour gradient, uint8 [T, H, W, 3]."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = []
    for t in range(num_frames):
        img = np.stack([xx / width * 200, yy / height * 200, np.full_like(xx, 80)], axis=-1)
        cx, cy = width * (0.2 + 0.6 * t / max(1, num_frames - 1)), height * 0.5
        disc = (xx - cx) ** 2 + (yy - cy) ** 2 < (0.12 * min(height, width)) ** 2
        img[disc] = (230, 40, 40)
        sx = int(width * (0.7 - 0.4 * t / max(1, num_frames - 1)))
        img[int(height * 0.15) : int(height * 0.35), sx : sx + width // 8] = (40, 220, 60)
        frames.append(img.clip(0, 255).astype(np.uint8))
    return np.stack(frames)


def fixture_check(device: torch.device) -> None:
    layout = read_layout(FIXTURES / "layout_mini.txt")
    for case in ("public_a", "public_b"):
        folder = FIXTURES / "reference" / case
        inputs, outputs = np.load(folder / "inputs.npz"), np.load(folder / "outputs.npz")
        model = build_with_authors_weights(layout, int(inputs["weight_seed"])).to(device)
        run = run_case(model, inputs["frames"], inputs["input_ids"])
        final = run.final_logits.numpy()
        err = np.abs(final - outputs["final_logits"]).reshape(len(final), -1).max(axis=1)
        decided = np.abs(outputs["final_logits"]) >= 5e-3
        flips = int((((final > 0) != outputs["final_masks"]) & decided).sum())
        scores = torch.cat([f.heads.object_score_logits[:, 0] for f in run.frames]).cpu().numpy()
        print(f"fixture {case} on {device}: final-logit error per frame {np.array2string(err, precision=2)} "
              f"(limits 1e-3 frame 0, 5e-3 later); object-score error "
              f"{np.abs(scores - outputs['object_score_logits']).max():.2e}; mask flips outside margin {flips}")
        # The pipeline's masks and scores reach the host by asynchronous copies (host_copies.py).
        ids = torch.as_tensor(inputs["input_ids"])
        piped = segment_video(inputs["frames"], [PreparedExpression("case", ids, ids != 3, False)], model).expressions[0]
        same = np.array_equal(piped.masks, final > 0) and np.allclose(piped.object_scores, scores, atol=0)
        print(f"fixture {case}: pipeline masks and scores equal the model core's: {same}")
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()


@dataclass
class Variant:
    """One row kind of the table: a model and whether float32 matmuls may use TF32."""

    model: torch.nn.Module
    sentence: np.ndarray  # [1, L] token ids in the model's vocabulary
    tf32: bool = False
    largest_t_only: bool = False  # a compiled model: its speed rows at the largest T only

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = self.tf32
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def model_variants(device: torch.device, preset: str, compiled: bool) -> dict[str, Variant]:
    """``preset`` with synthetic weights: float32 (the reference), held in bf16 (precision.py),
    the bf16 model with TF32 matmuls in SAM 2's float32 part (not a product option yet:
    measured here to see whether it pays) and, with ``compiled``, a copy of the bf16 model
    with SAM 2's per-frame parts compiled (``segment --compile``)."""
    t0 = time.perf_counter()
    layout = read_layout(FIXTURES / f"layout_{preset.replace('-', '_')}.txt")
    model = build_with_authors_weights(layout, 0, preset=preset).to(device).eval()
    print(f"{preset} built with synthetic weights in {time.perf_counter() - t0:.1f} s "
          f"({sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters)")
    bf16 = hold_in_precision(copy.deepcopy(model), "bf16")
    ids = SENTENCES[preset]
    variants = {"fp32": Variant(model, ids), "bf16": Variant(bf16, ids), "bf16+tf32": Variant(bf16, ids, tf32=True)}
    if compiled:
        variants["bf16+compile"] = Variant(compile_sam2(copy.deepcopy(bf16)), ids, largest_t_only=True)
    return variants


def agreement(variants: dict[str, Variant], num_frames: int, height: int, width: int) -> None:
    """Each variant against fp32 on one clip: low-res mask IoU before the no-object gate
    (synthetic weights may put every frame below the object-score threshold), final-mask IoU
    and object-score sign agreement."""
    frames = synthetic_clip(num_frames, height, width)
    runs = {}
    for name, variant in variants.items():
        with variant.active():
            start = time.perf_counter()
            runs[name] = run_case(variant.model, frames, variant.sentence)
            _sync()
        # The first run of a compiled model includes compiling it: its warm-up cost.
        print(f"{name}: first {num_frames}-frame run (the agreement clip) took {time.perf_counter() - start:.1f} s", flush=True)
    for name in list(variants)[1:]:
        for label, key in (("final masks", lambda r: r.final_logits),
                           ("low-res masks before the no-object gate",
                            lambda r: torch.cat([f.heads.lowres_logits_before[:, 0] for f in r.frames]).cpu())):
            a, b = key(runs["fp32"]) > 0, key(runs[name]) > 0
            union = (a | b).sum().item()
            iou = (a & b).sum().item() / union if union else 1.0
            print(f"fp32 vs {name}, {num_frames} frames, {label}: IoU {iou:.4f}, "
                  f"foreground fp32 {a.float().mean():.3f} {name} {b.float().mean():.3f}")
        scores = [torch.cat([f.heads.object_score_logits[:, 0] for f in runs[k].frames]).cpu() for k in ("fp32", name)]
        prior_err = (runs["fp32"].mask_prior.prior - runs[name].mask_prior.prior.float()).abs().max().item()
        print(f"fp32 vs {name}: object-score sign agreement {(scores[0] > 0).eq(scores[1] > 0).float().mean():.3f}, "
              f"max object-score difference {(scores[0] - scores[1]).abs().max():.3e}, max prior difference {prior_err:.3e}")


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _synced(fn) -> float:
    _sync()
    start = time.perf_counter()
    fn()
    _sync()
    return time.perf_counter() - start


def _reset_peak() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def _peak_gib() -> float:
    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")


def speed_table(variants: dict[str, Variant], frame_counts: list[int], expression_counts: list[int],
                height: int, width: int, image_batch_size: int) -> None:
    """End to end (decoded frames to masks on the host, segment_video) per precision, T and K,
    with the stages timed alone: BEiT-3 + mask prior for K expressions, SAM 2's image encoder
    on T frames; tracking and post-processing are the rest."""
    options = SegmentationOptions(image_batch_size=image_batch_size)
    rows = []
    if torch.cuda.is_available():
        print(f"weights and buffers resident before the table: {torch.cuda.memory_allocated() / 2**30:.2f} GiB", flush=True)
    print(f"| variant | T | K | ms/frame | fps | BEiT-3 + prior ms/frame | image encoder ms/frame | "
          f"tracking + rest ms/frame | peak GPU GiB |", flush=True)
    print("|---|---|---|---|---|---|---|---|---|", flush=True)
    for name, variant in variants.items():
        model = variant.model
        with variant.active():
            warm_s = _synced(lambda: segment_video(synthetic_clip(2, height, width), _expressions(1, variant.sentence),
                                                   model, options=options))
            print(f"{name}: warm-up segment_video of 2 frames {warm_s:.1f} s", file=sys.stderr, flush=True)
            cfg = model.config
            for t in frame_counts[-1:] if variant.largest_t_only else frame_counts:
                frames = synthetic_clip(t, height, width)
                for k in expression_counts:
                    _reset_peak()
                    total = _synced(lambda: segment_video(frames, _expressions(k, variant.sentence), model, options=options))
                    peak = _peak_gib()
                    beit = encoder_input(frames, cfg.beit3.image_size).to(model.device)

                    def encode() -> None:
                        with torch.inference_mode():
                            for e in _expressions(k, variant.sentence):
                                model.encode_expression(beit, e.input_ids.to(model.device), e.attention_mask.to(model.device))

                    def image_encoder() -> None:
                        sam = lambda a, b: sam2_input(encoder_input(frames[a:b], cfg.sam2.image_size).to(model.device),  # noqa: E731
                                                      model.grounding_dtype)
                        source = FrameFeatureSource(model.sam2, sam, t, batch_size=image_batch_size)
                        with torch.inference_mode():
                            for i in range(t):
                                source(i)

                    encode_s, image_s = _synced(encode), _synced(image_encoder)
                    rows.append((name, t, k, total, encode_s, image_s, peak))
                    rest = total - encode_s - image_s
                    print(f"| {name} | {t} | {k} | {1000 * total / t:.1f} | {t / total:.1f} | {1000 * encode_s / t:.1f} | "
                          f"{1000 * image_s / t:.1f} | {1000 * rest / t:.1f} | {peak:.2f} |", flush=True)
    by = {(n, t, k): total for n, t, k, total, *_ in rows}
    for t in frame_counts:
        for k in expression_counts[1:]:
            for name in variants:
                if (name, t, k) in by:
                    print(f"{name} T={t}: K={k} costs {by[(name, t, k)] / by[(name, t, expression_counts[0])]:.2f}x "
                          f"K={expression_counts[0]}")
        for k in expression_counts:
            for name in list(variants)[1:]:
                if (name, t, k) in by:
                    print(f"T={t} K={k}: {name} takes {by[(name, t, k)] / by[('fp32', t, k)]:.2f}x the fp32 time")


def _expressions(count: int, sentence: np.ndarray) -> list[PreparedExpression]:
    ids = torch.as_tensor(sentence)
    return [PreparedExpression(f"expression {i}", ids, ids != 3, False) for i in range(count)]


def profile_precisions(variants: dict[str, Variant], num_frames: int, height: int, width: int) -> None:
    """Top CUDA and CPU ops of one release-large run per variant (where the time goes)."""
    from torch.profiler import ProfilerActivity, profile

    frames = synthetic_clip(num_frames, height, width)
    for name, variant in variants.items():
        with variant.active():
            run_case(variant.model, frames[:2], variant.sentence)
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                run_case(variant.model, frames, variant.sentence)
                _sync()
        print(f"--- {name}: top ops by device time")
        print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=10, max_name_column_width=60))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[8, 32, 128])
    parser.add_argument("--expressions", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--image-batch-size", type=int, default=1)
    parser.add_argument("--skip-fixtures", action="store_true")
    parser.add_argument("--profile", action="store_true", help="also print the top ops per precision (16 frames)")
    parser.add_argument("--device", default="cuda", help="cpu only checks that the script runs (slow, no memory column)")
    parser.add_argument("--agreement-frames", type=int, default=16)
    parser.add_argument("--preset", default="release-large", choices=["release-large", "mini"])
    parser.add_argument("--no-compile", action="store_true", help="leave out the compiled bf16 variant")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this script measures the GPU path; run the CPU tests instead")
    if device.type == "cuda":
        torch.cuda.set_device(device)  # syncs and peak-memory counters below act on the current device
    torch.backends.cuda.matmul.allow_tf32 = False  # float32 stays float32 (the reference)
    torch.backends.cudnn.allow_tf32 = False
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}")
    if not args.skip_fixtures:
        fixture_check(device)
    variants = model_variants(device, args.preset, compiled=not args.no_compile)
    agreement(variants, args.agreement_frames, args.height, args.width)
    speed_table(variants, args.frames, args.expressions, args.height, args.width, args.image_batch_size)
    if args.profile:
        profile_precisions(variants, 16, args.height, args.width)


if __name__ == "__main__":
    main()
