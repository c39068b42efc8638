"""What is true of each object in a rendered clip, as three-valued predicates.

Each predicate answers True (clearly holds), False (clearly does not) or None (borderline: e.g.
an object barely left of another, a bouncing object for "moving up"). An expression is kept only
if its target answers True and every other object it could mean answers False -- never None --
so a sentence never depends on a judgement call. Appearance and motion facts come from the scene
itself; visibility, positions and relations come from the rendered masks (what a viewer sees).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .motion import DIRECTIONS
from .render import Rendering
from .scene import Scene

__all__ = ["ObjectFacts", "RELATIONS", "SceneFacts", "scene_facts"]

# relation word -> (axis, sign): "a left of b" means b.x - a.x >= margin.
RELATIONS: dict[str, tuple[int, int]] = {"left of": (0, 1), "right of": (0, -1), "above": (1, 1), "below": (1, -1)}
STEP_EPS = 0.5  # pixels per frame below which a centre is not moving along an axis


@dataclass(frozen=True)
class ObjectFacts:
    """``area`` int ``[T]`` visible pixels; ``in_frame`` int ``[T]`` pixels of the whole shape inside
    the frame; ``centroid`` float ``[T, 2]`` (x, y) of the visible mask, NaN where not visible;
    ``centres`` float ``[T, 2]``, the scene's trajectory."""

    object_id: int
    attributes: dict[str, str]
    area: np.ndarray
    in_frame: np.ndarray
    centroid: np.ndarray
    centres: np.ndarray
    sprite_area: int


@dataclass(frozen=True)
class SceneFacts:
    """The facts of all objects, and the thresholds the predicates use (pixels)."""

    objects: tuple[ObjectFacts, ...]
    height: int
    width: int
    min_area: int

    def by_id(self, object_id: int) -> ObjectFacts:
        return self.objects[object_id - 1]

    def visible(self, o: ObjectFacts) -> np.ndarray:
        """bool ``[T]``: frames where enough of the object shows to say where it is."""
        return o.area >= self.min_area

    def well_visible(self) -> bool:
        """Every object shows at least 60% of its shape in some frame (else its look is guesswork)."""
        return all(float((o.area / o.sprite_area).max()) >= 0.6 for o in self.objects)

    # --- appearance ----------------------------------------------------------------------

    @staticmethod
    def matches(o: ObjectFacts, description: dict[str, str]) -> bool:
        return all(o.attributes[k] == v for k, v in description.items())

    # --- relations (visible-mask centroids, in every frame both show; frame 0 for the target) --

    def relation(self, a: ObjectFacts, b: ObjectFacts, word: str) -> bool | None:
        if a is b:
            return False
        axis, sign = RELATIONS[word]
        # Every frame where both show at all counts, slivers included: a viewer may look anywhere.
        both = (a.area > 0) & (b.area > 0)
        if not both.any():
            return False
        d = sign * (b.centroid[both, axis] - a.centroid[both, axis])
        margin = 0.1 * (self.width if axis == 0 else self.height)
        if self.visible(a)[0] and self.visible(b)[0] and bool((d >= margin).all()):
            return True
        if bool((d <= 0).all()):
            return False
        return None

    # --- motion (the scene's trajectory) -------------------------------------------------

    def moving(self, o: ObjectFacts, direction: str) -> bool | None:
        unit = np.array(DIRECTIONS[direction], dtype=np.float64)
        steps = np.diff(o.centres, axis=0)
        along, across = steps @ unit, steps @ unit[::-1]
        size = self.width if unit[0] else self.height
        if (along > STEP_EPS).all() and along.sum() >= 0.2 * size and np.abs(across).sum() <= 0.05 * size:
            return True
        if not (along > STEP_EPS).any():
            return False
        return None

    def bounces(self, o: ObjectFacts) -> bool | None:
        # Motions are linear or reflected, so a reversal along an axis is never borderline.
        steps = np.diff(o.centres, axis=0)
        reverses = False
        for axis in (0, 1):
            s = steps[:, axis]
            reverses |= bool((s > STEP_EPS).any() and (s < -STEP_EPS).any())
        return reverses

    def still(self, o: ObjectFacts) -> bool | None:
        travel = np.abs(o.centres - o.centres[0]).max()
        if travel < STEP_EPS:
            return True
        if np.linalg.norm(np.diff(o.centres, axis=0), axis=1).sum() >= 0.1 * min(self.height, self.width):
            return False
        return None

    # --- time (visible masks) ------------------------------------------------------------

    def appears_later(self, o: ObjectFacts) -> bool | None:
        if o.area[0] == 0 and o.in_frame[0] == 0 and o.area.max() >= self.min_area:
            return True
        if o.area[0] >= self.min_area:
            return False
        return None

    def leaves(self, o: ObjectFacts) -> bool | None:
        if o.area[0] >= self.min_area and o.in_frame[-1] == 0:
            return True
        if o.area[-1] >= self.min_area:
            return False
        return None


def scene_facts(scene: Scene, rendering: Rendering) -> SceneFacts:
    """Per-object areas and centroids of the visible masks, plus the scene's own attributes and paths."""
    T, H, W = scene.frames, scene.height, scene.width
    n = len(scene.objects)
    ys, xs = np.mgrid[0:H, 0:W]
    area = np.zeros((n + 1, T), dtype=np.int64)
    centroid = np.full((n + 1, T, 2), np.nan)
    for t in range(T):
        flat = rendering.labels[t].ravel()
        area[:, t] = np.bincount(flat, minlength=n + 1)[: n + 1]
        shown = area[:, t] > 0
        for axis, coords in enumerate((xs, ys)):
            sums = np.bincount(flat, weights=coords.ravel(), minlength=n + 1)[: n + 1]
            centroid[shown, t, axis] = sums[shown] / area[shown, t]
    in_frame = rendering.full_masks.reshape(n, T, -1).sum(axis=2)
    objects = tuple(
        ObjectFacts(
            o.object_id, o.attributes, area[o.object_id], in_frame[i], centroid[o.object_id], o.trajectory.centres,
            int(rendering.sprite_areas[i]),
        )
        for i, o in enumerate(scene.objects)
    )
    # Enough pixels to place an object: ~20 at 256x256, scaled with the frame's area.
    min_area = max(8, int(round(3e-4 * H * W)))
    return SceneFacts(objects, H, W, min_area)
