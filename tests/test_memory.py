"""Memory grows linearly with the video: no (T*196)^2 attention matrix is ever materialised."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from mpg_sam2.config import AggregatorConfig, MaskPriorConfig
from mpg_sam2.model.global_historical_aggregator import GlobalHistoricalAggregator
from mpg_sam2.model.mask_prior_generator import MaskPriorGenerator

GRID = 14  # BEiT-3's 224 px / patch 16


class LargestTensor(TorchDispatchMode):
    """Records the largest tensor any operator produces."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_no_operator_produces_a_video_sized_attention_matrix():
    T = 48
    tokens = T * GRID * GRID
    gen = MaskPriorGenerator(32, 16, GRID, MaskPriorConfig(num_heads=4, ffn_dim=64, attention_query_chunk=1024))
    agg = GlobalHistoricalAggregator(16, GRID, AggregatorConfig(num_heads=4, ffn_dim=32))
    with torch.inference_mode(), LargestTensor() as probe:
        out = gen(torch.randn(T, 32), torch.randn(T, GRID * GRID, 32))
        context = out.global_context[None]
        patches = agg.compress_global_context(context)
        agg.fuse_pixels(torch.randn(1, 16, 64, 64), torch.randn(1, 16, 64, 64), patches, torch.randn(1, 6, 16))
        agg.fuse_mask_tokens(torch.randn(1, 4, 16), context.flatten(1, 2), None, None)
    # A materialised score matrix over the video tokens would be tokens^2 per head.
    assert probe.largest < tokens * tokens / 10, (probe.largest, tokens * tokens)


def test_mask_prior_generator_peak_memory_for_512_frames(tmp_path: Path):
    """Run in a fresh process so its peak RSS is the generator's own."""
    script = textwrap.dedent(
        """
        import json, sys, torch
        sys.path.insert(0, %r)
        from mpg_sam2.config import MaskPriorConfig
        from mpg_sam2.model.mask_prior_generator import MaskPriorGenerator
        torch.manual_seed(0)
        T, dim = 512, 32
        gen = MaskPriorGenerator(dim, 32, 14, MaskPriorConfig(num_heads=2, ffn_dim=64)).eval()
        cls, patches = torch.randn(T, dim), torch.randn(T, 196, dim)
        def status_kb(field):
            for line in open("/proc/self/status"):
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        # Reset the peak-RSS counter (Linux), so VmHWM afterwards is this run's peak.
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = status_kb("VmRSS")
        with torch.inference_mode():
            out = gen(cls, patches)
        after = status_kb("VmHWM")
        print(json.dumps({"peak_increase_mb": (after - before) / 1024, "finite": bool(torch.isfinite(out.prior).all()),
                          "shape": list(out.prior.shape)}))
        """
        % str(Path(__file__).resolve().parents[1])
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    tokens = 512 * 196
    materialised_mb = tokens * tokens * 4 / 2**20  # one float32 score matrix, one head: ~38 GiB
    assert report["shape"] == [512, 1, 14, 14] and report["finite"]
    assert report["peak_increase_mb"] < materialised_mb / 50, report
    print(f"T=512: peak increase {report['peak_increase_mb']:.0f} MB vs {materialised_mb:.0f} MB for one score matrix")
