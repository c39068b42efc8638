"""Imports only go down: each part of the package imports only the parts below it.

The layers follow the data flow (video -> frames -> encoders -> mask prior -> SAM 2 propagation
-> masks -> exports): foundations, the model, checkpoints, readers and writers, the pipeline,
evaluation, then the three front ends (app, command line, training). A part may import any part
of a lower layer and none of its own or a higher one, so the model never imports training or
the app, and the app never imports training or evaluation. Lazy imports inside functions count.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mpg_sam2"

# Lowest first. Parts in one layer do not import each other.
LAYERS: list[set[str]] = [
    {"config", "atomic", "video", "frames", "tokenizer", "mask_io"},  # foundations: nothing of ours
    {"model", "synthetic_weights"},
    {"checkpoint"},
    {"reference", "data", "exports"},
    {"pipeline"},
    {"evaluation", "app"},
    {"space", "training"},
    {"cli"},
    {"__main__"},
]
LAYER_OF = {part: level for level, parts in enumerate(LAYERS) for part in parts}


def _part(module: str) -> str | None:
    names = module.split(".")
    return names[1] if names[0] == "mpg_sam2" and len(names) > 1 else None


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {part for part in map(_part, found) if part is not None}


def _part_of_file(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py") if len(relative.parts) > 1 or relative.stem != "__init__" else "__init__"


def test_every_part_of_the_package_has_a_layer():
    parts = {_part_of_file(p) for p in PACKAGE.rglob("*.py")} - {"__init__"}
    assert parts == set(LAYER_OF), f"new: {sorted(parts - set(LAYER_OF))}, gone: {sorted(set(LAYER_OF) - parts)}"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_down(path):
    part = _part_of_file(path)
    if part == "__init__":
        return  # the package's lazy name table points anywhere, on purpose
    upward = sorted(other for other in _imports(path) - {part} if LAYER_OF[other] >= LAYER_OF[part])
    assert not upward, f"{path.relative_to(PACKAGE)} ({part}, layer {LAYER_OF[part]}) imports {upward} from its layer or above"


def test_the_check_sees_a_lazy_upward_import(tmp_path):
    """The walk finds imports inside functions too (the test above can fail)."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from mpg_sam2.training.trainer import Trainer\n")
    assert _imports(module) == {"training"}
