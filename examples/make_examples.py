"""Regenerate the app's example videos and ``examples/examples.json``, deterministically.

    python examples/make_examples.py

Two kinds of example, listed in this order (the app shows them in the same order):

* ``synthetic``: clips of the project's synthetic referring-video benchmark
  (:mod:`mpg_sam2.data.synthetic`), with some of the expressions the generator made for them.
  These are the clips the bundled offline model was trained for.
* ``photo``: public-domain / CC0 photographs that ship inside scikit-image (``skimage.data``),
  turned into a few seconds of video by a smooth pan and zoom, with expressions written for the
  released checkpoints (trained on Ref-YouTube-VOS / MeViS). Needs scikit-image, a test
  dependency; the app and the tests only read the files written here.

Every frame is a function of the seed or the photo and the numbers below, so re-running the
script rewrites the same frames; ``tests/test_examples.py`` checks the synthetic ones against the
committed videos.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

# The package is used from the checkout, not installed: `python examples/make_examples.py` puts
# only examples/ on the path, so add the repository root.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from mpg_sam2.data.synthetic import GENERATOR_VERSION, generate_clip
from mpg_sam2.exports.encode import H264Writer

EXAMPLES_DIR = Path(__file__).resolve().parent
INDEX_FILE = "examples.json"

# Synthetic clips: the generator's default 256 px square (the size of the training split), a
# little over 2 s at 10 fps; the generator offers up to this many expressions to choose from.
SYNTHETIC_FPS = 10
SYNTHETIC_FRAMES = 24
SYNTHETIC_SIZE = 256
SYNTHETIC_CANDIDATES = 8
SYNTHETIC_EXPRESSIONS = 3

PHOTO_FPS = 10
PHOTO_FRAMES = 30


@dataclass(frozen=True)
class SyntheticExample:
    """One clip of the synthetic benchmark, drawn from ``seed``."""

    name: str  # file stem
    seed: int
    title: str


@dataclass(frozen=True)
class CropBox:
    """A crop window on the photo, in source pixels: its centre and width (the height follows
    from the output aspect ratio)."""

    cx: float
    cy: float
    width: float


@dataclass(frozen=True)
class PhotoExample:
    """A ``skimage.data`` photo, panned and zoomed from ``start`` to ``end``."""

    name: str  # file stem
    image: str  # name of the skimage.data function that loads it
    title: str
    size: tuple[int, int]  # (width, height) of the video; even, <= 480 on the long side
    start: CropBox
    end: CropBox
    expressions: tuple[str, ...]
    source: str  # credit and licence, as skimage.data's docstring states them
    licence: str


# Seeds picked by looking at the clips: a gradient, a noise and a plain background, three objects
# or more, three expressions each, and together all four expression types.
SYNTHETIC: tuple[SyntheticExample, ...] = (
    SyntheticExample("synthetic_gradient", 1, "Synthetic shapes on a gradient"),
    SyntheticExample("synthetic_noise", 8, "Synthetic shapes on noise"),
    SyntheticExample("synthetic_plain", 14, "Synthetic shapes on a plain background"),
)

# Crop boxes keep every referred object inside the frame for the whole clip, so each expression
# stays true in every frame.
PHOTOS: tuple[PhotoExample, ...] = (
    PhotoExample(
        "photo_astronaut", "astronaut", "Astronaut (photo, pan and zoom)", (320, 320),
        start=CropBox(256, 256, 512), end=CropBox(215, 235, 410),
        expressions=("the astronaut in an orange space suit", "the american flag"),
        source="skimage.data.astronaut(): Eileen Collins, NASA Great Images database "
               "(https://flic.kr/p/r9qvLn); no known copyright restrictions, released into the public domain",
        licence="public domain",
    ),
    PhotoExample(
        "photo_coffee", "coffee", "Coffee (photo, pan and zoom)", (384, 256),
        start=CropBox(300, 200, 600), end=CropBox(285, 175, 480),
        expressions=("the cup of coffee", "the spoon on the saucer"),
        source="skimage.data.coffee(): courtesy of Pikolo Espresso Bar, photograph by Rachel Michetti; "
               "no copyright restrictions, CC0 by the photographer",
        licence="CC0",
    ),
    PhotoExample(
        "photo_chelsea", "chelsea", "Chelsea the cat (photo, pan and zoom)", (360, 240),
        start=CropBox(225.5, 150, 450), end=CropBox(250, 170, 330),
        expressions=("the cat", "the cat's pink nose"),
        source="skimage.data.chelsea(): Chelsea the cat, photograph by Stefan van der Walt; "
               "no copyright restrictions, CC0 by the photographer",
        licence="CC0",
    ),
)


def pick_expressions(expressions: tuple[tuple[str, str, int], ...], count: int = SYNTHETIC_EXPRESSIONS) -> list[tuple[str, str, int]]:
    """Up to ``count`` of ``(text, type, target_id)``, in the generator's order, each of a new type
    and about a new object, so one example shows several types and several coloured masks."""
    chosen: list[tuple[str, str, int]] = []
    for text, kind, target in expressions:
        if len(chosen) == count:
            break
        if all(kind != k and target != t for _, k, t in chosen):
            chosen.append((text, kind, target))
    return chosen


def synthetic_frames(example: SyntheticExample) -> tuple[np.ndarray, list[tuple[str, str, int]]]:
    """The clip's uint8 ``[T, H, W, 3]`` frames and its chosen ``(text, type, target_id)``."""
    clip = generate_clip(example.seed, frames=SYNTHETIC_FRAMES, size=SYNTHETIC_SIZE, expressions=SYNTHETIC_CANDIDATES)
    chosen = pick_expressions(tuple((e.text, e.type, e.target_id) for e in clip.expressions))
    if len(chosen) < 2:
        raise RuntimeError(f"seed {example.seed} gave fewer than 2 expressions of distinct types and targets; pick another seed")
    return clip.frames, chosen


