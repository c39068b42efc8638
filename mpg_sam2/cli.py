"""Command line: ``python -m mpg_sam2 segment VIDEO -e "the man in red" -e "the dog" --out DIR``."""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import warnings
from pathlib import Path
from typing import Sequence

from mpg_sam2.exports import EXPORTS


def _segment_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("segment", help="segment a video for one or more referring expressions")
    p.add_argument("video", type=Path, help="mp4 / webm / mov / avi / mkv / gif file")
    p.add_argument("-e", "--expression", action="append", default=[], help="a referring expression (repeatable)")
    p.add_argument("--expressions-file", type=Path, help="a text file with one expression per line")
    p.add_argument("--out", type=Path, required=True, help="output folder (created)")
    p.add_argument("--model", default="ref-youtube-vos", help="registry name (ref-youtube-vos, mevis, tiny) or a checkpoint folder")
    p.add_argument("--revision", help="Hub revision of a registry model")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                   help="bf16: BEiT-3 and the mask prior in bfloat16, SAM 2 in float32, as the authors' bf16 inference")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile SAM 2's per-frame parts (mpg_sam2.model.compilation): the first frames wait "
                        "while it compiles, so it can pay only on long videos; no --attention with it")
    p.add_argument("--fps", type=float, help="sample frames at this rate (by timestamps)")
    p.add_argument("--every-k", type=int, help="keep every k-th frame")
    p.add_argument("--max-frames", type=int, default=600, help="cap on the number of frames (default 600)")
    p.add_argument("--max-side", type=int, default=1920, help="downscale frames larger than this (default 1920)")
    p.add_argument("--threshold", type=float, default=0.5, help="mask probability threshold (default 0.5)")
    p.add_argument("--attention", action="store_true", help="also record attention overlays")
    p.add_argument("--offload-memory", action="store_true", help="keep per-frame memories on the CPU")
    p.add_argument("--exports", default=",".join(EXPORTS), help=f"comma-separated subset of {','.join(EXPORTS)}")
    p.add_argument(
        "--clicks", type=Path, metavar="FILE.json",
        help='click corrections applied after the first pass: {"expression": 0, "frame": 12, "points": [[x, y, 1], '
             '[x, y, 0]]} or a list of them (label 1 on the object, 0 not on it; all points of one frame in one '
             'entry). expression: index in the order given (-e first, then --expressions-file); frame: index of '
             'the frames as segmented, after --fps / --every-k / --max-frames; x, y: pixels of those frames '
             'after --max-side downscaling (the frames the exports show). Recorded in the zip\'s manifest.json',
    )
    p.set_defaults(func=run_segment)


