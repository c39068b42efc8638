"""Clip augmentations that keep the SAM 2 view, the BEiT-3 view, the masks and the text consistent.

Every augmentation is applied once, to the source frames (uint8 ``[T, H, W, 3]``) and the
target masks (bool ``[T, H, W]``), with the same parameters for all frames of the clip; both
encoder views are resized from the augmented frames afterwards (:func:`encoder_views`). So the
two views cannot disagree. The authors flip the SAM 2 view and the caption but not the BEiT-3
view, so after a flip their mask prior is predicted on a mirrored image; we do not copy that.

* random horizontal flip: frames, masks, and the words "left" / "right" (also "leftmost",
  "rightmost", ...) in the caption;
* photometric jitter: brightness, contrast and saturation factors, applied identically to all
  frames (and therefore to both views);
* random resized crop: one box for the whole clip, kept only if it keeps most of the target.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import torch

from mpg_sam2.frames import encoder_input

__all__ = ["AugmentConfig", "AugmentedClip", "augment_clip", "encoder_views", "resize_masks", "swap_left_right"]

_LEFT_RIGHT = re.compile(r"\b(left|right)(most|ward|wards|-hand|hand)?\b", re.IGNORECASE)
_SWAP = {"left": "right", "right": "left"}
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges; ``AugmentConfig.none()`` turns everything off."""

    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.25  # factor drawn from [1 - b, 1 + b]
    contrast: float = 0.25
    saturation: float = 0.25
    crop_p: float = 0.3
    crop_scale: tuple[float, float] = (0.5, 1.0)  # area fraction of the crop box
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # width / height of the crop box
    # A crop is kept only if at least this fraction of the target pixels (whole clip) survive:
    # cutting the referred object away would make the expression wrong.
    crop_min_target_kept: float = 0.8
    crop_attempts: int = 10

    @classmethod
    def none(cls) -> "AugmentConfig":
        return cls(flip_p=0.0, jitter_p=0.0, crop_p=0.0)


@dataclass
class AugmentedClip:
    frames: np.ndarray  # uint8 [T, H', W', 3]
    masks: np.ndarray  # bool [T, H', W']
    text: str
    applied: list[str] = field(default_factory=list)  # e.g. ["crop", "flip", "jitter"]
    labels: np.ndarray | None = None  # uint8 [T, H', W'] object ids, where augment_clip was given them


def swap_left_right(text: str) -> str:
    """Exchange "left" and "right" (keeping case and suffixes such as "most")."""

    def swap(match: re.Match) -> str:
        word, suffix = match.group(1), match.group(2) or ""
        new = _SWAP[word.lower()]
        if word.isupper():
            new = new.upper()
        elif word[0].isupper():
            new = new.capitalize()
        return new + suffix

    return _LEFT_RIGHT.sub(swap, text)


def _crop_box(rng: np.random.Generator, masks: np.ndarray, config: AugmentConfig) -> tuple[int, int, int, int] | None:
    _, height, width = masks.shape
    total = int(masks.sum())
    for _ in range(config.crop_attempts):
        area = rng.uniform(*config.crop_scale) * height * width
        ratio = float(np.exp(rng.uniform(np.log(config.crop_ratio[0]), np.log(config.crop_ratio[1]))))
        w = int(round(np.sqrt(area * ratio)))
        h = int(round(np.sqrt(area / ratio)))
        if not (0 < w <= width and 0 < h <= height):
            continue
        y0 = int(rng.integers(0, height - h + 1))
        x0 = int(rng.integers(0, width - w + 1))
        if total == 0 or masks[:, y0 : y0 + h, x0 : x0 + w].sum() >= config.crop_min_target_kept * total:
            return y0, x0, h, w
    return None


def _jitter(frames: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    x = frames.astype(np.float32)
    brightness = rng.uniform(1 - config.brightness, 1 + config.brightness)
    contrast = rng.uniform(1 - config.contrast, 1 + config.contrast)
    saturation = rng.uniform(1 - config.saturation, 1 + config.saturation)
    x = x * brightness
    grey_mean = (x @ _LUMA).mean(axis=(1, 2), keepdims=True)[..., None]  # per frame
    x = (x - grey_mean) * contrast + grey_mean
    grey = (x @ _LUMA)[..., None]
    x = (x - grey) * saturation + grey
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def augment_clip(
    frames: np.ndarray,
    masks: np.ndarray,
    text: str,
    rng: np.random.Generator,
    config: AugmentConfig = AugmentConfig(),
    labels: np.ndarray | None = None,
) -> AugmentedClip:
    """Crop, flip and jitter a clip: frames uint8 ``[T, H, W, 3]``, masks bool ``[T, H, W]``;
    ``labels`` (the object id of every pixel, ``[T, H, W]``), if given, are cropped and flipped
    with them. The random draws do not depend on ``labels``."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    if masks.shape != frames.shape[:3]:
        raise ValueError(f"masks {masks.shape} do not match frames {frames.shape[:3]}")
    if labels is not None and labels.shape != masks.shape:
        raise ValueError(f"labels {labels.shape} do not match frames {frames.shape[:3]}")
    applied = []
    masks = masks.astype(bool)
    if config.crop_p > 0 and rng.random() < config.crop_p:
        box = _crop_box(rng, masks, config)
        if box is not None:
            y0, x0, h, w = box
            frames, masks = frames[:, y0 : y0 + h, x0 : x0 + w], masks[:, y0 : y0 + h, x0 : x0 + w]
            labels = None if labels is None else labels[:, y0 : y0 + h, x0 : x0 + w]
            applied.append("crop")
    if config.flip_p > 0 and rng.random() < config.flip_p:
        frames, masks, text = frames[:, :, ::-1], masks[:, :, ::-1], swap_left_right(text)
        labels = None if labels is None else labels[:, :, ::-1]
        applied.append("flip")
    if config.jitter_p > 0 and rng.random() < config.jitter_p:
        frames = _jitter(frames, rng, config)
        applied.append("jitter")
    return AugmentedClip(np.ascontiguousarray(frames), np.ascontiguousarray(masks), text, applied,
                         None if labels is None else np.ascontiguousarray(labels))


def encoder_views(frames: np.ndarray, sam_size: int, beit_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Both encoder inputs of the same frames, as at inference (PIL bilinear resize, ImageNet norm).

    Returns SAM 2 pixels ``[T, 3, S, S]`` and BEiT-3 pixels ``[T, 3, B, B]`` (float32).
    """
    sam = encoder_input(frames, sam_size)
    beit = encoder_input(frames, beit_size)
    return sam, beit


def resize_masks(masks: np.ndarray, size: int) -> torch.Tensor:
    """bool ``[T, H, W]`` -> float32 ``[T, size, size]`` in {0, 1} (bilinear, threshold 0.5)."""
    from PIL import Image

    resized = [
        np.asarray(Image.fromarray(m.astype(np.uint8) * 255).resize((size, size), Image.BILINEAR)) >= 128 for m in masks
    ]
    return torch.from_numpy(np.stack(resized)).float()
