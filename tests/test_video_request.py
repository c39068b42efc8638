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


def test_cli_compile_flag_compiles_the_loaded_model(checkpoint, video, tmp_path, capsys, monkeypatch):
    """--compile hands the loaded model to compile_sam2 before any frame runs (compiling itself
    is tested in test_compilation.py; here it is recorded, not run)."""
    from mpg_sam2.model import compilation

    compiled = []
    monkeypatch.setattr(compilation, "compile_sam2", lambda model: compiled.append(model) or model)
    code = main(["segment", str(video), "-e", "the dog", "--out", str(tmp_path / "out"), "--model", str(checkpoint),
                 "--max-frames", "2", "--exports", "png", "--compile"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert len(compiled) == 1 and not compiled[0].training
    assert "compiling SAM 2's per-frame parts" in captured.err
    # Attention maps and compiling do not go together: refused before the model loads.
    assert main(["segment", str(video), "-e", "the dog", "--out", str(tmp_path / "out2"), "--model", "no-such-model",
                 "--compile", "--attention"]) == 2
    assert "--attention cannot be recorded on a compiled model" in capsys.readouterr().err
    assert len(compiled) == 1


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


def test_cli_segment_with_clicks(checkpoint, video, tmp_path, capsys):
    """Clicks index the frames as segmented (after sampling) in their pixels (after --max-side):
    the 98 x 62 video downscaled to 49 x 31 takes (40, 20) and the zip's manifest records it."""
    clicks = tmp_path / "clicks.json"
    entry = {"expression": 1, "frame": 2, "points": [[40, 20, 1], [5, 5, 0]]}
    clicks.write_text(json.dumps([entry]))
    out = tmp_path / "cli"
    code = main(["segment", str(video), "-e", "the man in the red shirt", "-e", "the black dog", "--out", str(out),
                 "--model", str(checkpoint), "--every-k", "2", "--max-side", "49", "--exports", "png,zip",
                 "--clicks", str(clicks)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "3 frames" in captured.out and "49x31" in captured.out
    assert "'the black dog': object in" in captured.out and "after 1 click corrections" in captured.out
    with zipfile.ZipFile(out / "clip.zip") as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert [e["corrections"] for e in manifest["expressions"]] == [[], [entry]]
    assert manifest["frame_size"] == [31, 49]

    # The same point is outside the downscaled frame when x > 49.
    clicks.write_text(json.dumps({"expression": 0, "frame": 0, "points": [[60, 20, 1]]}))
    assert main(["segment", str(video), "-e", "the dog", "--out", str(tmp_path / "out2"), "--model", str(checkpoint),
                 "--max-side", "49", "--clicks", str(clicks)]) == 2
    assert "(60, 20) lies outside the 49 x 31 frame" in capsys.readouterr().err


@pytest.mark.parametrize(("content", "message", "decoded"), [
    ("{", "not valid JSON", False),
    (json.dumps({"expression": 0, "frame": 0, "points": [[1, 2, 3]]}), "label must be 1", False),
    (json.dumps([{"expression": 1, "frame": 0, "points": [[1, 2, 1]]}]), "expression 1 does not exist", False),
    (json.dumps([{"expression": 0, "frame": 6, "points": [[1, 2, 1]]}]), "frame 6 does not exist", True),
    (None, "does not exist", False),
])
def test_cli_bad_clicks_file(checkpoint, video, tmp_path, capsys, monkeypatch, content, message, decoded):
    """A bad clicks file is exit code 2 with the reason, before the model loads and the video is
    decoded; frames and points, which need the decoded video, before the model runs."""
    from mpg_sam2.checkpoint import pretrained
    from mpg_sam2.model.mpg_sam2 import MPGSAM2
    from mpg_sam2.pipeline import video_file

    clicks = tmp_path / "clicks.json"
    if content is not None:
        clicks.write_text(content)
    if not decoded:
        monkeypatch.setattr(pretrained, "load_pretrained", lambda *a, **k: pytest.fail("loaded the model"))
        monkeypatch.setattr(video_file, "load_video", lambda *a, **k: pytest.fail("decoded the video"))
    monkeypatch.setattr(MPGSAM2, "encode_expression", lambda *a, **k: pytest.fail("ran the model"))
    out = tmp_path / "out"
    args = ["segment", str(video), "-e", "the dog", "--out", str(out), "--model", str(checkpoint), "--clicks", str(clicks)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "error:" in err and message in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


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
