"""Side-by-side video: original | mask prior | final mask | attention, one row per expression.

A header holds the panel titles and a colour legend (expression id and text -> colour), drawn
with Pillow's built-in scalable font. The prior and attention columns appear only when such
heatmaps are given; an expression without one gets a grey "n/a" panel. Panels are downscaled
(never upscaled) so the video is at most 1920 pixels wide and 2160 high.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .colors import expression_color
from .encode import H264Writer
from .inputs import check_fps, check_frames, check_heatmaps, check_masks
from .render import heatmap_rgb, overlay, resize_mask, resize_rgb

MAX_WIDTH = 1920
MAX_HEIGHT = 2160
# Small videos are scaled up so the panel titles fit and the panels are readable in a browser.
MIN_PANEL_WIDTH = 240
FONT_SIZE = 14
_GAP = 2  # pixels between panels and rows
_BACKGROUND = (24, 24, 24)
_NA_PANEL = (64, 64, 64)
_TEXT = (235, 235, 235)


@dataclass(frozen=True)
class _Layout:
    columns: tuple[str, ...]
    panel_w: int
    panel_h: int
    header: np.ndarray  # uint8 [header_h, width, 3]

    @property
    def width(self) -> int:
        return self.header.shape[1]


def _legend_lines(labels: Sequence[str], font: ImageFont.FreeTypeFont, width: int) -> list[list[int]]:
    """Indices of the legend entries on each line, packed greedily into ``width`` pixels."""
    lines: list[list[int]] = [[]]
    used = 0
    for k, label in enumerate(labels):
        need = FONT_SIZE + 4 + int(font.getlength(label)) + 12
        if lines[-1] and used + need > width:
            lines.append([])
            used = 0
        lines[-1].append(k)
        used += need
    return lines


def _layout(columns: tuple[str, ...], expressions: Sequence[str], frame_w: int, frame_h: int) -> _Layout:
    font = ImageFont.load_default(size=FONT_SIZE)
    labels = [f"{k}: {text}" for k, text in enumerate(expressions)]
    line_h = FONT_SIZE + 6
    n_cols, n_rows = len(columns), len(expressions)
    # The header height depends on the width (legend wrapping); two passes settle it.
    scale = min(max(1.0, MIN_PANEL_WIDTH / frame_w), (MAX_WIDTH - _GAP * (n_cols - 1)) / (n_cols * frame_w))
    for _ in range(2):
        panel_w, panel_h = max(2, int(frame_w * scale)), max(2, int(frame_h * scale))
        width = n_cols * panel_w + _GAP * (n_cols - 1)
        lines = _legend_lines(labels, font, width - 8)
        header_h = line_h * (1 + len(lines)) + 4
        scale = min(scale, (MAX_HEIGHT - header_h - _GAP * n_rows) / (n_rows * frame_h))
    panel_w, panel_h = max(2, int(frame_w * scale)), max(2, int(frame_h * scale))
    width = n_cols * panel_w + _GAP * (n_cols - 1)

    img = Image.new("RGB", (width, header_h), _BACKGROUND)
    draw = ImageDraw.Draw(img)
    for c, title in enumerate(columns):
        x0 = c * (panel_w + _GAP)
        tw = font.getlength(title)
        draw.text((x0 + max(0.0, (panel_w - tw) / 2), 2), title, fill=_TEXT, font=font)
    for row, entries in enumerate(_legend_lines(labels, font, width - 8)):
        x, y = 4, 2 + line_h * (row + 1)
        for k in entries:
            draw.rectangle((x, y + 2, x + FONT_SIZE - 2, y + FONT_SIZE), fill=expression_color(k))
            x += FONT_SIZE + 4
            draw.text((x, y), labels[k], fill=_TEXT, font=font)
            x += int(font.getlength(labels[k])) + 12
    return _Layout(columns=columns, panel_w=panel_w, panel_h=panel_h, header=np.asarray(img))


def _tag(panel: np.ndarray, k: int) -> np.ndarray:
    """Mark a row's first panel with a square in the expression's colour, linking it to the legend."""
    size = max(4, min(FONT_SIZE, panel.shape[0] // 4, panel.shape[1] // 4))
    panel = panel.copy()
    panel[:size, :size] = expression_color(k)
    return panel


def write_side_by_side_video(
    path: str | os.PathLike[str],
    frames: np.ndarray | Sequence[np.ndarray],
    fps: float,
    masks: Mapping[str, np.ndarray],
    priors: Mapping[str, np.ndarray] | None = None,
    attention: Mapping[str, np.ndarray] | None = None,
    audio_source: str | os.PathLike[str] | None = None,
    audio_start_s: float = 0.0,
) -> Path:
    """Write the comparison mp4 (same encoding as the overlay video).

    Args:
        frames: uint8 ``[T, H, W, 3]``.
        masks: ``{expression: bool [T, H, W]}``; one row per expression, in this order.
        priors, attention: ``{expression: float [T, h, w]}`` in [0, 1] at any resolution,
            upsampled bilinearly and shown in viridis. Missing dict: no such column.
    Returns:
        ``path``, written atomically.
    """
    frames = check_frames(frames)
    t, h, w, _ = frames.shape
    masks = check_masks(masks, (t, h, w))
    priors = check_heatmaps("priors", priors, t)
    attention = check_heatmaps("attention", attention, t)
    columns = ("original",) + (("mask prior",) if priors else ()) + ("final mask",) + (("attention",) if attention else ())
    layout = _layout(columns, list(masks), w, h)
    pw, ph = layout.panel_w, layout.panel_h
    rows = len(masks)
    height = layout.header.shape[0] + rows * (ph + _GAP)
    na = np.empty((ph, pw, 3), dtype=np.uint8)
    na[:] = _NA_PANEL

    with H264Writer(path, check_fps(fps), layout.width, height, audio_source=audio_source, audio_start_s=audio_start_s) as out:
        for i in range(t):
            canvas = np.empty((height, layout.width, 3), dtype=np.uint8)
            canvas[:] = _BACKGROUND
            canvas[: layout.header.shape[0]] = layout.header
            small = resize_rgb(frames[i], pw, ph)
            for k, (text, mask) in enumerate(masks.items()):
                panels = {
                    "original": _tag(small, k),
                    "mask prior": heatmap_rgb(priors[text][i], pw, ph) if text in priors else na,
                    "final mask": overlay(small, [resize_mask(mask[i], pw, ph)], [expression_color(k)]),
                    "attention": heatmap_rgb(attention[text][i], pw, ph) if text in attention else na,
                }
                y = layout.header.shape[0] + k * (ph + _GAP) + _GAP
                for c, name in enumerate(columns):
                    x = c * (pw + _GAP)
                    canvas[y : y + ph, x : x + pw] = panels[name]
            out.write(canvas)
    return Path(path)
