"""A tiny checkpoint and a test video for the app tests; the app is imported after the env is set."""
from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from tiny_model import save_tiny_checkpoint
from video_factory import pattern_frames, write_video

ROOT = Path(__file__).resolve().parents[1]


def make_checkpoint(folder: Path) -> Path:
    return save_tiny_checkpoint(folder, seed=11)


def make_video(folder: Path, frames: int = 6) -> Path:
    return write_video(folder / "clip.mp4", pattern_frames(frames, 98, 62), fps=10, audio_hz=440)


def import_app(checkpoint: Path):
    """Import app.py with the test checkpoint as its model and the Hub switched off."""
    os.environ["MPG_SAM2_MODEL"] = str(checkpoint)
    os.environ["HF_HUB_OFFLINE"] = "1"
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    if "app" in sys.modules:
        return importlib.reload(sys.modules["app"])
    return importlib.import_module("app")
