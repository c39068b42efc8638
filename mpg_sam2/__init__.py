"""MPG-SAM 2: referring video object segmentation with mask priors and global context.

    from mpg_sam2 import load_pretrained
    pretrained = load_pretrained("path/or/hub-repo")

The names below are imported on first use, so light subpackages (e.g. the synthetic data
generator) load without torch and SAM 2.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "MPGSAM2": "mpg_sam2.model.mpg_sam2",
    "MPGSAM2Config": "mpg_sam2.config",
    "PRESETS": "mpg_sam2.config",
    "get_preset": "mpg_sam2.config",
    "Pretrained": "mpg_sam2.checkpoint.pretrained",
    "load_pretrained": "mpg_sam2.checkpoint.pretrained",
    "save_pretrained": "mpg_sam2.checkpoint.pretrained",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'mpg_sam2' has no attribute {name!r}")
