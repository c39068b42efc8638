"""The evaluation a checkpoint folder carries (``evaluation.json``), and whether it reads the sentence.

``python -m mpg_sam2.training.offline_model`` writes ``evaluation.json`` next to the bundled
offline model: J&F on the synthetic benchmark's test split, overall and per expression type
(``"test"``), and what segmenting a random object of each clip scores (``"test_random_object"``,
:func:`mpg_sam2.evaluation.synthetic_report.chance_level`). The model card written there and the
app's note on the model judge it with the same margin, defined here so that the app can read it
without importing the evaluation or training code.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EVALUATION_FILE", "GOOD_JF", "GROUNDING_MARGIN", "GroundingScores", "read_grounding_scores"]

EVALUATION_FILE = "evaluation.json"
# J&F above the random-object level below which a model counts as not reading the sentence: a
# model that segments *an* object well but ignores the text scores about that level.
GROUNDING_MARGIN = 0.05
# Overall J&F below which a model that reads the sentence is said to do so "far from perfectly".
GOOD_JF = 0.75


@dataclass(frozen=True)
class GroundingScores:
    """Test-split J&F of a checkpoint against the random-object level (all in [0, 1])."""

    overall: float
    appearance: float  # the appearance expressions alone
    random_object: float  # segmenting a random object of the clip perfectly, overall

    @property
    def reads_the_sentence(self) -> bool:
        return self.overall >= self.random_object + GROUNDING_MARGIN

    @property
    def verdict(self) -> str:
        """How the app's note and the README put it, e.g. "reads the sentence, far from perfectly"."""
        if not self.reads_the_sentence:
            return "does not read the sentence yet"
        return "reads the sentence" + (", far from perfectly" if self.overall < GOOD_JF else "")


def read_grounding_scores(folder: str | Path) -> GroundingScores | None:
    """The scores in ``folder/evaluation.json``; None when the file is missing or lacks them."""
    try:
        evaluation = json.loads((Path(folder) / EVALUATION_FILE).read_text(encoding="utf-8"))
        model, chance = evaluation["test"], evaluation["test_random_object"]
        return GroundingScores(
            overall=model["overall"]["J&F"], appearance=model["appearance"]["J&F"],
            random_object=chance["overall"]["J&F"],
        )
    except (OSError, KeyError, TypeError, ValueError):
        return None
