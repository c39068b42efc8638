"""One synthetic clip: scene -> rendering -> facts -> expressions, redrawn until it is usable.

A draw is rejected when some object never shows 60% of its shape (hidden behind others or
outside the frame all the time) or when fewer than two expressions can be made; the next draw
uses the same generator, so a seed still determines the clip.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .expressions import Expression, sample_expressions
from .facts import scene_facts
from .render import render_scene
from .scene import SceneObject, sample_scene

__all__ = ["SyntheticClip", "generate_clip", "parse_size"]

MIN_FRAMES = 4  # a bounce, an entry and an exit each need a few frames to show
MIN_SIDE = 64  # the small size class must stay a few pixels wide


@dataclass(frozen=True)
class SyntheticClip:
    """``frames`` uint8 ``[T, H, W, 3]``; ``labels`` uint8 ``[T, H, W]`` (0 = background, else the
    id of the visible object, as written to the palette PNGs); ``full_masks`` bool ``[N, T, H, W]``,
    each object's whole shape ignoring occluders, in ``objects`` order (ids 1..N)."""

    frames: np.ndarray
    labels: np.ndarray
    full_masks: np.ndarray
    objects: tuple[SceneObject, ...]
    expressions: tuple[Expression, ...]
    background: str
    occlusions: tuple[tuple[int, int], ...]

    @property
    def masks(self) -> dict[int, np.ndarray]:
        """Object id -> bool ``[T, H, W]`` of its visible pixels (occluded parts excluded)."""
        return {o.object_id: self.labels == o.object_id for o in self.objects}


def parse_size(size: int | tuple[int, int]) -> tuple[int, int]:
    """``256`` or ``(height, width)`` -> ``(height, width)``, checked."""
    height, width = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if min(height, width) < MIN_SIDE or max(height, width) > 4096:
        raise ValueError(f"frame size must be between {MIN_SIDE} and 4096 pixels a side, got {height}x{width} (height x width)")
    return int(height), int(width)


def generate_clip(
    seed: int | np.random.Generator,
    *,
    frames: int = 8,
    size: int | tuple[int, int] = 256,
    objects: tuple[int, int] = (2, 5),
    expressions: int = 4,
    max_attempts: int = 100,
) -> SyntheticClip:
    """Draw one clip of ``frames`` frames of ``size`` (int or ``(height, width)``).

    ``objects`` is the inclusive range of the object count; ``expressions`` the most expressions
    kept (at least two are always made). ``seed`` may be an int or a numpy Generator (advanced).
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if frames < MIN_FRAMES:
        raise ValueError(f"a clip needs at least {MIN_FRAMES} frames, got frames={frames}")
    if not 1 <= objects[0] <= objects[1] <= 9:
        raise ValueError(f"objects must be a range (low, high) with 1 <= low <= high <= 9, got {objects}")
    if expressions < 2:
        raise ValueError(f"expressions must be at least 2, got {expressions}")
    height, width = parse_size(size)
    for _ in range(max_attempts):
        scene = sample_scene(rng, height, width, frames, objects)
        rendering = render_scene(scene)
        facts = scene_facts(scene, rendering)
        if not facts.well_visible():
            continue
        chosen = sample_expressions(rng, facts, expressions)
        if len(chosen) >= 2:
            return SyntheticClip(
                rendering.frames, rendering.labels, rendering.full_masks, scene.objects, tuple(chosen),
                scene.background_kind, scene.occlusions,
            )
    raise RuntimeError(
        f"no usable clip in {max_attempts} draws at {height}x{width}, {frames} frames, {objects} objects; "
        "use more frames or a larger size"
    )
