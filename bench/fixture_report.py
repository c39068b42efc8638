"""Largest error of every compared array per reference fixture, against its tolerance.

    python bench/fixture_report.py      (prints a Markdown table per case; ~15 s per case on 2 cores)
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from reference_capture import CASES, run_and_capture  # noqa: E402
from test_reference_fixtures import FEATURES, LOGITS, TIER1  # noqa: E402


def main() -> None:
    for case in CASES:
        start = time.perf_counter()
        reference, ours = run_and_capture(case)
        seconds = time.perf_counter() - start
        ref = {}
        for group in ("intermediates_prior", "intermediates_sam", "lowres_before", "lowres_after", "outputs"):
            ref.update(reference[group])
        print(f"\n### {case} ({seconds:.1f} s including model build)\n")
        print("| array | frame 0 error (whole array for memory-independent rows) | frames >= 1 error | tolerance (frame 0 / later) |")
        print("|---|---|---|---|")
        rows = [(k, "rel", 1e-4, 1e-4) for k in TIER1] + [(k, "rel", 1e-4, 2e-3) for k in FEATURES]
        rows += [(k, "abs", 1e-3, 5e-3) for k in LOGITS]
        rows += [("objfusion_out", "rel", 2e-3, 2e-3), ("obj_memory", "rel", 2e-3, 2e-3), ("obj_memory_pos", "abs", 1e-5, 1e-5),
                 ("object_score_logits", "abs", 1e-4, 1e-4), ("dec_iou", "abs", 1e-4, 1e-4)]
        for key, kind, tol0, tol1 in rows:
            a, b = ours[key].astype(np.float64), ref[key].astype(np.float64)
            diff = np.abs(a - b).reshape(len(a), -1).max(axis=1) if a.ndim > 1 else np.abs(a - b)
            scale = float(np.abs(b).max()) if kind == "rel" else 1.0
            per_frame_key = key in FEATURES or key in LOGITS or key in ("object_score_logits", "dec_iou")
            first = diff[0] if per_frame_key else diff.max()
            later = diff[1:].max() if per_frame_key and len(diff) > 1 else float("nan")
            unit = f" x max|ref| ({scale:.3g})" if kind == "rel" else " abs"
            print(f"| {key} | {first:.2e} | {later:.2e} | {tol0 * scale:.1e} / {tol1 * scale:.1e}{unit} |")
        decided = np.abs(ref["final_logits"]) >= 5e-3
        flips = int(((ours["final_masks"] != ref["final_masks"]) & decided).sum())
        near = int((ours["final_masks"] != ref["final_masks"]).sum())
        print(f"\nmask pixels differing: {near} in all, {flips} where |ref logit| >= 5e-3; "
              f"best mask index equal: {bool((ours['best_mask_idx'] == ref['best_mask_idx']).all())}; "
              f"no-object frames equal: {bool((ours['is_object'] == ref['is_object']).all())}")


if __name__ == "__main__":
    main()
