"""The Hugging Face Hub: whether it may be used, and getting a checkpoint's files from it.

Every Hub call of the package is here, and each is made when a function below is called, never
at import. Offline (``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE``, see :func:`hub_offline`) or with
``local_files_only=True``, only the local Hub cache is read, with huggingface_hub's local-only
calls (``snapshot_download``/``hf_hub_download`` with ``local_files_only=True``,
``scan_cache_dir``).
"""
from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = [
    "cached_repo_files",
    "download_file",
    "hub_offline",
    "is_repo_id",
    "list_repo_files",
    "resolve_checkpoint",
]

# Hub repo ids: "owner/name", letters, digits, "-", "_", "." (no "--" or "..", at most 96 chars).
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
# huggingface_hub's truthy values (constants.ENV_VARS_TRUE_VALUES), compared upper-cased.
_TRUE_VALUES = {"1", "ON", "YES", "TRUE"}


def hub_offline() -> bool:
    """True when the Hub is switched off: only the local Hub cache may be read.

    The same rule as huggingface_hub (2.x, ``constants.HF_HUB_OFFLINE``): ``HF_HUB_OFFLINE``, or
    ``TRANSFORMERS_OFFLINE`` when ``HF_HUB_OFFLINE`` is unset or empty, is one of 1/ON/YES/TRUE
    (any case); transformers 5 asks huggingface_hub. It is read at each call because
    huggingface_hub reads it once, at import, so a value set later (by the CLI, the app or a
    test) would otherwise be ignored.
    """
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
    return value is not None and value.upper() in _TRUE_VALUES


def is_repo_id(name: str) -> bool:
    """True when ``name`` has the form of a Hub repo id ``owner/name``."""
    return bool(_REPO_ID.match(name)) and len(name) <= 96 and "--" not in name and ".." not in name


def _huggingface_hub() -> Any:
    try:
        import huggingface_hub  # lazily: no Hub machinery at import
    except ImportError as error:
        raise RuntimeError("fetching a checkpoint from the Hub needs huggingface_hub: pip install huggingface_hub") from error
    return huggingface_hub


def resolve_checkpoint(
    name_or_path: str | Path,
    revision: str | None = None,
    subfolder: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
) -> Path:
    """Turn a local path or a Hugging Face Hub repo id into a local path.

    A path that exists is returned as is (joined with ``subfolder`` when one is given). Anything
    else must be a repo id ``owner/name``; its files (only ``subfolder/*`` when a subfolder is
    given) are fetched with ``huggingface_hub.snapshot_download`` into the Hub cache, or taken from
    the cache alone when the Hub is offline (:func:`hub_offline`) or ``local_files_only``.

    Args:
        name_or_path: local file/directory, or a repo id such as ``"owner/mpg-sam2"``.
        revision: branch, tag or commit of the repo (default branch if None).
        subfolder: folder inside the repo (or local directory) that holds the checkpoint.
        cache_dir: Hub cache folder (default: huggingface_hub's).
        local_files_only: never use the network, even when the Hub is online.

    Returns:
        path to the local checkpoint directory (or file).

    Raises:
        ValueError: ``name_or_path`` is neither an existing path nor a valid repo id, or a bad
            ``subfolder``.
        FileNotFoundError: ``subfolder`` does not exist under a local path.
        RuntimeError: the download (or the offline cache lookup) failed, or the repo lacks
            ``subfolder``.
    """
    if isinstance(name_or_path, str) and not name_or_path.strip():
        # Path("") is the working directory, which exists: never resolve an empty name to it.
        raise ValueError(
            "an empty name is neither an existing file or directory nor a Hugging Face Hub repo id; "
            "pass a checkpoint path or 'owner/name'"
        )
    if subfolder is not None:
        subfolder = str(subfolder).strip("/")
        if not subfolder or Path(subfolder).is_absolute() or ".." in Path(subfolder).parts:
            raise ValueError(f"subfolder must be a relative folder inside the checkpoint, got {subfolder!r}")
    local = Path(name_or_path).expanduser()
    if local.exists():
        if subfolder is None:
            return local
        if not (local / subfolder).exists():
            raise FileNotFoundError(f"{local} has no subfolder {subfolder!r}")
        return local / subfolder

    repo_id = str(name_or_path)
    if not is_repo_id(repo_id):
        raise ValueError(
            f"{repo_id!r} is neither an existing file or directory nor a Hugging Face Hub repo id of the "
            "form 'owner/name'; check the path"
        )
    offline = hub_offline()
    huggingface_hub = _huggingface_hub()
    kwargs: dict[str, Any] = {
        "revision": revision,
        "allow_patterns": [f"{subfolder}/*"] if subfolder else None,
        "cache_dir": str(cache_dir) if cache_dir is not None else None,
    }
    if offline or local_files_only:
        kwargs["local_files_only"] = True
    where = (
        f"repo {repo_id!r} (revision {revision or 'default branch'}, subfolder {subfolder or '<root>'}, "
        f"cache {cache_dir or 'default'})"
    )
    try:
        snapshot = Path(huggingface_hub.snapshot_download(repo_id, **kwargs))
    except Exception as error:  # HTTP, offline-mode, auth and cache errors all land here
        mode = "HF_HUB_OFFLINE is set, so only the local cache was searched. " if offline else ""
        raise RuntimeError(
            f"could not get {where}: {type(error).__name__}: {str(error).rstrip('. ')}. {mode}"
            "Check the network connection, "
            "HF_HUB_OFFLINE (unset it to download, or download once while online), and that the repo id, "
            f"revision and subfolder are right. A local checkpoint named {repo_id!r} does not exist either."
        ) from error
    result = snapshot / subfolder if subfolder else snapshot
    if not result.exists():
        raise RuntimeError(f"{where} was fetched to {snapshot} but holds no folder {subfolder!r}")
    return result


