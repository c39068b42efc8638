"""How sure a difference between two scorings of the same expressions is: a paired bootstrap.

Two scorings of one set of expressions (a model after k clicks against the same model without
clicks, or two models) give one difference per expression. Resampling the expressions with
replacement and taking the mean difference of each resample gives the spread of that mean; the
interval is the central ``level`` share of the resampled means (percentile bootstrap). An
interval that excludes 0 says the difference is not an accident of which expressions the split
happens to hold; it does not cover other splits or seeds.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["PairedDifference", "paired_bootstrap"]

RESAMPLES = 10_000


@dataclass(frozen=True)
class PairedDifference:
    """Mean of ``after - before`` over ``count`` expressions and its bootstrap interval."""

    mean: float
    low: float
    high: float
    count: int
    level: float = 0.95

    def __str__(self) -> str:
        return f"{self.mean:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"


def paired_bootstrap(
    after: Sequence[float], before: Sequence[float], resamples: int = RESAMPLES, level: float = 0.95, seed: int = 0
) -> PairedDifference:
    """The mean of ``after[i] - before[i]`` and its ``level`` percentile-bootstrap interval.

    The resamples come from ``numpy.random.default_rng(seed)``, so a report is reproducible.
    """
    after, before = np.asarray(after, dtype=np.float64), np.asarray(before, dtype=np.float64)
    if after.shape != before.shape or after.ndim != 1 or after.size == 0:
        raise ValueError(f"need two equally long, non-empty score lists, got {after.shape} and {before.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    differences = after - before
    picks = np.random.default_rng(seed).integers(0, differences.size, size=(resamples, differences.size))
    means = differences[picks].mean(axis=1)  # [resamples]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return PairedDifference(float(differences.mean()), float(low), float(high), int(differences.size), level)
