"""Write a file or a folder under a temporary name and rename it into place when complete.

Everything in the package that writes a file or folder "whole or not at all" (exports,
evaluation PNG folders and state files, checkpoints, the app's request folders, the Space
folder, the app's SAM 2 install) goes through :func:`atomic_file` or :func:`atomic_dir`.

The temporary name is in the same folder as the target (a rename within one file system is
atomic) and starts with a dot; a file's keeps the target's suffix, so FFmpeg still picks the
muxer from it. On any exception (including KeyboardInterrupt) the temporary file or folder is
removed and the previous target, if any, is kept.
"""
from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_dir", "atomic_file"]


def _tag() -> str:
    return uuid.uuid4().hex[:8]


@contextmanager
def atomic_file(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.partial-{_tag()}{target.suffix}")
    try:
        yield tmp
        if not tmp.is_file():
            raise RuntimeError(f"the writer of {target} finished without creating its temporary file {tmp}")
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a new, empty temporary folder to fill; on success it replaces the folder ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.partial-{_tag()}")
    tmp.mkdir()
    try:
        yield tmp
        _replace_dir(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _replace_dir(new: Path, target: Path) -> None:
    if not target.exists():
        os.replace(new, target)
        return
    # A folder cannot be replaced by a rename while it holds files: move the old one aside
    # first, so at every moment either the old or the new complete folder is at `target` (or,
    # for the instant between the two renames, nothing at all - never a mixture).
    old = target.with_name(f".{target.name}.old-{_tag()}")
    os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(old, target)
        raise
    # The new folder is in place; a leftover old copy is not worth failing the write for.
    shutil.rmtree(old, ignore_errors=True)