def run_segment(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from mpg_sam2.checkpoint.pretrained import load_pretrained
    from mpg_sam2.pipeline.clicks import check_corrections, read_corrections
    from mpg_sam2.pipeline.devices import check_precision, select_device
    from mpg_sam2.pipeline.segmentation import Progress, SegmentationOptions
    from mpg_sam2.pipeline.video_file import VideoFileResult, iter_segment_video_file
    from mpg_sam2.video import FrameSampling

    expressions = list(args.expression)
    if args.expressions_file:
        expressions += [line for line in args.expressions_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    exports = [e.strip() for e in args.exports.split(",") if e.strip()]
    unknown = sorted(set(exports) - set(EXPORTS))
    if unknown:
        raise ValueError(f"unknown exports {unknown}; choose from {list(EXPORTS)}")
    if not args.video.exists():
        raise ValueError(f"video {args.video} does not exist")
    if args.compile and args.attention:
        raise ValueError("--attention cannot be recorded on a compiled model: drop --compile or --attention")
    corrections = []
    if args.clicks is not None:
        # A bad clicks file fails here, before the model loads and the video is decoded; its
        # frames and points are checked against the decoded video before the model runs.
        corrections = read_corrections(args.clicks)
        check_corrections(corrections, len(expressions), None, None)
    device = select_device(args.device)
    precision = check_precision(args.precision, device)
    sampling = FrameSampling(target_fps=args.fps, every_k=args.every_k, max_frames=args.max_frames, max_side=args.max_side)
    options = SegmentationOptions(
        threshold=args.threshold, record_attention=args.attention,
        offload_memory_to_cpu=args.offload_memory,
    )
    print(f"loading model {args.model} on {device} ({precision})", file=sys.stderr)
    pretrained = load_pretrained(args.model, device=device, revision=args.revision, precision=precision)
    if args.compile:
        from mpg_sam2.model.compilation import compile_sam2

        compile_sam2(pretrained.model)
        print("compiling SAM 2's per-frame parts: the first frames take longer", file=sys.stderr)
    tokenizer = pretrained.text_tokenizer()
    bars: dict[str, tqdm] = {}
    result = None
    for event in iter_segment_video_file(
        args.video, expressions, pretrained.model, tokenizer,
        out_dir=args.out, exports=exports, sampling=sampling, options=options, corrections=corrections,
    ):
        if isinstance(event, VideoFileResult):
            result = event
            continue
        assert isinstance(event, Progress)
        bar = bars.get(event.stage)
        if bar is None:
            bar = bars[event.stage] = tqdm(total=event.total, desc=event.stage, unit="step", file=sys.stderr)
        bar.n = event.done
        bar.refresh()
    for bar in bars.values():
        bar.close()
    assert result is not None
    seg = result.segmentation
    print(f"{args.video.name}: {seg.num_frames} frames at {seg.fps:.2f} fps, {seg.frame_size[1]}x{seg.frame_size[0]}")
    for note in result.notes:
        print(f"  note: {note}")
    for k, expression in enumerate(seg.expressions):
        present = len(expression.frames_present)
        clicked = f", after {len(expression.corrections)} click corrections" if expression.corrections else ""
        print(f"  [{k}] {expression.text!r}: object in {present}/{seg.num_frames} frames{clicked}")
    total = sum(seg.stage_seconds.values())
    stages = ", ".join(f"{name} {s:.1f}s" for name, s in seg.stage_seconds.items())
    print(f"  time: {total:.1f}s ({stages}); {total / max(1, seg.num_frames):.2f}s per frame")
    if result.exports is not None:
        print("  written:")
        for path in result.exports.paths():
            print(f"    {path}")
    return 0


def _evaluate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate", help="predict a benchmark, write its PNGs, J&F where ground truth exists, the server zip"
    )
    p.add_argument("--dataset", required=True,
                   help="ref-youtube-vos (valid, server), mevis (valid, server), mevis-valid-u or ref-davis17")
    p.add_argument("--root", type=Path, required=True, help="the dataset folder (e.g. ref-youtube-vos, mevis-release, ref-davis)")
    p.add_argument("--out", type=Path, required=True, help="output folder (created; rerun to resume)")
    p.add_argument("--model", help="registry name or checkpoint folder (default: the paper's checkpoint for the dataset)")
    p.add_argument("--revision", help="Hub revision of a registry model")
    p.add_argument("--split", help="another split of the dataset (e.g. train, to score Ref-YouTube-VOS train)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (torchrun: cuda:LOCAL_RANK)")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16"],
                   help="bf16: BEiT-3 and the mask prior in bfloat16, SAM 2 in float32, as the authors' bf16 inference")
    p.add_argument("--threshold", type=float, default=0.5, help="mask probability threshold (default 0.5)")
    p.add_argument("--shard-index", type=int, help="this process's shard (default: torchrun's RANK, else 0)")
    p.add_argument("--shard-count", type=int, help="number of shards (default: torchrun's WORLD_SIZE, else 1)")
    p.add_argument("--max-frames", type=int, help="only the first N frames of each video (quick checks; no zip)")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1), help="processes for scoring F")
    p.add_argument("--merge", action="store_true", help="only score and pack what all shards wrote")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    from mpg_sam2.evaluation.aggregate import format_table
    from mpg_sam2.evaluation.runner import EvaluationConfig, run_evaluation
    from mpg_sam2.evaluation.shards import resolve_shard

    index, count, local_rank = resolve_shard(args.shard_index, args.shard_count)
    config = EvaluationConfig(
        dataset=args.dataset, root=args.root, out=args.out, model=args.model, split=args.split,
        device=args.device, precision=args.precision, threshold=args.threshold, shard_index=index,
        shard_count=count, max_frames=args.max_frames, workers=args.workers, merge=args.merge,
        revision=args.revision,
    )
    if not config.merge:
        print(f"evaluating {config.model_name} on {config.dataset} (shard {index + 1}/{count}) -> {config.out}", file=sys.stderr)
    report = run_evaluation(config, local_rank=local_rank, progress=not args.no_progress)
    if not config.merge:
        print(f"{report.dataset} {report.split}: {report.predicted} expressions predicted, {report.skipped} already done")
    if report.table is not None:
        print(format_table(report.table))
        print(f"  results: {report.results_json}, {report.results_csv}")
    if report.submission is not None:
        print(f"  submission: {report.submission}")
    for note in report.notes:
        print(f"  note: {note}")
    if report.seconds:
        print("  time: " + ", ".join(f"{name} {s:.1f}s" for name, s in report.seconds.items()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mpg_sam2", description="MPG-SAM 2 referring video segmentation")
    sub = parser.add_subparsers(dest="command", required=True)
    _segment_parser(sub)
    _evaluate_parser(sub)
    # A Space folder ships the package without its training module; there the CLI segments and
    # evaluates, and has no train command.
    if importlib.util.find_spec("mpg_sam2.training") is not None:
        from mpg_sam2.training.cli import add_train_parser  # argparse only; training code loads on use

        add_train_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = lambda msg, cat, *rest: print(f"warning: {msg}", file=sys.stderr)
            return args.func(args)
    except (ValueError, RuntimeError, FileNotFoundError) as error:
        # User-facing errors (bad video, bad expression, missing model) are one clear line.
        print(f"error: {error}", file=sys.stderr)
        return 2
