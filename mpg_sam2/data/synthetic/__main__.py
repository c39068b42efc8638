"""``python -m mpg_sam2.data.synthetic --out DIR --seed 0 --train 400 --val 50 --test 50``"""
from __future__ import annotations

import argparse
import json
import sys
import time

from .writer import iter_write_dataset


def _size(text: str) -> tuple[int, int]:
    """"256" or "WIDTHxHEIGHT" (as "320x192") -> (height, width)."""
    try:
        if "x" in text:
            width, height = (int(v) for v in text.lower().split("x"))
            return height, width
        return int(text), int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be N or WIDTHxHEIGHT (e.g. 256 or 320x192), got {text!r}") from None


def _range(text: str) -> tuple[int, int]:
    try:
        low, _, high = text.partition("-")
        return int(low), int(high or low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"objects must be N or LOW-HIGH (e.g. 2-5), got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mpg_sam2.data.synthetic",
        description="Write a synthetic referring-video benchmark in the Ref-YouTube-VOS format.",
    )
    parser.add_argument("--out", required=True, help="output folder (created)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same files (default 0)")
    parser.add_argument("--train", type=int, default=400, help="train clips (default 400)")
    parser.add_argument("--val", type=int, default=50, help="validation clips, written as the 'valid' split (default 50)")
    parser.add_argument("--test", type=int, default=50, help="test clips (default 50)")
    parser.add_argument("--frames", type=int, default=8, help="frames per clip (default 8)")
    parser.add_argument("--size", type=_size, default=(256, 256), help="frame size, N or WIDTHxHEIGHT (default 256)")
    parser.add_argument("--objects", type=_range, default=(2, 5), help="objects per clip, N or LOW-HIGH (default 2-5)")
    parser.add_argument("--expressions", type=int, default=4, help="at most this many expressions per clip (default 4)")
    parser.add_argument("--overwrite", action="store_true", help="replace a dataset already in --out")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from tqdm import tqdm

    start = time.perf_counter()
    steps = iter_write_dataset(
        args.out, args.seed, args.train, args.val, args.test,
        frames=args.frames, size=args.size, objects=args.objects, expressions=args.expressions, overwrite=args.overwrite,
    )
    try:
        with tqdm(total=args.train + args.val + args.test, unit="clip", file=sys.stderr) as bar:
            for step in steps:
                bar.set_postfix_str(step.split, refresh=False)
                bar.update(1)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with open(f"{args.out}/synthetic_info.json", encoding="utf-8") as f:
        info = json.load(f)
    print(f"wrote {args.out} in {time.perf_counter() - start:.1f} s ({info['height']}x{info['width']}, {info['frames']} frames)")
    for split, s in info["splits"].items():
        print(f"  {split}: {s['videos']} videos, {s['expressions']} expressions {s['types']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
