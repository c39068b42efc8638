"""Clicks on one frame as SAM 2's prompt encoder takes them, and what they do to a mask prior.

:class:`PointPrompt` is the one builder of point prompts (from the app, the CLI's corrections,
the simulated-click protocol and click training); :meth:`PointPrompt.paint_prior` is the
optional painting of the clicked frame's prior (``MaskPriorConfig.click_radius``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

__all__ = ["PointPrompt"]


@dataclass(frozen=True)
class PointPrompt:
    """Clicks on one frame, in SAM 2's prompt-encoder convention (batch B, P points)."""

    coords: torch.Tensor  # float [B, P, 2]: (x, y) in pixels of the S x S SAM 2 input
    labels: torch.Tensor  # int32 [B, P]: 1 = on the object, 0 = not on the object

    def __post_init__(self) -> None:
        if self.coords.ndim != 3 or self.coords.shape[-1] != 2 or self.labels.shape != self.coords.shape[:2]:
            raise ValueError(f"points need coords [B, P, 2] and labels [B, P], got {tuple(self.coords.shape)} and {tuple(self.labels.shape)}")

    @property
    def num_points(self) -> int:
        return self.labels.shape[1]

    def paint_prior(self, prior: torch.Tensor, sam_size: int, radius: float) -> torch.Tensor:
        """``prior`` ``[B, 1, g, g]`` (probabilities) with a disk of ``radius`` cells around each
        click set to 1 (positive) or 0 (negative), in click order; padding labels are skipped.

        A click at SAM 2 input pixel ``x`` lies at ``x / S * g - 0.5`` in cell-centre units (pixel
        corners: SAM 2's prompt encoder adds half a pixel first, 0.03 cells of the nano prior).
        """
        grid = prior.shape[-1]
        centres = torch.arange(grid, device=prior.device, dtype=torch.float32)
        cells = self.coords.to(prior.device, torch.float32) / sam_size * grid - 0.5  # [B, P, 2]
        dx = centres[None, None, None, :] - cells[..., 0, None, None]  # [B, P, 1, g]
        dy = centres[None, None, :, None] - cells[..., 1, None, None]  # [B, P, g, 1]
        inside = dx**2 + dy**2 <= radius**2  # [B, P, g, g]
        labels = self.labels.to(prior.device)
        painted = prior.clone()
        for p in range(self.num_points):  # later clicks over earlier ones
            for label, value in ((1, 1.0), (0, 0.0)):
                where = inside[:, p] & (labels[:, p] == label)[:, None, None]  # [B, g, g]
                painted[:, 0] = torch.where(where, torch.full_like(painted[:, 0], value), painted[:, 0])
        return painted

    @classmethod
    def from_points(
        cls,
        points: Sequence[tuple[float, float, int]],
        *,
        frame_size: tuple[int, int] | None = None,
        sam_size: int | None = None,
        device: torch.device | str = "cpu",
    ) -> "PointPrompt":
        """One frame's ``(x, y, label)`` points (batch 1). With ``frame_size`` ``(H, W)`` and
        ``sam_size`` S the points are in frame pixels and become ``x / W * S``, ``y / H * S``
        (SAM 2's video predictor's ``normalize_coords``); otherwise they are SAM 2 input pixels."""
        xy = torch.tensor([[x, y] for x, y, _ in points], dtype=torch.float32).reshape(len(points), 2)
        if frame_size is not None:
            height, width = frame_size
            xy = xy / torch.tensor([width, height], dtype=torch.float32) * sam_size
        labels = torch.tensor([label for _, _, label in points], dtype=torch.int32)
        return cls(xy[None].to(device), labels[None].to(device))
