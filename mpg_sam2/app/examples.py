"""The app's example clips (``examples/examples.json``), each with the model it was made for.

A synthetic clip is for the bundled offline model (it knows only synthetic shapes), a photo
clip for a released checkpoint; an example whose model this process does not offer is not
listed. Clicking an example also sets the model dropdown, so the cached result and a rerun
with the button use the same model.

Cached example results are computed once (Gradio's lazy cache keeps the outputs' values; a
``gr.State`` would come back empty), so their result folders live beside Gradio's own cache of
example outputs (:func:`example_output_root`): the hourly cleanup of request folders does not
touch them, and they last exactly as long as the cached results that point to them.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from mpg_sam2.app.models import BUNDLED_MODEL, ModelChoice

EXAMPLES_FILE = Path(__file__).resolve().parents[2] / "examples" / "examples.json"
# examples.json names models by kind; "offline" is the bundled checkpoint.
_MODEL_NAMES = {"offline": str(BUNDLED_MODEL)}


@dataclass(frozen=True)
class Example:
    title: str
    video: Path
    expressions: str  # one per line, as typed in the textbox
    model_source: str

    def row(self) -> list[str]:
        """The values of the example's inputs: video, expressions, model."""
        return [str(self.video), self.expressions, self.model_source]


def load_examples(offered: Iterable[ModelChoice], index_file: Path = EXAMPLES_FILE) -> list[Example]:
    """The examples whose video exists and whose model is among ``offered``."""
    if not index_file.exists():
        return []
    sources = {choice.source for choice in offered}
    examples = []
    for item in json.loads(index_file.read_text(encoding="utf-8")).get("examples", []):
        video = index_file.parent / item["video"]
        source = _MODEL_NAMES.get(item["model"], item["model"])
        if video.exists() and source in sources:
            examples.append(Example(item.get("title", item["video"]), video, "\n".join(item["expressions"]), source))
    return examples


def example_output_root() -> Path:
    """Where example results go: in Gradio's example cache folder (``GRADIO_EXAMPLES_CACHE``,
    default ``.gradio/cached_examples``), read when called so the setting is followed."""
    from gradio.utils import get_cache_folder

    return get_cache_folder().resolve() / "mpg_sam2_results"


def example_folder(video: str, expressions: str, model_source: str) -> Path:
    """A fixed result folder per example input (the same inputs give the same folder)."""
    key = json.dumps([Path(video).name, expressions, model_source]).encode("utf-8")
    return example_output_root() / hashlib.sha256(key).hexdigest()[:16]
