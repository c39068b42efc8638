"""Per-frame results to the host without stopping the frame loop.

Reading a GPU tensor on the host (``float(t)``, ``t.cpu()``) waits until the GPU has finished
everything queued before it, so a read per frame leaves the GPU idle while the host then
launches the next frame's kernels. Here each frame's mask and object score are copied into
pinned host buffers asynchronously, behind the frame's work on the same stream; they are
written into the result arrays once the copy has finished, which is checked (never waited for)
at every frame and waited for by :meth:`HostCopies.finish`. On the CPU they are written at once.
"""
from __future__ import annotations

from collections import deque

import numpy as np
import torch

__all__ = ["HostCopies"]


class HostCopies:
    """Pending ``(masks, scores, index)`` writes, applied in the order they were made (a
    correction re-tracking a frame overwrites the first pass's entry, never the reverse)."""

    def __init__(self) -> None:
        self._pending: deque[tuple[np.ndarray, np.ndarray, int, torch.Tensor, torch.Tensor, torch.cuda.Event]] = deque()

    def put(self, masks: np.ndarray, scores: np.ndarray, index: int, mask: torch.Tensor, score: torch.Tensor) -> None:
        """``masks[index] = mask`` (bool ``[H, W]``) and ``scores[index] = score`` (0-d float)."""
        if mask.device.type != "cuda":
            # CPU tensors share memory with numpy: no copy is queued, and nothing to wait for.
            masks[index] = mask.numpy(force=True)
            scores[index] = score.numpy(force=True)
            return
        host_mask = torch.empty(mask.shape, dtype=mask.dtype, pin_memory=True)
        host_score = torch.empty(score.shape, dtype=score.dtype, pin_memory=True)
        host_mask.copy_(mask, non_blocking=True)
        host_score.copy_(score, non_blocking=True)
        done = torch.cuda.Event()
        # The copies run on the mask's device's stream, which need not be the current device's.
        done.record(torch.cuda.current_stream(mask.device))
        self._pending.append((masks, scores, index, host_mask, host_score, done))
        self._write(wait=False)

    def finish(self) -> None:
        """Wait for every pending copy and write it."""
        self._write(wait=True)

    def _write(self, wait: bool) -> None:
        while self._pending:
            masks, scores, index, host_mask, host_score, done = self._pending[0]
            if not wait and not done.query():
                return  # later copies were queued after this one: they are not done either
            done.synchronize()
            masks[index] = host_mask.numpy()
            scores[index] = host_score.numpy()
            self._pending.popleft()
