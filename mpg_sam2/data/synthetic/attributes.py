"""The benchmark's vocabulary of object attributes, motions and expression types.

Everything an expression can say about an object is one of these names, so the words of every
sentence come from this file and a handful of template words (see :mod:`.expressions`). The tables
are small on purpose: a tokenizer trained on the benchmark needs few pieces, and a nano model can
learn every word.
"""
from __future__ import annotations

__all__ = [
    "COLOURS",
    "EXPRESSION_TYPES",
    "MOTIONS",
    "SHAPES",
    "SIZES",
    "TEXTURES",
]

# Named colours (RGB). Backgrounds are muted greys and tints (see :mod:`.background`), so each of
# these, white and black included, stands out from every background.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (35, 70, 225),
    "yellow": (245, 215, 25),
    "purple": (140, 40, 180),
    "orange": (250, 130, 20),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
}

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "ring", "cross")

# Radius of the shape's circumscribed disc as a fraction of min(height, width). The gaps between
# the classes are wide (about 1.5x) so the size word is never a judgement call.
SIZES: dict[str, float] = {"small": 0.06, "medium": 0.09, "large": 0.135}

TEXTURES: tuple[str, ...] = ("plain", "striped", "dotted")

# How an object moves through a clip (see :mod:`.motion`). "enter" slides in from a border after
# the first frame, "appear" pops up in place after the first frame, "leave" slides out of the
# frame before the last one.
MOTIONS: tuple[str, ...] = ("static", "left", "right", "up", "down", "bounce", "enter", "appear", "leave")

# What an expression uses to single out its target.
EXPRESSION_TYPES: tuple[str, ...] = ("appearance", "relation", "motion", "time")
