"""Shards of one evaluation run and their state files, for resuming and merging.

``<out>/evaluation_state/shard-<i>-of-<n>.json`` records the settings of the run (a resume with
another model, threshold, precision or frame limit is refused rather than mixed in) and whether
the shard finished; the shard that finishes last takes ``merge.lock`` and merges. Under
``torchrun`` the shard comes from ``RANK`` / ``WORLD_SIZE`` and the GPU from ``LOCAL_RANK``.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Iterator, Mapping

from mpg_sam2.atomic import atomic_file

__all__ = [
    "STATE_DIR",
    "check_fingerprint",
    "merge_lock",
    "resolve_shard",
    "shard_state_path",
    "unfinished_shards",
    "write_shard_state",
]

STATE_DIR = "evaluation_state"


def resolve_shard(
    index: int | None, count: int | None, env: Mapping[str, str] = os.environ
) -> tuple[int, int, int | None]:
    """(shard index, shard count, local rank): explicit values, else torchrun's RANK / WORLD_SIZE."""
    local_rank = int(env["LOCAL_RANK"]) if "LOCAL_RANK" in env else None
    if index is None and count is None and "WORLD_SIZE" in env:
        return int(env.get("RANK", "0")), int(env["WORLD_SIZE"]), local_rank
    if (index is None) != (count is None):
        raise ValueError("give both --shard-index and --shard-count, or neither")
    return (index or 0), (count or 1), local_rank


def shard_state_path(out: Path, index: int, count: int) -> Path:
    return out / STATE_DIR / f"shard-{index}-of-{count}.json"


def _read_states(out: Path) -> dict[Path, dict]:
    states = {}
    for path in sorted((out / STATE_DIR).glob("shard-*-of-*.json")):
        try:
            states[path] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise RuntimeError(f"state file {path} is unreadable ({e}); delete it to start that shard afresh") from None
    return states


def write_shard_state(path: Path, payload: dict) -> None:
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=1), encoding="utf-8")


def check_fingerprint(out: Path, wanted: Mapping[str, Any]) -> None:
    """Refuse to add to ``out`` predictions made with other settings than ``wanted``."""
    for path, state in _read_states(out).items():
        had = state.get("config", {})
        changed = {k: (had.get(k), v) for k, v in wanted.items() if had.get(k) != v}
        if changed:
            what = ", ".join(f"{k} {a!r} -> {b!r}" for k, (a, b) in changed.items())
            raise ValueError(
                f"{out} holds predictions of another run ({what}, see {path}); "
                "use a new --out folder, or delete the old one to start over"
            )


def unfinished_shards(out: Path, count: int) -> list[int]:
    """Indices of the ``count`` shards whose state file does not say finished."""
    states = _read_states(out)
    return [i for i in range(count) if not states.get(shard_state_path(out, i, count), {}).get("finished", False)]


@contextlib.contextmanager
def merge_lock(out: Path) -> Iterator[tuple[Path, bool]]:
    """``(lock path, acquired)``: shards finishing together, the one that creates the lock merges;
    the lock is removed when the block ends."""
    lock = out / STATE_DIR / "merge.lock"
    try:
        os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        yield lock, False
        return
    try:
        yield lock, True
    finally:
        lock.unlink()
