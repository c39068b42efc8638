"""Sampling a clip's scene: the background, the objects' looks, their motions and depth order.

Two kinds of events are planted on purpose, since a uniform draw would rarely produce them:
*distractors* (a new object copies the colour, the shape, or everything of an earlier one, so
naming the target needs more than one word, or a motion, relation or time phrase), and
*occlusions* (an object's path is set to pass over another one in a middle frame, in front of it).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .attributes import COLOURS, MOTIONS, SHAPES, SIZES, TEXTURES
from .background import sample_background
from .motion import Trajectory, pass_through, sample_trajectory

__all__ = ["Scene", "SceneObject", "sample_scene"]

# How often each motion is drawn; "appear" is rarer than "enter" since both give time expressions.
MOTION_WEIGHTS: dict[str, float] = {
    "static": 0.2, "left": 0.09, "right": 0.09, "up": 0.09, "down": 0.09,
    "bounce": 0.14, "enter": 0.12, "appear": 0.05, "leave": 0.13,
}
OCCLUSION_PROBABILITY = 0.45
# A new object copies an earlier object's colour / shape / whole look with these probabilities.
SAME_COLOUR, SAME_SHAPE, TWIN = 0.3, 0.3, 0.08


@dataclass(frozen=True)
class SceneObject:
    """One object. ``object_id`` is its label in the masks (1, 2, ...); higher ``depth`` is in front."""

    object_id: int
    shape: str
    colour: str
    size: str
    texture: str
    rgb: tuple[float, float, float]
    radius: float
    angle: float
    trajectory: Trajectory
    depth: int

    @property
    def attributes(self) -> dict[str, str]:
        return {"size": self.size, "texture": self.texture, "colour": self.colour, "shape": self.shape}


@dataclass(frozen=True)
class Scene:
    """``background`` float32 ``[H, W, 3]``; ``occlusions`` lists (front id, back id) planted pairs."""

    height: int
    width: int
    frames: int
    background_kind: str
    background: np.ndarray
    objects: tuple[SceneObject, ...]
    occlusions: tuple[tuple[int, int], ...]


def _pick(rng: np.random.Generator, options) -> str:
    options = list(options)
    return options[int(rng.integers(len(options)))]


def _looks(rng: np.random.Generator, count: int) -> list[dict[str, str]]:
    looks: list[dict[str, str]] = []
    for _ in range(count):
        look = {"shape": _pick(rng, SHAPES), "colour": _pick(rng, COLOURS), "size": _pick(rng, SIZES), "texture": _pick(rng, TEXTURES)}
        if looks:
            earlier = looks[int(rng.integers(len(looks)))]
            r = rng.random()
            if r < SAME_COLOUR:
                look["colour"] = earlier["colour"]
            elif r < SAME_COLOUR + SAME_SHAPE:
                look["shape"] = earlier["shape"]
            elif r < SAME_COLOUR + SAME_SHAPE + TWIN:
                look = dict(earlier)
        looks.append(look)
    return looks


def _trajectory(rng: np.random.Generator, extent: float, height: int, width: int, frames: int) -> Trajectory:
    kinds = list(MOTION_WEIGHTS)
    p = np.array([MOTION_WEIGHTS[k] for k in kinds])
    for _ in range(8):
        found = sample_trajectory(rng, kinds[int(rng.choice(len(kinds), p=p / p.sum()))], extent, height, width, frames)
        if found is not None:
            return found
    found = sample_trajectory(rng, "static", extent, height, width, frames)
    assert found is not None  # a static shape fits whenever its size class fits the frame
    return found


def sample_scene(rng: np.random.Generator, height: int, width: int, frames: int, num_objects: tuple[int, int] = (2, 5)) -> Scene:
    """Draw a scene of ``num_objects[0]..num_objects[1]`` objects (inclusive)."""
    if MOTIONS != tuple(MOTION_WEIGHTS):
        raise RuntimeError("MOTION_WEIGHTS must list every motion of attributes.MOTIONS")
    background_kind, background = sample_background(rng, height, width)
    count = int(rng.integers(num_objects[0], num_objects[1] + 1))
    looks = _looks(rng, count)
    depths = rng.permutation(count)
    objects: list[SceneObject] = []
    for i, look in enumerate(looks):
        radius = SIZES[look["size"]] * min(height, width)
        base = np.asarray(COLOURS[look["colour"]], dtype=np.float64)
        rgb = tuple(float(c) for c in np.clip(base + rng.uniform(-8, 8, 3), 0, 255))
        angle = float(rng.uniform(-0.25, 0.25))
        trajectory = _trajectory(rng, 1.2 * radius, height, width, frames)
        objects.append(
            SceneObject(i + 1, look["shape"], look["colour"], look["size"], look["texture"], rgb, radius, angle, trajectory, int(depths[i]))
        )

    occlusions: tuple[tuple[int, int], ...] = ()
    behind_ok = [o for o in objects if o.trajectory.kind in ("static", "left", "right", "up", "down", "bounce")]
    if count >= 2 and behind_ok and rng.random() < OCCLUSION_PROBABILITY:
        back = behind_ok[int(rng.integers(len(behind_ok)))]
        front = _pick(rng, [o for o in objects if o is not back])
        frame = int(rng.integers(1, frames - 1))
        point = back.trajectory.centres[frame] + rng.uniform(-0.3, 0.3, 2) * back.radius
        path = pass_through(rng, point, frame, height, width, frames)
        front_depth, back_depth = max(front.depth, back.depth), min(front.depth, back.depth)
        for k, o in enumerate(objects):
            if o is front:
                objects[k] = replace(o, trajectory=path, depth=front_depth)
            elif o is back:
                objects[k] = replace(o, depth=back_depth)
        occlusions = ((front.object_id, back.object_id),)
    return Scene(height, width, frames, background_kind, background, tuple(objects), occlusions)
