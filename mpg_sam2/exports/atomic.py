"""Write a file or a folder under a temporary name and rename it into place when complete.

The temporary name is in the same folder as the target (a rename within one file system is
atomic), starts with a dot and keeps the target's suffix, so FFmpeg still picks the muxer from it.
On any exception the temporary file or folder is removed and the previous target, if any, is kept.
"""
from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def _temp_sibling(target: Path) -> Path:
    return target.with_name(f".{target.stem}.partial-{uuid.uuid4().hex[:8]}{target.suffix}")


@contextmanager
def atomic_file(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(target)
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
    """Yield a new temporary folder to fill; on success it replaces the folder ``target``.

    A folder cannot be replaced by a rename while it has content, so an existing ``target`` is
    first renamed aside, the new one renamed in, then the old one deleted.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(target)
    tmp.mkdir()
    try:
        yield tmp
        if target.exists():
            old = _temp_sibling(target)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
