"""What one app example costs on this machine: seconds and peak memory of a full request.

Builds a checkpoint of the given preset with synthetic weights (and a small tokenizer) unless
one is given, then runs an example of examples/examples.json through the app's three steps
exactly as the Segment button does (default settings): ``prepare_request`` (decode, tokenise),
``run_gpu_job`` (the GPU function's work) and ``finish_request`` (exports, inspector).

    python bench/app_example_cost.py [--example 0] [--preset mini] [--checkpoint DIR]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def _status_kb(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--example", type=int, default=0)
    parser.add_argument("--preset", default="mini")
    parser.add_argument("--checkpoint", type=Path)
    args = parser.parse_args()

    import torch

    from mpg_sam2.app.gpu_job import run_gpu_job
    from mpg_sam2.app.models import ModelPool
    from mpg_sam2.app.requests import OVERLAYS, finish_request, prepare_request

    checkpoint = args.checkpoint
    if checkpoint is None:
        from mpg_sam2.checkpoint.pretrained import save_pretrained
        from mpg_sam2.reference import build_with_authors_weights
        from mpg_sam2.synthetic_weights import read_layout
        from tiny_model import tiny_tokenizer

        layout = read_layout(ROOT / "tests" / "fixtures" / f"layout_{args.preset.replace('-', '_')}.txt")
        folder = Path(tempfile.mkdtemp(prefix="mpg_sam2_cost_"))
        model = build_with_authors_weights(layout, 0, args.preset)
        checkpoint = save_pretrained(model, folder / "ckpt", tokenizer=tiny_tokenizer(folder / "tok"))
        del model
    example = json.loads((ROOT / "examples" / "examples.json").read_text())["examples"][args.example]
    video = ROOT / "examples" / example["video"]
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    start = time.perf_counter()
    pretrained = ModelPool(torch.device("cpu")).load(str(checkpoint))
    load_s = time.perf_counter() - start
    request = prepare_request(str(video), "\n".join(example["expressions"]), str(checkpoint), pretrained, 64, 0, 0.5,
                              list(OVERLAYS), enforce_gpu_budget=False)
    result = finish_request(request, run_gpu_job(request.job, pretrained), "cpu")
    total = time.perf_counter() - start
    print(f"example {args.example} ({example['video']}, {len(example['expressions'])} expressions, "
          f"{result.num_frames} frames), {args.preset} preset on CPU: {total:.1f} s in all "
          f"(model load {load_s:.1f} s); peak RSS {_status_kb('VmHWM') / 1024:.0f} MB")
    print(result.stage_text)


if __name__ == "__main__":
    main()
