"""The Space folder (``python -m mpg_sam2.space build``): what it holds, front matter the Hub
accepts (read with huggingface_hub's own card classes), every binary file through LFS/Xet
(``git check-attr``), and an app that runs from the folder alone."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import SpaceCard
from packaging.requirements import Requirement

from mpg_sam2.checkpoint.registry import HUB_REPO
from mpg_sam2.space import SHORT_DESCRIPTION_MAX, SpaceConfigError, build_space, check_front_matter, space_readme

ROOT = Path(__file__).resolve().parents[1]
HUB_PLAIN_FILE_LIMIT = 10 * 1024 * 1024  # the Hub refuses larger files outside LFS/Xet

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    return build_space(tmp_path_factory.mktemp("space") / "mpg-sam2")


def _is_binary(path: Path) -> bool:
    """Git's own test (a NUL byte in the first 8,000 bytes), or too big for a plain Hub file."""
    with path.open("rb") as f:
        return b"\0" in f.read(8000) or path.stat().st_size > HUB_PLAIN_FILE_LIMIT


def _lfs_files(repo: Path, files: list[str]) -> set[str]:
    out = subprocess.run(["git", "check-attr", "filter", "--", *files], cwd=repo, check=True,
                         capture_output=True, text=True).stdout
    return {line.split(": filter: ")[0] for line in out.splitlines() if line.endswith(": filter: lfs")}


def test_space_holds_what_the_app_needs_and_nothing_else(space):
    files = set(space.files)
    for needed in ("app.py", "requirements.txt", "README.md", ".gitattributes", "mpg_sam2/__init__.py",
                   "mpg_sam2/app/zerogpu.py", "checkpoints/offline/model.safetensors",
                   "checkpoints/offline/config.json", "checkpoints/offline/sentencepiece.bpe.model",
                   "examples/examples.json"):
        assert needed in files, needed
    index = json.loads((space.folder / "examples/examples.json").read_text())
    assert {f"examples/{item['video']}" for item in index["examples"]} <= files
    top = {f.split("/")[0] for f in files}
    assert top == {"app.py", "requirements.txt", "README.md", ".gitattributes", "mpg_sam2", "examples", "checkpoints"}
    assert not [f for f in files if "__pycache__" in f or f.endswith(".pyc") or f.endswith("make_examples.py")]
    assert not [f for f in files if f.startswith("mpg_sam2/training/")]
    assert (space.folder / ".gitattributes").read_bytes() == (ROOT / ".gitattributes").read_bytes()
    assert space.total_bytes < 40e6


def test_front_matter_is_accepted_by_the_hub_rules(space):
    card = SpaceCard.load(space.folder / "README.md")
    metadata = card.data.to_dict()
    check_front_matter(metadata, space.folder)
    assert len(metadata["short_description"]) <= SHORT_DESCRIPTION_MAX
    assert metadata["sdk"] == "gradio" and metadata["app_file"] == "app.py"
    # The Space installs Gradio at sdk_version: it must satisfy the requirement the app is tested with.
    gradio = next(Requirement(line) for line in (space.folder / "requirements.txt").read_text().splitlines()
                  if line.startswith("gradio"))
    assert gradio.specifier.contains(metadata["sdk_version"])
    # The released checkpoints come at build time, so the GPU never waits for a download.
    assert HUB_REPO in metadata["models"] and HUB_REPO in metadata["preload_from_hub"]
    # The repository's README carries the same front matter.
    assert SpaceCard.load(ROOT / "README.md").data.to_dict() == metadata
    assert "## The app" in card.text and "bash tests/run.sh" not in card.text


@pytest.mark.parametrize(("field", "value", "message"), [
    ("short_description", "Referring video object segmentation with mask priors (ICCV 25)", "1 to 60 characters"),
    ("colorFrom", "orange", "colorFrom must be one of"),
    ("python_version", "3.11", "python_version must be one ZeroGPU runs"),
    ("suggested_hardware", "h200-zero", "not a Hub hardware flavour"),
    ("emoji", "MPG", "emoji"),
    ("sdk", "docker", "sdk must be 'gradio'"),
    ("preload_from_hub", ["not a repo id"], "preload_from_hub entries"),
])
def test_front_matter_rules_refuse_what_the_hub_refuses(space, field, value, message):
    metadata = SpaceCard.load(space.folder / "README.md").data.to_dict()
    metadata[field] = value
    with pytest.raises(SpaceConfigError, match=message):
        check_front_matter(metadata, space.folder)


def test_readme_without_front_matter_or_app_section_is_refused():
    with pytest.raises(SpaceConfigError, match="front matter"):
        space_readme("# no front matter\n")
    with pytest.raises(SpaceConfigError, match="The app"):
        space_readme("---\nsdk: gradio\n---\n# Title\n\n## Other\n")


@needs_git
def test_every_binary_file_of_the_space_goes_through_lfs(space, tmp_path):
    repo = tmp_path / "space-repo"
    shutil.copytree(space.folder, repo)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    binaries = sorted(f for f in space.files if _is_binary(repo / f))
    assert {"checkpoints/offline/model.safetensors", "checkpoints/offline/sentencepiece.bpe.model",
            "examples/synthetic_plain.mp4"} <= set(binaries)
    lfs = _lfs_files(repo, list(space.files))
    assert set(binaries) <= lfs, sorted(set(binaries) - lfs)
    assert not {"README.md", "app.py", "requirements.txt"} & lfs  # text stays plain, readable on the Hub


@needs_git
def test_every_binary_file_of_the_repository_goes_through_lfs():
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    tracked = [f for f in files.decode().split("\0") if f and (ROOT / f).is_file()]
    binaries = [f for f in tracked if _is_binary(ROOT / f)]
    assert len(binaries) >= 10  # fixtures, examples, the bundled model
    missing = set(binaries) - _lfs_files(ROOT, tracked)
    assert not missing, sorted(missing)


def test_the_app_runs_from_the_space_folder_alone(space, tmp_path):
    """Imported from the built folder (not this checkout), offline: the bundled model and its
    examples are offered and a request runs end to end."""
    script = """
import json, sys
import app, mpg_sam2
video = app.EXAMPLES[0].video
out = app.segment(str(video), "the dotted shape", app.MODELS[0].source, 3, 0, 0.5, [], progress=None)
print(json.dumps({"package": mpg_sam2.__file__, "models": [m.source for m in app.MODELS],
                  "examples": [e.title for e in app.EXAMPLES], "side_by_side": out[0]}))
"""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MPG_SAM2_MODEL")}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), TMPDIR=str(tmp_path), GRADIO_ANALYTICS_ENABLED="False")
    run = subprocess.run([sys.executable, "-c", script], cwd=space.folder, env=env, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert Path(result["package"]).resolve().is_relative_to(space.folder.resolve())
    assert result["models"] == [str(space.folder.resolve() / "checkpoints" / "offline")]
    assert len(result["examples"]) == 3 and all("Synthetic" in t for t in result["examples"])
    assert Path(result["side_by_side"]).is_file()


def test_the_command_line_works_from_the_space_folder(space):
    """The Space has no training module: ``python -m mpg_sam2`` still segments, without ``train``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([sys.executable, "-m", "mpg_sam2", "--help"], cwd=space.folder, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "segment" in run.stdout and "evaluate" in run.stdout and "train" not in run.stdout
