"""The repository README's paragraphs on the bundled offline model, written from its ``evaluation.json``.

The README describes the bundle in prose in two places: a summary (how it was trained and what it
scores) and, in the clicks section, what simulated clicks add. Both sit between marker comments
and are rewritten from the numbers, so a rebuilt bundle cannot leave them behind::

    <!-- offline-model:summary -->  ...  <!-- /offline-model:summary -->
    <!-- offline-model:clicks -->   ...  <!-- /offline-model:clicks -->

    python -m mpg_sam2.training.offline_readme [--readme README.md] [--bundle checkpoints/offline]

``python -m mpg_sam2.training.offline_model`` runs it after writing the bundle to a repository's
``checkpoints/offline`` whose README has the markers.
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from mpg_sam2.checkpoint.evaluation import EVALUATION_FILE, read_grounding_scores

__all__ = ["MARKER", "readme_sections", "update_readme"]

MARKER = "<!-- offline-model:summary -->"  # a README with it describes the bundle

_TYPES = ("appearance", "motion", "relation", "time")
# Below this margin over the random-object level a type is flagged in the summary.
_WEAK_MARGIN = 0.15


def _count(n: int) -> str:
    return f"{n:,}"


def _number_word(n: int) -> str:
    return {1: "one", 2: "two", 3: "three", 4: "four"}.get(n, str(n))


def _warm_up_parts(stage: dict[str, Any]) -> str:
    """What the warm-up trains on besides the prior loss, in the README's words."""
    parts = []
    if stage.get("attribute_loss"):
        parts.append("a per-patch attribute loss that teaches BEiT-3's patches the colour, shape, size and texture of "
                     "the object under them")
    if stage.get("caption_loss"):
        parts.append("a caption loss that makes BEiT-3's class token say what the caption says, its phrase included")
    if stage.get("motion_loss"):
        parts.append("a motion loss that makes the space-time tokens name the motion of the object under them")
    # Semicolons between the losses: a loss's own description may hold a comma.
    if not parts:
        text = "on the prior loss only"
    elif len(parts) == 1:
        text = "with " + parts[0]
    else:
        text = "with " + "; ".join(parts[:-1]) + ("; and " if len(parts) > 2 else " and ") + parts[-1]
    if stage.get("motion_features"):
        text += (". Not in the paper, the mask prior generator also reads patch motion from frame-to-frame "
                 "correspondence (`mask_prior.motion_features`)")
    if stage.get("conv_stem"):
        text += (f"{'; and' if stage.get('motion_features') else '. Not in BEiT-3,'} a convolutional stem beside BEiT-3's "
                 "patch projection lets each patch see the 31 px around it (`beit3.conv_stem`)")
    return text


def _readout_sentence(evaluation: dict[str, Any]) -> list[str]:
    """How the bundle reads its masks out, when not as SAM 2 gives them, and what that is worth."""
    own = evaluation.get("test_sam2_masks")
    if not own:
        return []
    readout = evaluation["readout"]
    either = " either" if any(stage.get("motion_features") for stage in evaluation["warmup_stages"]) else ""
    parts = []
    if readout.get("object_score_threshold"):
        parts.append(f"a frame's mask is empty unless SAM 2's object score exceeds {readout['object_score_threshold']:g}")
    if readout.get("component_prior_ratio"):
        parts.append("each frame's mask keeps only the parts its mask prior favours")
    return [f"Not in the paper{either}, its masks are read out by its config.json's `readout`: "
            + " and ".join(parts) + f"; with SAM 2's own masks the test J&F is {own['overall']['J&F']:.3f}."]