def _ease(t: float) -> float:
    # Cosine ease-in-out: the camera starts and stops gently instead of jerking.
    return (1.0 - math.cos(math.pi * t)) / 2.0


def pan_zoom(photo: np.ndarray, size: tuple[int, int], start: CropBox, end: CropBox, frames: int) -> np.ndarray:
    """Frames of a camera moving over ``photo`` (uint8 ``[H, W, 3]``) from ``start`` to ``end``.

    Returns uint8 ``[frames, size[1], size[0], 3]``. Crop boxes are fractional (PIL resamples
    the exact box), so slow pans move smoothly instead of in whole-pixel steps.
    """
    out_w, out_h = size
    src_h, src_w = photo.shape[:2]
    image = Image.fromarray(photo)
    result = np.empty((frames, out_h, out_w, 3), dtype=np.uint8)
    for i in range(frames):
        t = _ease(i / (frames - 1))
        cx, cy, width = (a + (b - a) * t for a, b in ((start.cx, end.cx), (start.cy, end.cy), (start.width, end.width)))
        height = width * out_h / out_w
        box = (cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2)
        if box[0] < -1e-6 or box[1] < -1e-6 or box[2] > src_w + 1e-6 or box[3] > src_h + 1e-6:
            raise ValueError(f"frame {i}: crop box {tuple(round(v, 1) for v in box)} leaves the {src_w}x{src_h} photo")
        result[i] = np.asarray(image.resize((out_w, out_h), Image.Resampling.LANCZOS, box=box))
    return result


def photo_frames(example: PhotoExample) -> np.ndarray:
    """The example's uint8 ``[T, H, W, 3]`` frames (needs scikit-image)."""
    import skimage.data  # only this script needs it; the app and the tests read the files

    photo = getattr(skimage.data, example.image)()
    return pan_zoom(photo, example.size, example.start, example.end, PHOTO_FRAMES)


def write_video(path: Path, frames: np.ndarray, fps: float) -> None:
    """Encode uint8 ``[T, H, W, 3]`` as a browser-playable H.264 mp4."""
    height, width = frames.shape[1:3]
    with H264Writer(path, fps, width, height) as writer:
        for frame in frames:
            writer.write(frame)


def make_examples(out_dir: Path = EXAMPLES_DIR) -> list[dict[str, object]]:
    """Write every video into ``out_dir`` and return the index entries, synthetic ones first."""
    entries: list[dict[str, object]] = []
    for example in SYNTHETIC:
        frames, chosen = synthetic_frames(example)
        video = f"{example.name}.mp4"
        write_video(out_dir / video, frames, SYNTHETIC_FPS)
        entries.append({
            "video": video,
            "expressions": [text for text, _, _ in chosen],
            "types": [kind for _, kind, _ in chosen],
            "title": f"{example.title} ({', '.join(kind for _, kind, _ in chosen)})",
            "kind": "synthetic",
            "model": "offline",
            "seed": example.seed,
            "source": (f"generated by mpg_sam2.data.synthetic.generate_clip({example.seed}, frames={SYNTHETIC_FRAMES}, "
                       f"size={SYNTHETIC_SIZE}, expressions={SYNTHETIC_CANDIDATES}), generator version {GENERATOR_VERSION}"),
            "licence": "generated by this project; no third-party content",
        })
    for example in PHOTOS:
        video = f"{example.name}.mp4"
        write_video(out_dir / video, photo_frames(example), PHOTO_FPS)
        entries.append({
            "video": video,
            "expressions": list(example.expressions),
            "title": example.title,
            "kind": "photo",
            "model": "ref-youtube-vos",
            "source": example.source,
            "licence": example.licence,
        })
    return entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=EXAMPLES_DIR, help="folder for the videos and examples.json")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    entries = make_examples(args.out)
    (args.out / INDEX_FILE).write_text(json.dumps({"examples": entries}, indent=2, ensure_ascii=False) + "\n")
    total = sum((args.out / str(e["video"])).stat().st_size for e in entries)
    print(f"wrote {len(entries)} examples and {INDEX_FILE} to {args.out} ({total / 1e6:.2f} MB of video)")


if __name__ == "__main__":
    main()
