"""The folder pushed to a Hugging Face Space, built from this repository.

    python -m mpg_sam2.space build OUT      # then push OUT (see README.md, "Share it as a Space")

A Space gets what the app needs to run and nothing else: ``app.py``, the ``mpg_sam2``
package, the example clips with their index, the bundled offline model, the Space's
``requirements.txt``, ``.gitattributes`` (the repository's own: every binary file through
LFS/Xet, which the Hub requires) and a README whose front matter is the Space's configuration.
Tests, benchmarks, CI, scripts, the examples' generator and the training module stay behind.

The front matter is the repository README's (one home); the Space README's body is that
README's introduction and its section on the app, so the Space page says what the app does.
:func:`check_front_matter` applies the Hub's rules that a push is refused for; the tests run
it on the built folder with huggingface_hub's own card classes.
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from mpg_sam2.app.sam2_install import space_requirements
from mpg_sam2.atomic import atomic_dir

ROOT = Path(__file__).resolve().parents[1]

# What a Space needs, relative to the repository root (folders are copied whole, less the
# names in _LEFT_OUT).
SPACE_FILES = (
    "app.py",
    "mpg_sam2",
    "examples",
    "checkpoints/offline",
    ".gitattributes",
)
# The Space's requirements: the repository's run-time requirements, except that sam2 is
# installed by the app at start-up (mpg_sam2.app.sam2_install explains why).
REQUIREMENTS = "requirements.txt"
_LEFT_OUT = {"__pycache__", ".pytest_cache", "make_examples.py"}
# The training module: the app never imports it (a test checks), and it is most of the package.
_LEFT_OUT_PATHS = {"mpg_sam2/training"}
_LEFT_OUT_SUFFIXES = (".pyc", ".pyo")

# The Hub's rules for a Space's front matter that refuse a push or a build
# (hub-docs spaces-config-reference.md; the 60-character cap is enforced on push).
SHORT_DESCRIPTION_MAX = 60
THUMBNAIL_COLORS = ("red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray")
# Python versions ZeroGPU runs (hub-docs spaces-zerogpu.md); 3.11 is not one of them.
ZEROGPU_PYTHON = ("3.10", "3.12")

_FRONT_MATTER = re.compile(r"\A---\n(.*?\n)---\n", re.DOTALL)


class SpaceConfigError(ValueError):
    """The Space's front matter breaks a rule of the Hub; the message names the field."""


@dataclass(frozen=True)
class BuiltSpace:
    folder: Path
    files: tuple[str, ...]  # relative paths, sorted
    total_bytes: int


def split_readme(text: str) -> tuple[str, str]:
    """``(front matter block including its --- lines, body)`` of a README."""
    match = _FRONT_MATTER.match(text)
    if match is None:
        raise SpaceConfigError("README.md does not start with a front matter block between two '---' lines")
    return match.group(0), text[match.end():]


def _section(body: str, heading: str) -> str:
    """The markdown section under ``## heading`` up to the next ``## `` heading."""
    match = re.search(rf"^## {re.escape(heading)}\n.*?(?=^## |\Z)", body, re.DOTALL | re.MULTILINE)
    if match is None:
        raise SpaceConfigError(f"README.md has no '## {heading}' section to put on the Space page")
    return match.group(0)


def space_readme(repository_readme: str) -> str:
    """The Space's README.md: the repository's front matter, introduction and app section."""
    front_matter, body = split_readme(repository_readme)
    introduction = body.split("\n## ", 1)[0]
    return (
        front_matter + introduction.rstrip() + "\n\n" + _section(body, "The app").rstrip() + "\n\n"
        "This Space was built from the `mpg_sam2` repository with `python -m mpg_sam2.space build`; "
        "the repository has the command line, the evaluation, the training module and the tests.\n"
    )


