"""Submission zips for the online servers (Ref-YouTube-VOS valid, MeViS valid).

Both servers score binary PNGs ``<video>/<exp_id>/<frame>.png`` (0 / 255, one per frame the meta
lists); they differ in the folder above:

- Ref-YouTube-VOS: ``Annotations/<video>/<exp_id>/<frame>.png``. ReferFormer's instructions (the
  pipeline the MPG-SAM 2 authors build on) are "rename the folder ``valid`` as ``Annotations``",
  then ``zip -q -r submission.zip Annotations``.
- MeViS: ``<video>/<exp_id>/<frame>.png`` at the zip root. The MeViS repository's submission
  guideline: ``cd [output_dir]; zip -r ../xxx.zip *``, its ``sample_submission_valid.zip``
  "directly packages 140 val video folders".

The members come from the dataset's meta (not from listing the folder), so the zip holds exactly
the frames the server expects; a missing PNG is an error. Folder entries are written too, as
``zip -r`` does; PNGs are stored without recompression.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

from mpg_sam2.atomic import atomic_file
from mpg_sam2.data.types import ReferringDataset

from .benchmarks import BINARY_ROOT

__all__ = ["submission_members", "write_submission_zip"]


def submission_members(dataset: ReferringDataset, out: Path, prefix: str) -> list[tuple[Path, str]]:
    """(PNG on disk, name in the zip) of every expression and frame of ``dataset``, in meta order."""
    members, missing = [], []
    for video in dataset.videos:
        for sample in video.expressions:
            for name in sample.frame_names:
                rel = f"{video.video_id}/{sample.expression_id}/{name}.png"
                path = out / BINARY_ROOT / rel
                if not path.is_file():
                    missing.append(rel)
                members.append((path, f"{prefix}/{rel}" if prefix else rel))
    if missing:
        raise RuntimeError(
            f"{len(missing)} PNGs of the submission are missing under {out / BINARY_ROOT} (first: {missing[0]}); "
            "finish the prediction (all shards) before packing it"
        )
    return members


def write_submission_zip(path: str | Path, dataset: ReferringDataset, out: str | Path, prefix: str) -> Path:
    """Pack the binary PNGs of ``dataset`` under ``out`` into ``path`` with the server's layout."""
    path = Path(path)
    members = submission_members(dataset, Path(out), prefix)
    folders: list[str] = []
    seen: set[str] = set()
    for _, name in members:
        parts = name.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            folder = "/".join(parts[:depth]) + "/"
            if folder not in seen:
                seen.add(folder)
                folders.append(folder)
    with atomic_file(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
        for folder in folders:
            archive.writestr(zipfile.ZipInfo(folder, date_time=(1980, 1, 1, 0, 0, 0)), b"")
        for file, name in members:
            archive.write(file, name)
    return path
