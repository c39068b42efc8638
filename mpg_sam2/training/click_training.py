"""Simulated corrective clicks during training, so the prompt encoder's point embeddings learn
what a click means (optional; off in the authors' recipe, who never train with points).

As SAM 2's own training does (``SAM2Train``: corrective points sampled from the error between
the current prediction and the target, several rounds on a frame), on a share of the training
clips one frame is corrected during the forward pass: the frame is tracked as usual, a click is
drawn uniformly from its error region (label 1 where the target is, 0 where it is not), the
frame is decoded again with the click as a conditioning frame of SAM 2's memory (text token and
mask prior as on every frame), and, for ``clicks > 1``, the next click comes from the error left
by the previous ones. The frames after it are tracked reading the corrected memory, as at
inference (:mod:`mpg_sam2.model.click_correction`), and the loss reads every frame's final
output. Which clip and frame, and which error pixel, come from the clip's ``click_seed``, drawn
with the clip's other random choices, so a resumed run clicks exactly where an uninterrupted one
would.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


__all__ = ["ClickTraining", "ClickPlan", "plan_clicks", "sample_corrective_click"]


@dataclass(frozen=True)
class ClickTraining:
    """How often and how much training clips are corrected with simulated clicks."""

    probability: float = 0.0  # share of clips with one corrected frame (0: the authors' training)
    clicks: int = 1  # corrective clicks on that frame, each from the error the previous ones left

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"click probability must be in [0, 1], got {self.probability}")
        if self.clicks < 1:
            raise ValueError(f"clicks per corrected frame must be at least 1, got {self.clicks}")

    @property
    def enabled(self) -> bool:
        return self.probability > 0


@dataclass(frozen=True)
class ClickPlan:
    """Where one clip is corrected: its frame and the generator of the click positions."""

    frame: int
    clicks: int
    generator: torch.Generator


def plan_clicks(settings: ClickTraining, click_seed: int, num_frames: int) -> ClickPlan | None:
    """``None`` for a clip without clicks; otherwise a uniformly drawn frame to correct."""
    if not settings.enabled:
        return None
    generator = torch.Generator().manual_seed(click_seed)
    if torch.rand((), generator=generator).item() >= settings.probability:
        return None
    frame = int(torch.randint(num_frames, (), generator=generator))
    return ClickPlan(frame, settings.clicks, generator)


def sample_corrective_click(logits: torch.Tensor, target: torch.Tensor, generator: torch.Generator) -> tuple[int, int, int] | None:
    """One click ``(x, y, label)`` in pixels of the ``[S, S]`` SAM 2 input, drawn uniformly from
    the pixels where ``logits > 0`` disagrees with ``target > 0.5``; ``None`` if none does."""
    error = ((logits.detach() > 0) != (target > 0.5)).flatten()
    wrong = error.nonzero()[:, 0]
    if wrong.numel() == 0:
        return None
    index = int(wrong[torch.randint(wrong.numel(), (), generator=generator)])
    y, x = divmod(index, logits.shape[-1])
    return x, y, int(target[y, x] > 0.5)