def check_front_matter(metadata: dict, folder: Path | None = None) -> None:
    """Raise :class:`SpaceConfigError` for what the Hub refuses or cannot build.

    ``folder``: the Space folder, to check that ``app_file`` is in it.
    """
    def need(condition: bool, message: str) -> None:
        if not condition:
            raise SpaceConfigError(message)

    need(metadata.get("sdk") == "gradio", f"sdk must be 'gradio' (ZeroGPU runs Gradio Spaces only), got {metadata.get('sdk')!r}")
    description = metadata.get("short_description", "")
    need(isinstance(description, str) and 0 < len(description) <= SHORT_DESCRIPTION_MAX,
         f"short_description must have 1 to {SHORT_DESCRIPTION_MAX} characters, has {len(str(description))}: {description!r}")
    for key in ("colorFrom", "colorTo"):
        need(metadata.get(key) in THUMBNAIL_COLORS, f"{key} must be one of {', '.join(THUMBNAIL_COLORS)}, got {metadata.get(key)!r}")
    need(str(metadata.get("python_version")) in ZEROGPU_PYTHON,
         f"python_version must be one ZeroGPU runs ({', '.join(ZEROGPU_PYTHON)}), got {metadata.get('python_version')!r}")
    need(re.fullmatch(r"\d+\.\d+\.\d+", str(metadata.get("sdk_version", ""))) is not None,
         f"sdk_version must be a Gradio release like 6.31.0, got {metadata.get('sdk_version')!r}")
    emoji = str(metadata.get("emoji", ""))
    need(bool(emoji) and not any(ch.isascii() for ch in emoji), f"emoji must be emoji characters only, got {emoji!r}")
    hardware = metadata.get("suggested_hardware")
    if hardware is not None:
        from huggingface_hub import SpaceHardware

        need(hardware in {h.value for h in SpaceHardware}, f"suggested_hardware {hardware!r} is not a Hub hardware flavour")
    for entry in metadata.get("preload_from_hub", []) or []:
        need(isinstance(entry, str) and re.fullmatch(r"[\w.-]+/[\w.-]+( \S+( \S+)?)?", entry) is not None,
             f"preload_from_hub entries are 'owner/repo [file1,file2 [revision]]', got {entry!r}")
    if folder is not None:
        need((folder / str(metadata.get("app_file", ""))).is_file(), f"app_file {metadata.get('app_file')!r} is not in {folder}")


def _copy(source: Path, target: Path, root: Path) -> None:
    def left_out(folder: str, names: list[str]) -> list[str]:
        where = Path(folder).relative_to(root)
        return [n for n in names if n in _LEFT_OUT or n.endswith(_LEFT_OUT_SUFFIXES)
                or (where / n).as_posix() in _LEFT_OUT_PATHS]

    if source.is_dir():
        shutil.copytree(source, target, ignore=left_out)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def build_space(out: str | Path, root: Path = ROOT) -> BuiltSpace:
    """Write the Space folder to ``out`` (replaced whole, atomically); returns what it holds."""
    out = Path(out)
    readme = space_readme((root / "README.md").read_text(encoding="utf-8"))
    from huggingface_hub import SpaceCard

    with atomic_dir(out) as partial:
        for name in SPACE_FILES:
            if not (root / name).exists():
                raise FileNotFoundError(f"{root / name} is missing; the Space needs it (is this a full checkout?)")
            _copy(root / name, partial / name, root)
        requirements = space_requirements((root / REQUIREMENTS).read_text(encoding="utf-8").splitlines())
        (partial / "requirements.txt").write_text("\n".join(requirements) + "\n", encoding="utf-8")
        (partial / "README.md").write_text(readme, encoding="utf-8")
        check_front_matter(SpaceCard.load(partial / "README.md").data.to_dict(), partial)
    files = tuple(sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()))
    return BuiltSpace(out, files, sum((out / f).stat().st_size for f in files))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mpg_sam2.space", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="write the Space folder (replaces it if it exists)")
    build.add_argument("out", type=Path, help="the folder to write, e.g. ../mpg-sam2-space")
    args = parser.parse_args(argv)
    try:
        built = build_space(args.out)
    except (SpaceConfigError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for name in built.files:
        print(f"{(built.folder / name).stat().st_size:>12,}  {name}")
    print(f"{len(built.files)} files, {built.total_bytes / 1e6:.1f} MB in {built.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
