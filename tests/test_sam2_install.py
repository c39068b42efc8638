"""SAM 2 on a Space: installed by the app at start-up without build isolation or CUDA (the
pip call itself is replaced here; its real run on a Space-like fresh venv is measured in the
closing note of the Spaces issue)."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from mpg_sam2.app.sam2_install import SAM2_DEPENDENCIES, SAM2_REQUIREMENT, ensure_sam2, space_requirements

ROOT = Path(__file__).resolve().parents[1]


class FakePip:
    """Records the call; writes a sam2 package into --target (or fails, like pip)."""

    def __init__(self, returncode: int = 0) -> None:
        self.returncode = returncode
        self.calls: list[tuple[list[str], dict]] = []

    def __call__(self, command, env, **kwargs):
        self.calls.append((command, env))
        target = Path(command[command.index("--target") + 1])
        target.mkdir(parents=True, exist_ok=True)
        if self.returncode == 0:
            (target / "sam2").mkdir()
            (target / "sam2" / "__init__.py").write_text("")
        return subprocess.CompletedProcess(command, self.returncode, "", "ERROR: No matching distribution found for sam2")


@pytest.fixture
def sam2_missing(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sam2" else real(name, *a))
    monkeypatch.setattr(sys, "path", list(sys.path))


def test_installed_sam2_is_left_alone(monkeypatch):
    monkeypatch.setenv("SPACE_ID", "someone/mpg-sam2")
    pip = FakePip()
    assert ensure_sam2(run=pip) is None and pip.calls == []


def test_missing_sam2_outside_a_space_says_how_to_install_it(sam2_missing, monkeypatch):
    monkeypatch.delenv("SPACE_ID", raising=False)
    pip = FakePip()
    with pytest.raises(RuntimeError, match=r"SAM2_BUILD_CUDA=0 pip install --no-build-isolation sam2==1\.1\.0"):
        ensure_sam2(run=pip)
    assert pip.calls == []


def test_on_a_space_sam2_is_installed_without_isolation_cuda_or_dependencies(sam2_missing, monkeypatch, tmp_path):
    monkeypatch.setenv("SPACE_ID", "someone/mpg-sam2")
    pip = FakePip()
    target = tmp_path / "sam2-site"
    assert ensure_sam2(target, run=pip) == target
    (command, env), = pip.calls
    assert command[:4] == [sys.executable, "-m", "pip", "install"] and command[-1] == SAM2_REQUIREMENT
    assert {"--no-build-isolation", "--no-deps", "--target"} <= set(command)
    assert env["SAM2_BUILD_CUDA"] == "0"
    assert (target / "sam2" / "__init__.py").is_file() and sys.path[0] == str(target)
    assert not target.with_name(target.name + ".partial").exists()
    assert ensure_sam2(target, run=pip) == target and len(pip.calls) == 1  # an app reload reuses it


def test_a_failed_install_leaves_nothing_and_says_why(sam2_missing, monkeypatch, tmp_path):
    monkeypatch.setenv("SPACE_ID", "someone/mpg-sam2")
    target = tmp_path / "sam2-site"
    with pytest.raises(RuntimeError, match=r"pip exit 1.*No matching distribution"):
        ensure_sam2(target, run=FakePip(returncode=1))
    assert list(tmp_path.iterdir()) == []


def test_space_requirements_replace_sam2_by_its_dependencies():
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    space = space_requirements(lines)
    assert SAM2_REQUIREMENT not in space and set(SAM2_DEPENDENCIES) <= set(space)
    assert not [line for line in space if "no-build-isolation" in line]  # the old install comment is gone
    assert [line for line in lines if line and not line.startswith("#") and line != SAM2_REQUIREMENT] == [
        line for line in space if line and not line.startswith("#") and line not in SAM2_DEPENDENCIES]
    with pytest.raises(ValueError, match="exactly one 'sam2==1.1.0' line"):
        space_requirements(["torch>=2.8"])


def test_the_dependencies_are_sam2s_own():
    """SAM2_DEPENDENCIES cover what the installed sam2 1.1.0 declares (besides torch, numpy,
    pillow, which the repository's requirements pin)."""
    from importlib.metadata import requires, version

    from packaging.requirements import Requirement

    assert version("sam2") == SAM2_REQUIREMENT.split("==")[1]
    declared = {Requirement(r).name.lower() for r in requires("sam2") or [] if "extra ==" not in r}
    ours = {Requirement(r).name.lower() for r in SAM2_DEPENDENCIES}
    assert declared - ours <= {"torch", "numpy", "pillow"}, declared - ours


def test_app_calls_it_before_anything_imports_sam2():
    source = (ROOT / "app.py").read_text()
    assert source.index("ensure_sam2()") < source.index("import torch")
    assert source.index("ensure_sam2()") < source.index("from mpg_sam2.app.examples")
