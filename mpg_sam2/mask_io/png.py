"""Mask PNGs: binary masks and label maps.

- A **binary PNG** is one object's mask, mode "L", 0 = background and 255 = object: what
  ReferFormer's ``inference_ytvos.py`` writes and what the Ref-YouTube-VOS server and MeViS'
  ``eval_mevis.py`` read (any nonzero pixel counts as object).
- A **label PNG** holds one object id per pixel, mode "P": DAVIS / YouTube-VOS annotations, the
  Ref-DAVIS17 predictions and the palette-PNG export. The pixel values are the ids; the palette
  only colours them in an image viewer (the DAVIS palette unless another is given).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

__all__ = ["davis_palette", "read_binary_png", "read_label_png", "write_binary_png", "write_label_png"]


def davis_palette() -> list[int]:
    """The DAVIS / YouTube-VOS palette (PASCAL VOC colours): id ``i`` gets its bits spread over R, G and B.

    Returns the 768 ints ``[r0, g0, b0, r1, ...]`` that ``Image.putpalette`` takes.
    """
    palette = []
    for i in range(256):
        rgb = [0, 0, 0]
        for bit in range(8):
            for channel in range(3):
                rgb[channel] |= ((i >> (3 * bit + channel)) & 1) << (7 - bit)
        palette.extend(rgb)
    return palette


_DAVIS_PALETTE = davis_palette()


def _missing(kind: str, path: Path, hint: str) -> FileNotFoundError:
    return FileNotFoundError(f"{kind} {path} is missing" + (f"; {hint}" if hint else ""))


def write_binary_png(path: str | os.PathLike[str], mask: np.ndarray) -> None:
    """bool ``[H, W]`` -> a mode-"L" PNG of 0 and 255."""
    Image.fromarray(np.asarray(mask, dtype=bool).astype(np.uint8) * 255).save(path)


def read_binary_png(path: str | os.PathLike[str], missing_hint: str = "") -> np.ndarray:
    """bool ``[H, W]``: the nonzero pixels of a mask PNG, read as grey whatever its mode.

    ``missing_hint`` ends the FileNotFoundError of a missing file (what the user should do).
    """
    path = Path(path)
    if not path.is_file():
        raise _missing("mask PNG", path, missing_hint)
    with Image.open(path) as image:
        return np.asarray(image.convert("L")) > 0


def write_label_png(path: str | os.PathLike[str], labels: np.ndarray, palette: Sequence[int] | None = None) -> None:
    """uint8 ``[H, W]`` object ids -> a mode-"P" PNG with ``palette`` (768 ints; default DAVIS)."""
    image = Image.fromarray(np.asarray(labels, dtype=np.uint8))
    image.putpalette(_DAVIS_PALETTE if palette is None else list(palette))  # "L" -> "P", the indices unchanged
    image.save(path)


def read_label_png(path: str | os.PathLike[str], missing_hint: str = "") -> np.ndarray:
    """``[H, W]`` object ids of a label PNG: its palette indices (uint8), the grey values of a
    grey PNG (uint8, or int32 / uint16 for 16-bit ones), or 0/1 of a 1-bit PNG; 0 = background.

    ``missing_hint`` ends the FileNotFoundError of a missing file (what the user should do).
    """
    path = Path(path)
    if not path.is_file():
        raise _missing("label PNG", path, missing_hint)
    with Image.open(path) as image:
        if image.mode == "1":  # a 1-bit PNG: one object (davis2017-evaluation reads these too)
            return np.asarray(image).astype(np.uint8)
        if image.mode not in ("P", "L", "I", "I;16"):
            raise ValueError(f"label PNG {path} has PIL mode {image.mode}; expected a palette ('P') or grey PNG of object ids")
        return np.asarray(image)
