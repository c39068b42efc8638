"""GPU readiness check (run on a CUDA machine; never part of the test suite).

1. The ``mini`` reference fixtures on CUDA in float32: largest errors against the authors'
   outputs (same tolerances as the CPU tests).
2. ``release-large`` (SAM 2.0 Hiera-L + BEiT-3 large) with synthetic weights on a 16-frame clip,
   in float32 and with bf16 autocast: time per frame, peak GPU memory, and the mask IoU
   between the two precisions.

    python bench/gpu_check.py [--frames 16] [--height 480] [--width 640]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mpg_sam2.reference import build_with_authors_weights, run_case  # noqa: E402
from mpg_sam2.synthetic_weights import read_layout  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"


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
        del model
        torch.cuda.empty_cache()


def release_large_check(device: torch.device, num_frames: int, height: int, width: int) -> None:
    t0 = time.perf_counter()
    layout = read_layout(FIXTURES / "layout_release_large.txt")
    model = build_with_authors_weights(layout, 0, preset="release-large").to(device)
    print(f"release-large built with synthetic weights in {time.perf_counter() - t0:.1f} s "
          f"({sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters)")
    frames = synthetic_clip(num_frames, height, width)
    ids = np.array([[0, 1209, 5873, 73, 86, 3478, 4, 70, 23937, 2]], dtype=np.int64)
    results = {}
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        run_case(model, frames[:2], ids, autocast_dtype=dtype)  # warm-up: kernels, allocator
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        run = run_case(model, frames, ids, autocast_dtype=dtype)
        torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        # Encoders alone (BEiT-3 on every frame + mask prior generator), for the stage split.
        beit = torch.randn(num_frames, 3, 224, 224, device=device)
        mask = torch.ones(1, ids.shape[1], dtype=torch.bool, device=device)
        torch.cuda.synchronize()
        enc_start = time.perf_counter()
        with torch.inference_mode(), model.autocast(dtype):
            model.encode_expression(beit, torch.as_tensor(ids, device=device), mask)
        torch.cuda.synchronize()
        encode_s = time.perf_counter() - enc_start
        peak = torch.cuda.max_memory_allocated() / 2**30
        results[name] = run
        fg = (run.final_logits > 0).float().mean().item()
        print(f"release-large {name}: {num_frames} frames {height}x{width}: {elapsed:.2f} s, "
              f"{1000 * elapsed / num_frames:.0f} ms/frame, {num_frames / elapsed:.1f} frames/s, "
              f"peak GPU memory {peak:.2f} GiB, foreground {fg:.3f}; of which BEiT-3 + mask prior "
              f"{1000 * encode_s:.0f} ms")
    # Synthetic weights may put every frame below the object-score threshold (empty final
    # masks), so the selected low-res logits before the no-object gate are compared too.
    for label, key in (("final masks", lambda r: r.final_logits),
                       ("low-res masks before the no-object gate",
                        lambda r: torch.cat([f.heads.lowres_logits_before[:, 0] for f in r.frames]).cpu())):
        a, b = key(results["fp32"]) > 0, key(results["bf16"]) > 0
        union = (a | b).sum().item()
        iou = (a & b).sum().item() / union if union else 1.0
        print(f"fp32 vs bf16, {label}: IoU {iou:.4f}, foreground fp32 {a.float().mean():.3f} bf16 {b.float().mean():.3f}")
    scores = [torch.cat([f.heads.object_score_logits[:, 0] for f in results[k].frames]).cpu() for k in ("fp32", "bf16")]
    prior_err = (results["fp32"].mask_prior.prior - results["bf16"].mask_prior.prior.float()).abs().max().item()
    print(f"fp32 vs bf16: object-score sign agreement {(scores[0] > 0).eq(scores[1] > 0).float().mean():.3f}, "
          f"max object-score difference {(scores[0] - scores[1]).abs().max():.3e}, max prior difference {prior_err:.3e}")


def profile_precisions(device: torch.device, num_frames: int, height: int, width: int) -> None:
    """Top CUDA and CPU ops of one release-large run per precision (where the time goes)."""
    from torch.profiler import ProfilerActivity, profile

    model = build_with_authors_weights(read_layout(FIXTURES / "layout_release_large.txt"), 0, preset="release-large")
    model = model.to(device)
    frames = synthetic_clip(num_frames, height, width)
    ids = np.array([[0, 1209, 5873, 73, 86, 3478, 4, 70, 23937, 2]], dtype=np.int64)
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        run_case(model, frames[:2], ids, autocast_dtype=dtype)
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            run_case(model, frames, ids, autocast_dtype=dtype)
            torch.cuda.synchronize()
        print(f"--- {name}: top ops by device time")
        print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=10, max_name_column_width=60))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--skip-fixtures", action="store_true")
    parser.add_argument("--profile", action="store_true", help="also print the top ops per precision")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: this script measures the GPU path; run the CPU tests instead")
    device = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = False  # float32 stays float32 (the reference)
    torch.backends.cudnn.allow_tf32 = False
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(device)}")
    if not args.skip_fixtures:
        fixture_check(device)
    release_large_check(device, args.frames, args.height, args.width)
    if args.profile:
        profile_precisions(device, args.frames, args.height, args.width)


if __name__ == "__main__":
    main()
