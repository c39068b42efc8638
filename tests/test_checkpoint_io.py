"""Checkpoint files in, state dicts out, and back: every format the authors' tools may have written."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from mpg_sam2.checkpoint import read_weights
from mpg_sam2.checkpoint.files import read_config_json
from mpg_sam2.checkpoint.hub import resolve_checkpoint
from mpg_sam2.checkpoint.read_weights import read_state_dict
from mpg_sam2.checkpoint.write_weights import write_checkpoint_dir


def _random_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "visual_model.no_mem_embed": torch.randn(1, 1, 16, generator=g),
        "visual_model.image_encoder.trunk.patch_embed.proj.weight": torch.randn(8, 3, 7, 7, generator=g),
        "mm_extractor.beit3.text_embed.weight": torch.randn(50, 16, generator=g).to(torch.bfloat16),
        "mask_linear.bias": torch.randn(16, generator=g),
        "text_hidden_fcs.0.0.weight": torch.randn(16, 16, generator=g).half(),
        "visual_model.maskmem_tpos_enc": torch.randn(7, 1, 1, 16, generator=g),
        "counter": torch.tensor(3, dtype=torch.int64),
    }


def _assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        assert torch.equal(a[key], b[key]), key


def _write_torch_shards(directory: Path, sd: dict[str, torch.Tensor]) -> None:
    keys = list(sd)
    parts = [keys[:3], keys[3:]]
    weight_map = {}
    for i, part in enumerate(parts, start=1):
        name = f"pytorch_model-{i:05d}-of-00002.bin"
        torch.save({k: sd[k] for k in part}, directory / name)
        weight_map.update({k: name for k in part})
    index = {"metadata": {"total_size": sum(t.nbytes for t in sd.values())}, "weight_map": weight_map}
    (directory / "pytorch_model.bin.index.json").write_text(json.dumps(index))


def test_single_safetensors_round_trip(tmp_path: Path) -> None:
    sd = _random_state_dict()
    config = {"model_type": "evf", "hidden_size": 16, "nested": {"a": [1, 2]}}
    out = write_checkpoint_dir(tmp_path / "ckpt", sd, config)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    _assert_same(read_state_dict(out), sd)
    _assert_same(read_state_dict(out / "model.safetensors"), sd)
    assert read_config_json(out) == config
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_sharded_safetensors_round_trip(tmp_path: Path) -> None:
    sd = _random_state_dict()
    out = write_checkpoint_dir(tmp_path / "ckpt", sd, {"x": 1}, max_shard_bytes=2000)
    index = json.loads((out / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) >= 3 and shards[0] == f"model-00001-of-{len(shards):05d}.safetensors"
    assert index["metadata"]["total_size"] == sum(t.nbytes for t in sd.values())
    assert sorted(index["weight_map"]) == sorted(sd)
    assert not (out / "model.safetensors").exists()
    _assert_same(read_state_dict(out), sd)
    _assert_same(read_state_dict(out / "model.safetensors.index.json"), sd)


def test_pytorch_bin_and_sharded_bin(tmp_path: Path) -> None:
    sd = _random_state_dict()
    single = tmp_path / "single"
    single.mkdir()
    torch.save(sd, single / "pytorch_model.bin")
    _assert_same(read_state_dict(single), sd)

    sharded = tmp_path / "sharded"
    sharded.mkdir()
    _write_torch_shards(sharded, sd)
    _assert_same(read_state_dict(sharded), sd)


def test_each_shard_is_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sd = _random_state_dict()
    _write_torch_shards(tmp_path, sd)
    reads: list[str] = []
    real = read_weights._read_weights_file
    monkeypatch.setattr(read_weights, "_read_weights_file", lambda p: reads.append(p.name) or real(p))
    read_state_dict(tmp_path)
    assert sorted(reads) == ["pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"]


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".bin"])
@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: {f"module.{k}": v for k, v in sd.items()},
        lambda sd: {f"module.evf_model.{k}": v for k, v in sd.items()},
        lambda sd: {f"evf_model.{k}": v for k, v in sd.items()},
        lambda sd: {"module": sd, "optimizer": {"lr": 0.1}, "global_steps": 7},
        lambda sd: {"module": {f"module.evf_model.{k}": v for k, v in sd.items()}, "epoch": 1},
        lambda sd: {"state_dict": sd, "epoch": 3},
        lambda sd: {"model_state_dict": sd},
        lambda sd: {"model": {f"evf_model.{k}": v for k, v in sd.items()}, "args": {"lr": 1e-4}},
    ],
    ids=["module.", "module.evf_model.", "evf_model.", "module-wrapper", "wrapper+prefix", "state_dict",
         "model_state_dict", "model-wrapper"],
)
def test_training_checkpoints(tmp_path: Path, suffix: str, wrap) -> None:
    sd = _random_state_dict()
    path = tmp_path / f"ckpt{suffix}"
    torch.save(wrap(sd), path)
    _assert_same(read_state_dict(path), sd)


def test_prefix_stripping_can_be_disabled_and_collisions_fail(tmp_path: Path) -> None:
    sd = {"module.a": torch.zeros(2), "b": torch.ones(2)}
    torch.save(sd, tmp_path / "x.pt")
    assert sorted(read_state_dict(tmp_path / "x.pt", strip_prefixes=())) == ["b", "module.a"]
    assert sorted(read_state_dict(tmp_path / "x.pt")) == ["a", "b"]
    torch.save({"module.a": torch.zeros(2), "a": torch.ones(2)}, tmp_path / "y.pt")
    with pytest.raises(RuntimeError, match="maps two entries to 'a'"):
        read_state_dict(tmp_path / "y.pt")


def test_safetensors_preferred_over_bin(tmp_path: Path) -> None:
    sd = _random_state_dict(0)
    other = {k: v + 1 if v.is_floating_point() else v for k, v in sd.items()}
    save_file(sd, str(tmp_path / "model.safetensors"))
    torch.save(other, tmp_path / "pytorch_model.bin")
    _assert_same(read_state_dict(tmp_path), sd)
    # ... also a sharded safetensors index over a single .bin
    (tmp_path / "model.safetensors").unlink()
    write_checkpoint_dir(tmp_path / "sharded", sd, {}, max_shard_bytes=4000)
    for p in (tmp_path / "sharded").iterdir():
        if p.name != "config.json":
            os.replace(p, tmp_path / p.name)
    _assert_same(read_state_dict(tmp_path), sd)


def test_missing_shard_is_reported(tmp_path: Path) -> None:
    out = write_checkpoint_dir(tmp_path / "ckpt", _random_state_dict(), {}, max_shard_bytes=2000)
    (out / "model-00002-of-00004.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"shard 'model-00002-of-00004.safetensors' listed in .* is missing"):
        read_state_dict(out)


class _Evil:
    def __reduce__(self):  # would run os.system on an unsafe load
        return (os.system, ("echo should-never-run",))


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"weight": torch.zeros(2), "payload": _Evil()}, path)
    with pytest.raises(RuntimeError, match="weights_only=True never runs code"):
        read_state_dict(path)


def test_no_tensors_and_missing_inputs(tmp_path: Path) -> None:
    torch.save({"epoch": 3, "args": {"lr": 0.1}}, tmp_path / "empty.pt")
    with pytest.raises(RuntimeError, match="no tensors found"):
        read_state_dict(tmp_path / "empty.pt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_state_dict(tmp_path / "missing.safetensors")
    (tmp_path / "dir").mkdir()
    with pytest.raises(FileNotFoundError, match="no weights in"):
        read_state_dict(tmp_path / "dir")
    (tmp_path / "weights.npz").write_bytes(b"x")
    with pytest.raises(ValueError, match="unknown checkpoint file type"):
        read_state_dict(tmp_path / "weights.npz")
    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 5)
    with pytest.raises(RuntimeError, match="cannot read safetensors"):
        read_state_dict(tmp_path / "broken.safetensors")


def test_read_config_json_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_config_json(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        read_config_json(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        read_config_json(tmp_path)
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        read_config_json(tmp_path)


def test_shared_and_noncontiguous_tensors_are_written(tmp_path: Path) -> None:
    base = torch.randn(4, 6)
    sd = {"tied.a": base, "tied.b": base, "view": base[1:3], "transposed": base.t()}
    out = write_checkpoint_dir(tmp_path / "ckpt", sd, {})
    back = read_state_dict(out)
    for key, tensor in sd.items():
        assert torch.equal(back[key], tensor), key


def test_write_refuses_existing_dir_and_bad_config(tmp_path: Path) -> None:
    sd = _random_state_dict()
    out = write_checkpoint_dir(tmp_path / "ckpt", sd, {"v": 1})
    with pytest.raises(ValueError, match="overwrite=True"):
        write_checkpoint_dir(out, sd, {"v": 2})
    with pytest.raises(ValueError, match="JSON-serialisable"):
        write_checkpoint_dir(tmp_path / "other", sd, {"bad": object()})
    assert not (tmp_path / "other").exists()


def test_overwrite_replaces_weights_and_keeps_tokenizer_files(tmp_path: Path) -> None:
    out = write_checkpoint_dir(tmp_path / "ckpt", _random_state_dict(0), {"v": 1}, max_shard_bytes=2000)
    (out / "tokenizer_config.json").write_text("{}")
    new = _random_state_dict(1)
    write_checkpoint_dir(out, new, {"v": 2}, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "tokenizer_config.json"]
    _assert_same(read_state_dict(out), new)
    assert read_config_json(out) == {"v": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import safetensors.torch

    calls = {"n": 0}
    real_save = safetensors.torch.save_file

    def failing_save(tensors, filename, metadata=None):
        calls["n"] += 1
        if calls["n"] == 2:  # the first shard is on disk, then the disk "fills up"
            raise OSError("No space left on device")
        real_save(tensors, filename, metadata=metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", failing_save)
    with pytest.raises(OSError, match="No space left"):
        write_checkpoint_dir(tmp_path / "ckpt", _random_state_dict(), {}, max_shard_bytes=2000)
    assert list(tmp_path.iterdir()) == []

    # A failed overwrite keeps the old checkpoint intact.
    monkeypatch.setattr(safetensors.torch, "save_file", real_save)
    old = _random_state_dict(0)
    write_checkpoint_dir(tmp_path / "ckpt", old, {"v": 1})
    calls["n"] = 0
    monkeypatch.setattr(safetensors.torch, "save_file", failing_save)
    with pytest.raises(OSError):
        write_checkpoint_dir(tmp_path / "ckpt", _random_state_dict(1), {"v": 2}, max_shard_bytes=2000, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    _assert_same(read_state_dict(tmp_path / "ckpt"), old)
    assert read_config_json(tmp_path / "ckpt") == {"v": 1}


def test_resolve_local_paths(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    assert resolve_checkpoint(tmp_path) == tmp_path
    assert resolve_checkpoint(str(tmp_path)) == tmp_path
    assert resolve_checkpoint(tmp_path, subfolder="sub") == tmp_path / "sub"
    with pytest.raises(FileNotFoundError, match="no subfolder"):
        resolve_checkpoint(tmp_path, subfolder="nope")
    with pytest.raises(ValueError, match="relative folder"):
        resolve_checkpoint(tmp_path, subfolder="../etc")


@pytest.mark.parametrize("name", ["not a repo", "/no/such/dir/ckpt", "a/b/c", "./missing", "owner--x/name", ""])
def test_resolve_rejects_non_paths_non_repo_ids(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="neither an existing file or directory nor a Hugging Face Hub repo id"):
        resolve_checkpoint(name)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the test tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_resolve_offline_with_empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network) -> None:
    pytest.importorskip("huggingface_hub")
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub (2.x) reads HF_HUB_OFFLINE once, at import: set its constant too, so that
    # any HTTP request it might still try is refused whatever the import order was.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.chdir(tmp_path)  # so "owner/mpg-sam2" cannot be a local path
    with pytest.raises(RuntimeError) as info:
        resolve_checkpoint("owner/mpg-sam2", revision="v1.0", subfolder="large", cache_dir=tmp_path / "cache")
    message = str(info.value)
    assert "tried to open a network connection" not in message  # failed offline, not via the guard
    for part in ["'owner/mpg-sam2'", "v1.0", "large", "HF_HUB_OFFLINE", "network"]:
        assert part in message


def test_resolve_offline_env_reaches_snapshot_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    huggingface_hub = pytest.importorskip("huggingface_hub")
    seen: dict = {}

    def fake(repo_id, **kwargs):
        seen.update(kwargs)
        (tmp_path / "snap").mkdir(exist_ok=True)
        return str(tmp_path / "snap")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    resolve_checkpoint("owner/name")
    assert seen["local_files_only"] is True
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    seen.clear()
    resolve_checkpoint("owner/name")
    assert "local_files_only" not in seen


def test_resolve_with_fake_snapshot_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    huggingface_hub = pytest.importorskip("huggingface_hub")
    snapshot = tmp_path / "snapshots" / "abc123"
    (snapshot / "large").mkdir(parents=True)
    calls: list[tuple[str, dict]] = []

    def fake_snapshot_download(repo_id: str, **kwargs) -> str:
        calls.append((repo_id, kwargs))
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    monkeypatch.chdir(tmp_path)
    path = resolve_checkpoint("owner/mpg-sam2", revision="v1.0", subfolder="large/", cache_dir=tmp_path / "c")
    assert path == snapshot / "large"
    repo_id, kwargs = calls[-1]
    assert repo_id == "owner/mpg-sam2"
    assert kwargs["revision"] == "v1.0"
    assert kwargs["allow_patterns"] == ["large/*"]
    assert kwargs["cache_dir"] == str(tmp_path / "c")

    assert resolve_checkpoint("owner/mpg-sam2") == snapshot
    assert calls[-1][1]["allow_patterns"] is None and calls[-1][1]["revision"] is None

    with pytest.raises(RuntimeError, match="holds no folder 'tiny'"):
        resolve_checkpoint("owner/mpg-sam2", subfolder="tiny")

    def failing(repo_id: str, **kwargs) -> str:
        raise OSError("connection reset")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", failing)
    with pytest.raises(RuntimeError, match="could not get repo 'owner/mpg-sam2'.*connection reset"):
        resolve_checkpoint("owner/mpg-sam2", revision="main")


def test_hub_offline_is_huggingface_hubs_rule(tmp_path: Path) -> None:
    """hub_offline() says what huggingface_hub's HF_HUB_OFFLINE constant says for the same variables
    (checked in a fresh process per case: huggingface_hub reads them once, at import)."""
    import subprocess
    import sys

    cases = [{}, {"HF_HUB_OFFLINE": "1"}, {"HF_HUB_OFFLINE": "true"}, {"HF_HUB_OFFLINE": "0"},
             {"TRANSFORMERS_OFFLINE": "yes"}, {"HF_HUB_OFFLINE": "", "TRANSFORMERS_OFFLINE": "ON"},
             {"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "1"}, {"TRANSFORMERS_OFFLINE": "2"}]
    code = ("import huggingface_hub.constants as c; from mpg_sam2.checkpoint.hub import hub_offline; "
            "print(c.HF_HUB_OFFLINE, hub_offline())")
    clean = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    for case in cases:
        run = subprocess.run([sys.executable, "-c", code], env={**clean, **case}, capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parents[1], check=True)
        theirs, ours = run.stdout.split()
        assert ours == theirs, (case, theirs, ours)


def test_tokenizer_config_alone_is_no_tokenizer(tmp_path: Path) -> None:
    from mpg_sam2.checkpoint.files import has_tokenizer

    (tmp_path / "tokenizer_config.json").write_text("{}")
    assert not has_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text("{}")
    assert has_tokenizer(tmp_path)
