"""Frame preprocessing for the two encoders and post-processing of the mask logits.

The authors open frames with PIL and resize them with torchvision's ``Resize`` on a PIL image,
which is PIL's own antialiased bilinear resampler with uint8 rounding (SPEC §1). A tensor-side
``interpolate`` is not bit-identical, so we resize with PIL too: both encoders see exactly the
pixels the released checkpoints were evaluated with. Aspect ratio is not kept, no padding.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

# ImageNet statistics, used by both SAM 2 and the authors' BEiT-3 branch.
PIXEL_MEAN = (0.485, 0.456, 0.406)
PIXEL_STD = (0.229, 0.224, 0.225)


def _check_frame(frame: np.ndarray) -> None:
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(
            f"expected an RGB uint8 frame of shape [H, W, 3], got dtype {frame.dtype} and shape {frame.shape}"
        )


def resize_frame(frame: np.ndarray, size: int) -> np.ndarray:
    """uint8 ``[H, W, 3]`` -> uint8 ``[size, size, 3]`` with PIL's bilinear filter."""
    _check_frame(frame)
    return np.asarray(Image.fromarray(frame).resize((size, size), Image.BILINEAR))


def normalize(frames: np.ndarray) -> torch.Tensor:
    """uint8 ``[..., H, W, 3]`` -> float32 ``[..., 3, H, W]``, ``(x / 255 - mean) / std``."""
    frames = np.ascontiguousarray(frames)
    if not frames.flags.writeable:  # e.g. arrays read from .npz; torch wants writable memory
        frames = frames.copy()
    x = torch.from_numpy(frames).float().div(255.0)
    x = x.movedim(-1, -3)
    mean = torch.tensor(PIXEL_MEAN).view(3, 1, 1)
    std = torch.tensor(PIXEL_STD).view(3, 1, 1)
    return (x - mean) / std


def encoder_input(frames: np.ndarray, size: int) -> torch.Tensor:
    """Frames uint8 ``[T, H, W, 3]`` (or one ``[H, W, 3]``) as the normalised ``[T, 3, size, size]``
    input of an encoder (``T = 1`` for one frame)."""
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    return normalize(np.stack([resize_frame(f, size) for f in frames]))


def logits_to_frame_size(lowres_logits: torch.Tensor, sam_image_size: int, height: int, width: int) -> torch.Tensor:
    """``[B, 1, h, w]`` low-resolution logits -> ``[B, height, width]`` float32.

    Two bilinear resizes, as the authors' pipeline does: their predictor upsamples to the
    1024x1024 "video" it was given (the resized frames), then the script resizes to the
    original frame size. Frames without the object stay at -1024 everywhere.
    """
    x = F.interpolate(lowres_logits.float(), size=(sam_image_size, sam_image_size), mode="bilinear", align_corners=False)
    x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False)
    return x[:, 0]
