"""A video file end to end (decode -> segment -> exports), the CLI, and the model registry."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from mpg_sam2.checkpoint import registry
from mpg_sam2.checkpoint.hub import list_repo_files
from mpg_sam2.checkpoint.pretrained import load_pretrained
from mpg_sam2.checkpoint.registry import ModelEntry, find_checkpoint
from mpg_sam2.cli import main
from mpg_sam2.pipeline.segmentation import SegmentationOptions, segment_video
from mpg_sam2.pipeline.video_file import segment_video_file
from tiny_model import save_tiny_checkpoint
from video_factory import pattern_frames, write_video


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny"), seed=7)


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4", pattern_frames(6, 98, 62), fps=10, audio_hz=440)


def test_video_file_end_to_end(checkpoint, video, tmp_path):
    pretrained = load_pretrained(str(checkpoint))
    result = segment_video_file(
        video, ["the man in the red shirt", "the black dog"], pretrained.model, pretrained.tokenizer,
        out_dir=tmp_path / "out", options=SegmentationOptions(record_attention=True),
    )
    seg = result.segmentation
    assert seg.num_frames == 6 and seg.frame_size == (62, 98) and seg.fps == pytest.approx(10, rel=1e-3)
    # Equal to segmenting the decoded frames directly.
    direct = segment_video(result.video.frames, ["the man in the red shirt", "the black dog"], pretrained.model, pretrained.tokenizer)
    for a, b in zip(seg.expressions, direct.expressions):
        np.testing.assert_array_equal(a.masks, b.masks)
    exports = result.exports
    for path in exports.paths():
        assert path.exists(), path
    with zipfile.ZipFile(exports.archive) as archive:
        names = archive.namelist()
        manifest = json.loads(archive.read("manifest.json"))
    assert any(n.endswith(".mp4") for n in names) and manifest
    assert {"decode", "export", "sam2_image_encoder"} <= set(seg.stage_seconds)
    assert not list((tmp_path / "out").rglob("*.tmp*")), "temporary files left behind"


def test_cli_segment(checkpoint, video, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["segment", str(video), "-e", "the man in the red shirt", "-e", "the black dog",
                 "--out", str(out), "--model", str(checkpoint), "--max-frames", "4", "--exports", "png,coco,zip"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "4 frames" in captured.out and "'the black dog': object in" in captured.out
    assert "time:" in captured.out and "written:" in captured.out
    assert "video has" in captured.err or "cut" in captured.err or "note:" in captured.out  # trimmed to 4 frames
    pngs = sorted((out / "Annotations").rglob("*.png"))
    assert len(pngs) == 8  # 2 expressions x 4 frames
    assert not list(out.glob("*.mp4"))  # only the asked-for exports


@pytest.mark.parametrize(("make_input", "expressions", "message"), [
    (lambda d: d / "missing.mp4", ["the dog"], "does not exist"),
    (lambda d: (d / "notes.mp4").write_text("hello") and d / "notes.mp4", ["the dog"], "could not open"),
    (None, ["   "], "expression 1 is empty"),
    (None, ["the dog", "the  dog"], "repeats expression 1"),
])
def test_cli_bad_input(checkpoint, video, tmp_path, capsys, make_input, expressions, message):
    path = make_input(tmp_path) if make_input else video
    args = ["segment", str(path), "--out", str(tmp_path / "out"), "--model", str(checkpoint)]
    for e in expressions:
        args += ["-e", e]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "error:" in err and message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_cli_unknown_model(video, tmp_path, capsys):
    assert main(["segment", str(video), "-e", "the dog", "--out", str(tmp_path), "--model", "no-such-model"]) == 2
    assert "known: ['mevis', 'ref-youtube-vos', 'tiny']" in capsys.readouterr().err


def test_find_checkpoint_by_listing():
    files = ["README.md", "ytvos/config.json", "ytvos/model.safetensors", "mevis/config.json",
             "mevis/pytorch_model.bin", "ytvos/sentencepiece.bpe.model", "mevis/sentencepiece.bpe.model"]
    found = find_checkpoint(files, ["ytvos", "youtube"])
    assert found.path == "ytvos" and not found.is_file and found.tokenizer_folder == "ytvos"
    flat = ["MPG-SAM2_ytvos.pth", "MPG-SAM2_mevis.pth", "tokenizer/sentencepiece.bpe.model"]
    found = find_checkpoint(flat, ["mevis"])
    assert found.path == "MPG-SAM2_mevis.pth" and found.is_file and found.tokenizer_folder == "tokenizer"
    with pytest.raises(RuntimeError, match="no checkpoint match.*it holds: MPG-SAM2_ytvos.pth, MPG-SAM2_mevis.pth"):
        find_checkpoint(flat, ["tiny"])
    with pytest.raises(RuntimeError, match="2 checkpoints"):
        find_checkpoint(["a_mevis/config.json", "b_mevis/config.json"], ["mevis"])


def test_registry_loads_a_discovered_folder(checkpoint, tmp_path, monkeypatch):
    import huggingface_hub

    snapshot = tmp_path / "snapshot"
    (snapshot / "models").mkdir(parents=True)
    (snapshot / "models" / "mpg_sam2_tiny").symlink_to(checkpoint, target_is_directory=True)
    monkeypatch.setitem(registry.REGISTRY, "tiny", ModelEntry("tiny", "someone/mpg", ("tiny",), "release-tiny"))
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, **kw: str(snapshot))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    listing = ["models/mpg_sam2_tiny/config.json", "models/mpg_sam2_tiny/model.safetensors",
               "models/mpg_sam2_tiny/sentencepiece.bpe.model"]
    monkeypatch.setattr(registry, "list_repo_files", lambda repo, rev, cache_dir, local_files_only=False: listing)
    pretrained = load_pretrained("tiny")
    assert pretrained.tokenizer is not None
    assert pretrained.path == snapshot / "models" / "mpg_sam2_tiny"


def test_offline_listing_without_cache_is_explained(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="could not list ReeF2025/MPG-SAM2@main on the local Hub cache"):
        list_repo_files("ReeF2025/MPG-SAM2", cache_dir=tmp_path)


def test_device_and_precision_choice():
    from mpg_sam2.pipeline.devices import check_precision, select_device

    assert select_device("cpu").type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert select_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            select_device("cuda:0")
    with pytest.raises(ValueError, match="unsupported device"):
        select_device("tpu")
    with pytest.raises(ValueError, match="precision must be"):
        check_precision("fp16", torch.device("cpu"))
    assert check_precision("bf16", torch.device("cpu")) == "bf16"
