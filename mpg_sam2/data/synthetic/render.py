"""Drawing a scene: frames, the label map of visible objects, and each object's whole shape.

Objects are composited back to front (ascending ``depth``) with their anti-aliased coverage as
alpha. A pixel is labelled with the front-most object that covers more than half of it, so an
object's mask is only its visible part; the "full" masks ignore occluders (but not the frame's
borders) and let facts and tests tell an occluded object from one that left the frame.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .scene import Scene
from .shapes import make_sprite

__all__ = ["Rendering", "render_scene"]


@dataclass(frozen=True)
class Rendering:
    """``frames`` uint8 ``[T, H, W, 3]``; ``labels`` uint8 ``[T, H, W]`` (0 = background, else the
    object id on top); ``full_masks`` bool ``[N, T, H, W]`` in object order; ``sprite_areas`` int
    ``[N]``, the pixel count of each whole shape."""

    frames: np.ndarray
    labels: np.ndarray
    full_masks: np.ndarray
    sprite_areas: np.ndarray


def _window(centre: float, half: int, size: int) -> tuple[slice, slice] | None:
    """(frame slice, sprite slice) of a sprite centred at pixel ``round(centre)``; None if off-frame."""
    start = int(np.floor(centre + 0.5)) - half
    lo, hi = max(start, 0), min(start + 2 * half + 1, size)
    if lo >= hi:
        return None
    return slice(lo, hi), slice(lo - start, hi - start)


def render_scene(scene: Scene) -> Rendering:
    """Frames, label maps and whole-shape masks of every frame of ``scene``."""
    T, H, W = scene.frames, scene.height, scene.width
    order = sorted(range(len(scene.objects)), key=lambda i: scene.objects[i].depth)
    sprites = [make_sprite(o.shape, o.radius, o.rgb, o.texture, o.angle) for o in scene.objects]
    frames = np.empty((T, H, W, 3), dtype=np.uint8)
    labels = np.zeros((T, H, W), dtype=np.uint8)
    full = np.zeros((len(scene.objects), T, H, W), dtype=bool)
    for t in range(T):
        image = scene.background.copy()
        for i in order:
            obj, sprite = scene.objects[i], sprites[i]
            if not obj.trajectory.present[t]:
                continue
            x, y = obj.trajectory.centres[t]
            wx, wy = _window(x, sprite.half, W), _window(y, sprite.half, H)
            if wx is None or wy is None:
                continue
            (fy, sy), (fx, sx) = wy, wx
            alpha = sprite.coverage[sy, sx, None]
            image[fy, fx] = image[fy, fx] * (1.0 - alpha) + sprite.colour[sy, sx] * alpha
            owned = sprite.mask[sy, sx]
            labels[t, fy, fx][owned] = obj.object_id
            full[i, t, fy, fx] = owned
        frames[t] = np.clip(image + 0.5, 0, 255).astype(np.uint8)
    areas = np.array([s.mask.sum() for s in sprites], dtype=np.int64)
    return Rendering(frames, labels, full, areas)
