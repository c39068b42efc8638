"""The released checkpoints by name, and where each is in the authors' Hub repository.

The authors publish their checkpoints in one Hub repository. Rather than guessing its file
names, :func:`locate_release` lists the repository (or, offline, the local Hub cache) and
:func:`find_checkpoint` picks the folder or file whose path names the variant; if none or
several match, the error lists what was found. Loading a name is
:func:`mpg_sam2.checkpoint.pretrained.load_pretrained`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable

from mpg_sam2.checkpoint.files import TOKENIZER_FILES
from mpg_sam2.checkpoint.hub import cached_repo_files, list_repo_files

__all__ = ["HUB_REPO", "REGISTRY", "HubCheckpoint", "ModelEntry", "cached_releases", "find_checkpoint", "locate_release"]

HUB_REPO = "ReeF2025/MPG-SAM2"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")


@dataclass(frozen=True)
class ModelEntry:
    name: str
    repo_id: str
    keywords: tuple[str, ...]  # any of these in a repo path marks this variant's checkpoint
    preset: str  # architecture, used when the checkpoint carries no config.json
    revision: str | None = None
    description: str = ""


REGISTRY: dict[str, ModelEntry] = {
    "ref-youtube-vos": ModelEntry(
        "ref-youtube-vos", HUB_REPO, ("ytvos", "youtube", "ref-youtube", "refytvos"), "release-large",
        description="SAM 2 Hiera-L + BEiT-3 large, trained on Ref-YouTube-VOS (paper: 73.9 J&F; 72.4 on Ref-DAVIS17)",
    ),
    "mevis": ModelEntry(
        "mevis", HUB_REPO, ("mevis",), "release-large",
        description="SAM 2 Hiera-L + BEiT-3 large, trained on MeViS (paper: 53.7 J&F on MeViS valid)",
    ),
    "tiny": ModelEntry(
        "tiny", HUB_REPO, ("tiny",), "release-tiny",
        description="SAM 2 Hiera-T + BEiT-3 base: the authors' small variant",
    ),
}


@dataclass(frozen=True)
class HubCheckpoint:
    path: str  # a folder (holding config.json) or a weights file inside the repo
    is_file: bool
    tokenizer_folder: str | None  # folder in the repo holding the tokenizer files


def find_checkpoint(files: Iterable[str], keywords: Iterable[str]) -> HubCheckpoint:
    """Pick the one checkpoint whose path contains a keyword (case-insensitive).

    Args:
        files: the repo's file paths (``"mevis/config.json"``, ``"MPG-SAM2_mevis.pth"``, ...).
        keywords: any of them in a path marks the checkpoint.

    Raises:
        RuntimeError: no checkpoint or several match; the message lists the repo's checkpoints.
    """
    files = list(files)
    folders = {str(PurePosixPath(f).parent) for f in files if PurePosixPath(f).name == "config.json"}
    candidates: list[tuple[str, bool]] = [(d, False) for d in sorted(folders)]
    for f in files:
        parent = str(PurePosixPath(f).parent)
        if f.endswith(_WEIGHT_SUFFIXES) and parent not in folders and "index" not in PurePosixPath(f).name:
            candidates.append((f, True))
    keys = [k.lower() for k in keywords]
    matches = [(p, is_file) for p, is_file in candidates if any(k in p.lower() for k in keys)]
    if len(matches) != 1:
        found = ", ".join(p for p, _ in candidates) or "no checkpoint (no config.json or weights file)"
        what = "no checkpoint" if not matches else f"{len(matches)} checkpoints ({', '.join(p for p, _ in matches)})"
        raise RuntimeError(f"{what} match {sorted(keys)} in the repo; it holds: {found}")
    path, is_file = matches[0]
    base = str(PurePosixPath(path).parent) if is_file else path
    tokenizer_folders = sorted({str(PurePosixPath(f).parent) for f in files if PurePosixPath(f).name in TOKENIZER_FILES})
    # Prefer the checkpoint's own folder, then the closest one up the tree.
    tokenizer = next((d for d in tokenizer_folders if d == base), None)
    if tokenizer is None:
        ancestors = [d for d in tokenizer_folders if base == d or base.startswith(d + "/") or d == "."]
        tokenizer = max(ancestors, key=len) if ancestors else (tokenizer_folders[0] if len(tokenizer_folders) == 1 else None)
    return HubCheckpoint(path=path, is_file=is_file, tokenizer_folder=tokenizer)


def locate_release(
    entry: ModelEntry, revision: str | None = None, cache_dir: str | Path | None = None, local_files_only: bool = False
) -> HubCheckpoint:
    """Where ``entry``'s checkpoint is in its repo (listed on the Hub, or in the cache when offline
    or ``local_files_only``); ``revision`` defaults to the entry's."""
    files = list_repo_files(entry.repo_id, revision or entry.revision, cache_dir, local_files_only=local_files_only)
    return find_checkpoint(files, entry.keywords)


def cached_releases(cache_dir: str | Path | None = None) -> list[str]:
    """Names of the released checkpoints whose files are in the local Hub cache; no network call."""
    names = []
    for name, entry in REGISTRY.items():
        try:
            find_checkpoint(cached_repo_files(entry.repo_id, entry.revision, cache_dir), entry.keywords)
        except RuntimeError:  # not downloaded (or ambiguous): it is not on this machine
            continue
        names.append(name)
    return names
