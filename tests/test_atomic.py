"""mpg_sam2.atomic: a file or folder is replaced whole or not at all (its users' tests cover the rest)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from mpg_sam2 import atomic
from mpg_sam2.atomic import atomic_dir, atomic_file


def test_atomic_file_keeps_the_suffix_and_replaces_the_target(tmp_path: Path) -> None:
    (tmp_path / "a.mp4").write_text("old")
    with atomic_file(tmp_path / "a.mp4") as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".") and tmp.suffix == ".mp4"
        tmp.write_text("new")
    assert (tmp_path / "a.mp4").read_text() == "new" and sorted(os.listdir(tmp_path)) == ["a.mp4"]
    with pytest.raises(RuntimeError, match="without creating its temporary file"):
        with atomic_file(tmp_path / "b.json"):
            pass
    assert sorted(os.listdir(tmp_path)) == ["a.mp4"]


def test_atomic_dir_keeps_the_old_folder_when_anything_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out"
    with atomic_dir(target) as tmp:
        (tmp / "x").write_text("1")
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(target) as tmp:
            (tmp / "x").write_text("2")
            raise KeyboardInterrupt
    assert sorted(os.listdir(tmp_path)) == ["out"] and (target / "x").read_text() == "1"

    # The rename of the new folder into place fails after the old one was moved aside.
    real_replace = os.replace

    def replace(src, dst):
        if Path(src).name.startswith(".out.partial-"):
            raise OSError("rename refused")
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace)
    with pytest.raises(OSError, match="rename refused"):
        with atomic_dir(target) as tmp:
            (tmp / "x").write_text("3")
    assert sorted(os.listdir(tmp_path)) == ["out"] and (target / "x").read_text() == "1"
