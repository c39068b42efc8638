"""Pipeline benchmark on this machine: time per stage and per frame, peak memory.

``mini`` preset (Hiera-T at 1024 px, BEiT-3 1024-d with 2 layers) with synthetic weights, on a
synthetic clip, for T frames and K expressions. Each (T, K) runs in a fresh process so its
peak resident memory is its own. Prints a Markdown table; not a test.

    python bench/pipeline_bench.py [--frames 8 32 128] [--expressions 1 4] [--preset mini] [--device cpu]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EXPRESSION_IDS = [  # token ids inside the mini vocabulary, [BOS ... EOS]
    [0, 17, 245, 963, 58, 2],
    [0, 88, 412, 7, 2],
    [0, 301, 55, 610, 29, 77, 2],
    [0, 940, 12, 2],
]


def _status_kb(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def run_one(num_frames: int, num_expressions: int, preset: str, device: str) -> dict:
    import numpy as np
    import torch

    from mpg_sam2.pipeline.expressions import PreparedExpression
    from mpg_sam2.pipeline.segmentation import segment_video
    from mpg_sam2.reference import build_with_authors_weights
    from mpg_sam2.synthetic_weights import read_layout

    from gpu_check import synthetic_clip  # same synthetic clip as the GPU check

    layout_file = {"mini": "layout_mini.txt", "release-large": "layout_release_large.txt"}[preset]
    model = build_with_authors_weights(read_layout(ROOT / "tests" / "fixtures" / layout_file), 0, preset).to(device)
    frames = synthetic_clip(num_frames, 240, 320)
    expressions = [
        PreparedExpression(f"expression {k}", torch.tensor([ids]), torch.tensor([ids]) != 3, False)
        for k, ids in enumerate(EXPRESSION_IDS[:num_expressions])
    ]
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak-RSS counter: VmHWM below is this run's peak
    baseline = _status_kb("VmRSS")
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = segment_video(frames, expressions, model, fps=10.0)
    total = time.perf_counter() - start
    report = {
        "frames": num_frames,
        "expressions": num_expressions,
        "total_s": total,
        "stages": result.stage_seconds,
        "peak_rss_mb": _status_kb("VmHWM") / 1024,
        "peak_increase_mb": (_status_kb("VmHWM") - baseline) / 1024,
    }
    if device.startswith("cuda"):
        report["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[8, 32, 128])
    parser.add_argument("--expressions", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--preset", default="mini", choices=["mini", "release-large"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--one", nargs=2, type=int, metavar=("T", "K"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    if args.one:
        print(json.dumps(run_one(args.one[0], args.one[1], args.preset, args.device)))
        return
    rows = []
    for t in args.frames:
        for k in args.expressions:
            cmd = [sys.executable, __file__, "--one", str(t), str(k), "--preset", args.preset, "--device", args.device]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            rows.append(json.loads(out))
            print(f"done T={t} K={k}: {rows[-1]['total_s']:.1f}s", file=sys.stderr, flush=True)
    stage_names = ["preprocess", "beit3_and_mask_prior", "sam2_image_encoder", "sam2_tracking", "postprocess"]
    print(f"| T | K | total s | s/frame | " + " | ".join(stage_names) + " | peak RSS MB | peak increase MB |")
    print("|" + "---|" * (6 + len(stage_names)))
    for r in rows:
        stages = " | ".join(f"{r['stages'].get(s, 0.0):.1f}" for s in stage_names)
        print(f"| {r['frames']} | {r['expressions']} | {r['total_s']:.1f} | {r['total_s'] / r['frames']:.2f} | "
              f"{stages} | {r['peak_rss_mb']:.0f} | {r['peak_increase_mb']:.0f} |")
    by = {(r["frames"], r["expressions"]): r for r in rows}
    ks = sorted(args.expressions)
    if len(ks) > 1:
        for t in args.frames:
            ratio = by[(t, ks[-1])]["total_s"] / by[(t, ks[0])]["total_s"]
            print(f"T={t}: K={ks[-1]} costs {ratio:.2f}x K={ks[0]}")
    for k in ks:
        ts = [t for t in sorted(args.frames) if (t, k) in by]
        if len(ts) > 1:
            import numpy as np

            slope = np.polyfit(ts, [by[(t, k)]["peak_rss_mb"] for t in ts], 1)[0]
            print(f"K={k}: peak memory grows {slope:.2f} MB per added frame (linear fit over T={ts})")


if __name__ == "__main__":
    main()