def _summary(evaluation: dict[str, Any], bundle: Path) -> str:
    scores = read_grounding_scores(bundle)
    if scores is None:
        raise ValueError(f"{bundle / EVALUATION_FILE} has no test-split scores; rebuild the bundle "
                         "(python -m mpg_sam2.training.offline_model)")
    test, chance = evaluation["test"], evaluation["test_random_object"]
    stages = evaluation["warmup_stages"]
    size_mb = (bundle / "model.safetensors").stat().st_size / 1e6
    per_type = []
    for kind in _TYPES:
        margin = test[kind]["J&F"] - chance[kind]["J&F"]
        flag = f", only {margin:.3f} above that level" if margin < _WEAK_MARGIN else ""
        per_type.append(f"{kind} {test[kind]['J&F']:.3f} ({chance[kind]['J&F']:.3f}{flag})")
    held_out = [evaluation["held_out"][seed] for seed in sorted(evaluation.get("held_out", {}), key=int)]
    sentences = [
        f"**The bundled offline model {scores.verdict}.** `checkpoints/offline/` ({size_mb:.1f} MB, model card and "
        f"numbers inside) is `nano` trained from random weights on a 2-core CPU on {_count(evaluation['data']['train'])} "
        f"synthetic clips: a warm-up of the grounding path alone ({_count(sum(s['steps'] for s in stages))} steps, "
        f"{evaluation['warmup_seconds'] / 60:.0f} minutes of step time, {_warm_up_parts(stages[-1])}), then "
        f"{_count(evaluation['steps'])} steps in which SAM 2 learns to follow that grounding while BEiT-3 and the mask "
        f"prior generator keep the warm-up's weights ({evaluation['training_seconds'] / 3600:.2f} h of step time on one "
        f"core, beside the ablation runs), step {_count(evaluation['selected_step'])} chosen on the validation split.",
        *_readout_sentence(evaluation),
        f"Test split J&F {test['overall']['J&F']:.3f} against {chance['overall']['J&F']:.3f} for segmenting a random "
        f"object of the clip perfectly; per type: {', '.join(per_type)}.",
    ]
    if held_out:
        sentences.append(
            f"On the test splits of {_number_word(len(held_out))} seeds it never saw it scores "
            + " and ".join(f"{h['test']['overall']['J&F']:.3f}" for h in held_out) + " (random object "
            + " and ".join(f"{h['test_random_object']['overall']['J&F']:.3f}" for h in held_out) + ").")
    sentences += [
        # Measured once, not by the build: the bundle built before the warm-up existed (its card until commit 1af82c1).
        "Trained whole from random weights without the warm-up, the same network did not read the sentence after "
        "3,500 steps (0.331): it learns to segment and track *an* object first and stops using the caption.",
        "The app offers this model only when no released checkpoint can be had, and its note gives these numbers.",
    ]
    return _wrap(" ".join(sentences))


def _clicks(evaluation: dict[str, Any]) -> str:
    after = evaluation.get("test_clicks", {}).get("after")
    if not after:
        return "The bundle was built without the click evaluation, so what clicks add to it is not measured."
    counts = sorted(int(n) for n in after)[1:]
    overall = [after[str(n)]["overall"]["J&F"] for n in [0, *counts]]
    return _wrap(f"On its test split J&F goes from {overall[0]:.3f} to " + " / ".join(f"{v:.3f}" for v in overall[1:])
                 + " after " + " / ".join(str(n) for n in counts) + " simulated clicks.")


def _wrap(text: str, width: int = 100) -> str:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return "\n".join([*lines, line])


def readme_sections(bundle: str | Path) -> dict[str, str]:
    """Marker name -> the text between its markers, from ``bundle/evaluation.json``."""
    bundle = Path(bundle)
    evaluation = json.loads((bundle / EVALUATION_FILE).read_text(encoding="utf-8"))
    return {"summary": _summary(evaluation, bundle), "clicks": _clicks(evaluation)}


def update_readme(readme: str | Path, bundle: str | Path) -> bool:
    """Rewrite ``readme``'s marked sections from ``bundle``; True when the text changed. A README
    without every pair of markers is an error (nothing is written)."""
    readme = Path(readme)
    text = original = readme.read_text(encoding="utf-8")
    for name, body in readme_sections(bundle).items():
        pattern = re.compile(rf"(<!-- offline-model:{name} -->\n).*?(\n<!-- /offline-model:{name} -->)", re.DOTALL)
        if not pattern.search(text):
            raise ValueError(f"{readme} has no '<!-- offline-model:{name} -->' ... '<!-- /offline-model:{name} -->' "
                             "markers around its paragraph on the bundled model; add them, then run this again")
        text = pattern.sub(lambda m: m.group(1) + body + m.group(2), text)
    if text != original:
        readme.write_text(text, encoding="utf-8")
    return text != original


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mpg_sam2.training.offline_readme", description=__doc__.split("\n\n")[0])
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    parser.add_argument("--bundle", type=Path, default=Path("checkpoints/offline"))
    args = parser.parse_args(argv)
    changed = update_readme(args.readme, args.bundle)
    print(f"{args.readme}: {'rewrote' if changed else 'already up to date with'} the paragraphs on {args.bundle}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
