"""SAM 2 on a Hugging Face Space: installed when the app starts, not when the Space is built.

PyPI has ``sam2==1.1.0`` only as a source distribution. Its ``pyproject.toml`` names torch as
a build requirement and its ``setup.py`` compiles a CUDA extension unless
``SAM2_BUILD_CUDA=0``. A Gradio Space is built with one ``pip install -r requirements.txt``
with build isolation on (hub-docs ``spaces-dependencies.md``), and a requirements file can
neither switch isolation off nor set an environment variable (pip's requirements-file format
accepts ``--no-build-isolation`` nowhere). So a plain ``sam2==1.1.0`` line makes every build
download a second, newest torch with its CUDA libraries into a throw-away build environment
and try to compile against it; with no ``nvcc`` on the builder the compile fails and is
skipped (``SAM2_BUILD_ALLOW_ERRORS`` defaults to 1). Slow, and at the mercy of whatever torch
is newest that day.

Instead the Space's ``requirements.txt`` (written by ``python -m mpg_sam2.space build``) lists
sam2's run-time dependencies, and :func:`ensure_sam2`, called by ``app.py`` before anything
imports sam2, installs sam2 itself the way ``scripts/setup_env.sh`` does locally: without build
isolation (the torch already installed is used), without the CUDA extension, without
dependencies, into a folder put on ``sys.path``. That is one 180 kB download and about a
second. The CUDA extension is optional: sam2 uses it only to fill small holes in its own
predictors' masks, which MPG-SAM 2 does not call. The same pattern (``pip install
--no-build-isolation`` with a skip-CUDA variable, from ``app.py``) is how ZeroGPU Spaces
install flash-attn.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Sequence

from mpg_sam2.atomic import atomic_dir

SAM2_REQUIREMENT = "sam2==1.1.0"
# sam2 1.1.0's own run-time requirements (its setup.py), installed with the Space's other
# requirements; setuptools builds the sdist without isolation (>= 70.1 brings bdist_wheel).
SAM2_DEPENDENCIES = (
    "torchvision>=0.20.1",
    "tqdm>=4.66.1",
    "hydra-core>=1.3.2",
    "iopath>=0.1.10",
    "setuptools>=70.1",
)
# Where a Space keeps it: the container's disk, rebuilt on each restart.
DEFAULT_TARGET = Path(tempfile.gettempdir()) / "mpg_sam2_sam2-1.1.0"
INSTALL_TIMEOUT_S = 300

Runner = Callable[..., subprocess.CompletedProcess]


def on_space() -> bool:
    """True inside a Hugging Face Space (the Hub sets ``SPACE_ID`` there)."""
    return bool(os.environ.get("SPACE_ID"))


def pip_command(target: Path) -> list[str]:
    """The install: sam2's sdist, built without isolation, CUDA or dependencies."""
    return [sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-deps", "--no-cache-dir",
            "--disable-pip-version-check", "--quiet", "--target", str(target), SAM2_REQUIREMENT]


def ensure_sam2(target: Path = DEFAULT_TARGET, run: Runner = subprocess.run) -> Path | None:
    """Make ``import sam2`` work; returns the folder it was installed to, or None if it was there.

    Outside a Space a missing sam2 is an error that says how to install it; on a Space it is
    installed into ``target`` (kept across app reloads, written whole or not at all).
    """
    if importlib.util.find_spec("sam2") is not None:
        return None
    if not on_space():
        raise RuntimeError(
            "SAM 2 is not installed. Install it after torch with "
            f"`SAM2_BUILD_CUDA=0 pip install --no-build-isolation {SAM2_REQUIREMENT}`, "
            "or run `bash scripts/run_app.sh`, which sets up everything."
        )
    target = Path(target)
    if not (target / "sam2" / "__init__.py").is_file():
        env = {**os.environ, "SAM2_BUILD_CUDA": "0"}
        with atomic_dir(target) as partial:  # a failed or killed install leaves no half package
            try:
                done = run(pip_command(partial), env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"installing {SAM2_REQUIREMENT} took over {INSTALL_TIMEOUT_S} s; is PyPI reachable?") from None
            if done.returncode != 0 or not (partial / "sam2" / "__init__.py").is_file():
                raise RuntimeError(f"installing {SAM2_REQUIREMENT} failed (pip exit {done.returncode}): "
                                   f"{_tail(done.stderr or done.stdout)}")
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    return target


def _tail(text: str | None, lines: int = 12) -> str:
    return "\n".join((text or "").strip().splitlines()[-lines:])


def space_requirements(repository_requirements: Sequence[str]) -> list[str]:
    """The Space's requirements.txt lines: the repository's, with sam2 replaced by its
    dependencies (sam2 itself comes from :func:`ensure_sam2`)."""
    lines = list(repository_requirements)
    at = [i for i, line in enumerate(lines) if line.strip().replace(" ", "") == SAM2_REQUIREMENT]
    if len(at) != 1:
        raise ValueError(f"requirements.txt must have exactly one '{SAM2_REQUIREMENT}' line, found {len(at)}")
    start = at[0]
    while start > 0 and lines[start - 1].lstrip().startswith("#"):
        start -= 1  # the comment above the line is about installing sam2 here
    block = ["# SAM 2: the app installs sam2 1.1.0 at start-up (mpg_sam2/app/sam2_install.py says why);",
             "# its run-time dependencies:", *SAM2_DEPENDENCIES]
    return lines[:start] + block + lines[at[0] + 1:]