def cached_repo_files(repo_id: str, revision: str | None = None, cache_dir: str | Path | None = None) -> list[str]:
    """The repo's files that are in the local Hub cache, as repo paths; no network call.

    Reads the cache with ``huggingface_hub.scan_cache_dir``, so a partly downloaded snapshot
    (one checkpoint folder of several) lists what is there.

    Args:
        repo_id: ``owner/name``.
        revision: a branch or tag (looked up in the cache's refs) or a commit hash; default ``main``.
        cache_dir: Hub cache folder (default: huggingface_hub's).

    Returns:
        sorted paths such as ``"mevis/config.json"``; empty when that revision is not cached.
    """
    huggingface_hub = _huggingface_hub()
    wanted = revision or "main"
    try:
        cache = huggingface_hub.scan_cache_dir(cache_dir)
    except huggingface_hub.CacheNotFound:  # no cache folder yet: nothing downloaded
        return []
    for repo in cache.repos:
        if repo.repo_id != repo_id or repo.repo_type != "model":
            continue
        for cached in repo.revisions:
            if cached.commit_hash == wanted or wanted in cached.refs:
                return sorted(PurePosixPath(f.file_path.relative_to(cached.snapshot_path)).as_posix() for f in cached.files)
    return []


def list_repo_files(
    repo_id: str,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
) -> list[str]:
    """The repo's file paths: from the Hub, or from the local cache when offline or ``local_files_only``.

    Raises:
        RuntimeError: the Hub cannot be listed (network, auth, missing repo or revision), or,
            from the cache, nothing of that revision is cached.
    """
    huggingface_hub = _huggingface_hub()
    local = local_files_only or hub_offline()
    where = "the local Hub cache" + (" (HF_HUB_OFFLINE is set)" if hub_offline() else "") if local else "the Hugging Face Hub"
    try:
        if not local:
            return sorted(huggingface_hub.list_repo_files(repo_id, revision=revision))
        files = cached_repo_files(repo_id, revision, cache_dir)
        if not files:
            raise FileNotFoundError(f"no cached snapshot of this revision in {cache_dir or 'the default cache'}")
        return files
    except Exception as error:  # network, auth, missing repo/revision, empty cache
        raise RuntimeError(
            f"could not list {repo_id}@{revision or 'main'} on {where}: {type(error).__name__}: {error}. "
            "Check the network, the repo id and revision, or download the checkpoint and pass its folder."
        ) from error


def download_file(
    repo_id: str,
    path: str,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
) -> Path:
    """One file of a repo in the local Hub cache (downloaded first unless offline or ``local_files_only``)."""
    huggingface_hub = _huggingface_hub()
    return Path(huggingface_hub.hf_hub_download(
        repo_id, path, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only or hub_offline()
    ))
