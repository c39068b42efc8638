"""One zip with every export and a ``manifest.json`` describing it.

Videos and PNGs are already compressed, so they are stored as they are; JSON is deflated. The zip
is written under a temporary name and renamed when complete.
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any, Iterable

from mpg_sam2.atomic import atomic_file

from .errors import ExportError

MANIFEST_NAME = "manifest.json"
_STORED_SUFFIXES = {".mp4", ".png", ".zip"}


def _members(root: Path, paths: Iterable[Path]) -> list[tuple[Path, str]]:
    """(file, name in the zip) for every file in ``paths`` (folders are walked), sorted by name."""
    out: dict[str, Path] = {}
    for p in paths:
        p = Path(p)
        files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
        for f in files:
            try:
                name = f.resolve().relative_to(root.resolve()).as_posix()
            except ValueError:
                raise ExportError(f"{f} is not inside {root}; the archive only holds files under its root") from None
            out[name] = f
    return sorted(((f, n) for n, f in out.items()), key=lambda x: x[1])


def write_archive(
    zip_path: str | os.PathLike[str],
    root: str | os.PathLike[str],
    paths: Iterable[str | os.PathLike[str]],
    manifest: dict[str, Any],
) -> Path:
    """Zip ``paths`` (files or folders under ``root``, named relative to it) plus the manifest.

    ``manifest`` gets a ``"files"`` entry listing every member's name and size in bytes.
    """
    root = Path(root)
    members = _members(root, [Path(p) for p in paths])
    if any(name == MANIFEST_NAME for _, name in members):
        raise ExportError(f"a file named {MANIFEST_NAME} is among the files to archive; it would clash with the manifest")
    manifest = dict(manifest)
    manifest["files"] = [{"name": name, "bytes": f.stat().st_size} for f, name in members]
    with atomic_file(zip_path) as tmp:
        with zipfile.ZipFile(tmp, "w") as zf:
            zf.writestr(MANIFEST_NAME, json.dumps(manifest, indent=2, ensure_ascii=False), compress_type=zipfile.ZIP_DEFLATED)
            for f, name in members:
                kind = zipfile.ZIP_STORED if f.suffix.lower() in _STORED_SUFFIXES else zipfile.ZIP_DEFLATED
                zf.write(f, name, compress_type=kind)
    return Path(zip_path)
