"""Named models: the released checkpoints on the Hugging Face Hub, and local directories.

The authors publish their checkpoints in one Hub repository. Rather than guessing its file
names, :func:`find_checkpoint` lists the repository (or, offline, the cached snapshot) and
picks the folder or file whose path names the variant; if none or several match, the error
lists what was found.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable

import torch

from mpg_sam2.pretrained import Pretrained, load_pretrained
from mpg_sam2.tokenizer import load_tokenizer

HUB_REPO = "ReeF2025/MPG-SAM2"
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")
_TOKENIZER_FILES = ("sentencepiece.bpe.model", "tokenizer.json")


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


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` is set: use the local Hub cache only."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def list_repo_files(repo_id: str, revision: str | None = None, cache_dir: str | Path | None = None) -> list[str]:
    """The repo's file paths: from the Hub, or from the cached snapshot when offline."""
    import huggingface_hub

    try:
        if hub_offline():
            root = Path(huggingface_hub.snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, local_files_only=True))
            return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
        return sorted(huggingface_hub.list_repo_files(repo_id, revision=revision))
    except Exception as error:  # network, auth, missing repo/revision, empty cache
        where = "the local Hub cache (HF_HUB_OFFLINE is set)" if hub_offline() else "the Hugging Face Hub"
        raise RuntimeError(
            f"could not list {repo_id}@{revision or 'main'} on {where}: {type(error).__name__}: {error}. "
            "Check the network, the repo id and revision, or download the checkpoint and pass its folder."
        ) from error


def find_checkpoint(files: Iterable[str], keywords: Iterable[str]) -> HubCheckpoint:
    """Pick the one checkpoint whose path contains a keyword (case-insensitive)."""
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
    tokenizer_folders = sorted({str(PurePosixPath(f).parent) for f in files if PurePosixPath(f).name in _TOKENIZER_FILES})
    # Prefer the checkpoint's own folder, then the closest one up the tree.
    tokenizer = next((d for d in tokenizer_folders if d == base), None)
    if tokenizer is None:
        ancestors = [d for d in tokenizer_folders if base == d or base.startswith(d + "/") or d == "."]
        tokenizer = max(ancestors, key=len) if ancestors else (tokenizer_folders[0] if len(tokenizer_folders) == 1 else None)
    return HubCheckpoint(path=path, is_file=is_file, tokenizer_folder=tokenizer)


def load_model(
    name_or_path: str,
    *,
    device: torch.device | str = "cpu",
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    list_files: Callable[[str, str | None], list[str]] | None = None,
) -> Pretrained:
    """A registry name (``ref-youtube-vos``, ``mevis``, ``tiny``) or a local checkpoint path."""
    if Path(name_or_path).expanduser().exists():
        return load_pretrained(name_or_path, device=device)
    entry = REGISTRY.get(name_or_path)
    if entry is None:
        raise ValueError(
            f"{name_or_path!r} is neither a local checkpoint nor a known model; known: {sorted(REGISTRY)}"
        )
    revision = revision or entry.revision
    files = (list_files or (lambda repo, rev: list_repo_files(repo, rev, cache_dir)))(entry.repo_id, revision)
    found = find_checkpoint(files, entry.keywords)
    if found.is_file:
        import huggingface_hub

        local = huggingface_hub.hf_hub_download(
            entry.repo_id, found.path, revision=revision, cache_dir=cache_dir, local_files_only=hub_offline()
        )
        pretrained = load_pretrained(local, preset=entry.preset, device=device)
    else:
        subfolder = None if found.path in ("", ".") else found.path
        pretrained = load_pretrained(
            entry.repo_id, revision=revision, subfolder=subfolder, preset=None, device=device, cache_dir=cache_dir
        )
    if pretrained.tokenizer is None:
        if found.tokenizer_folder is None:
            raise RuntimeError(f"{entry.repo_id} holds no tokenizer files (sentencepiece.bpe.model / tokenizer.json)")
        from mpg_sam2.checkpoint_io import resolve_checkpoint

        folder = None if found.tokenizer_folder in ("", ".") else found.tokenizer_folder
        tok_path = resolve_checkpoint(entry.repo_id, revision=revision, subfolder=folder, cache_dir=cache_dir)
        pretrained.tokenizer = load_tokenizer(tok_path, max_tokens=pretrained.model.config.beit3.max_text_tokens)
    return pretrained
