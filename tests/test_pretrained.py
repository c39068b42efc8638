"""Loading and saving checkpoints end to end: our format, the authors' format, training dumps, Hub."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mpg_sam2.config import get_preset
from mpg_sam2.checkpoint.pretrained import config_from_checkpoint, load_pretrained, save_pretrained
from mpg_sam2.synthetic_weights import read_layout, synth_state_dict
from mpg_sam2.checkpoint.tokenizer_files import load_tokenizer
from tiny_model import tiny_model
from tokenizer_factory import train_sentencepiece, write_authors_tokenizer_dir

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    import sentencepiece as spm

    proto = train_sentencepiece()
    pieces = spm.SentencePieceProcessor(model_proto=proto).get_piece_size()
    return write_authors_tokenizer_dir(tmp_path_factory.mktemp("tok"), proto, pieces)


@pytest.fixture(scope="module")
def authors_mini_state_dict() -> dict[str, torch.Tensor]:
    return synth_state_dict(read_layout(FIXTURES / "layout_mini.txt"), seed=3)


def test_our_format_round_trip_with_shards_and_tokenizer(tmp_path, tokenizer_dir):
    model = tiny_model(seed=1)
    tokenizer = load_tokenizer(tokenizer_dir)
    out = save_pretrained(model, tmp_path / "ckpt", tokenizer=tokenizer, max_shard_bytes=2_000_000)
    assert (out / "model.safetensors.index.json").exists()
    assert json.loads((out / "config.json").read_text())["model_type"] == "mpg_sam2"
    loaded = load_pretrained(out)
    assert loaded.model.config == model.config
    theirs = loaded.model.state_dict()
    for name, tensor in model.state_dict().items():
        assert torch.equal(theirs[name], tensor), name
    assert not loaded.model.training
    assert loaded.tokenizer is not None
    text = "the man in the red shirt"
    assert loaded.tokenizer.encode(text).input_ids.tolist() == tokenizer.encode(text).input_ids.tolist()
    # The frozen image encoder stays frozen after loading.
    assert not any(p.requires_grad for p in loaded.model.sam2.image_encoder.parameters())


def test_authors_directory_and_training_checkpoint(tmp_path, authors_mini_state_dict):
    sd = authors_mini_state_dict
    authors_dir = tmp_path / "authors"
    authors_dir.mkdir()
    torch.save(sd, authors_dir / "pytorch_model.bin")
    (authors_dir / "config.json").write_text(json.dumps(
        {"model_type": "evf", "hidden_size": 1024, "out_dim": 256, "mm_extractor_scale": "large"}))
    # The authors' config describes the large release; preset says this one is the mini layout.
    model = load_pretrained(authors_dir, preset="mini").model
    assert torch.equal(model.mask_prior_generator.class_token_attn.in_proj_weight, sd["vmtoken.multihead_attn.in_proj_weight"])
    assert torch.equal(model.beit3.layers[1].ffn.text.norm.weight,
                       sd["mm_extractor.beit3.encoder.layers.1.ffn.B.ffn_layernorm.weight"])

    # A DeepSpeed-style training dump: wrapped, with module.evf_model. prefixes.
    training = tmp_path / "step_100.pth"
    torch.save({"module": {f"module.evf_model.{k}": v for k, v in sd.items()}}, training)
    model2 = load_pretrained(training, preset="mini").model
    for name, tensor in model.state_dict().items():
        assert torch.equal(model2.state_dict()[name], tensor), name


def test_training_checkpoint_without_preset_is_explained(tmp_path):
    path = tmp_path / "weights.pth"
    torch.save({"meo_linear.bias": torch.zeros(256)}, path)
    with pytest.raises(ValueError, match="pass preset="):
        load_pretrained(path)


def test_wrong_preset_names_the_mismatching_keys(tmp_path, authors_mini_state_dict):
    path = tmp_path / "mini.pth"
    torch.save(authors_mini_state_dict, path)
    with pytest.raises(RuntimeError, match="missing keys") as err:
        load_pretrained(path, preset="release-large")
    assert "beit3.layers.23.attn.q_proj.vision.weight" in str(err.value)


def test_config_from_authors_config_json():
    large = config_from_checkpoint({"model_type": "evf", "mm_extractor_scale": "large", "hidden_size": 1024}, {}, None)
    assert large == get_preset("release-large")
    base_sd = {"beit3.text_embed.weight": torch.empty(64011, 8)}
    base = config_from_checkpoint({"model_type": "evf", "mm_extractor_scale": "base", "hidden_size": 768}, base_sd, None)
    assert base.beit3.embed_dim == 768 and base.sam2.variant == "hiera_t"
    assert base.beit3.vocab_size == 64011  # taken from the checkpoint
    with pytest.raises(ValueError, match="hidden_size=1024"):
        config_from_checkpoint({"model_type": "evf", "mm_extractor_scale": "base", "hidden_size": 1024}, {}, None)
    with pytest.raises(ValueError, match="model_type='llama'"):
        config_from_checkpoint({"model_type": "llama"}, {}, None)


def test_hub_offline_without_cache_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="ReeF2025/MPG-SAM2"):
        load_pretrained("ReeF2025/MPG-SAM2", subfolder="ytvos", cache_dir=tmp_path)


def test_hub_download_goes_through_snapshot_download(tmp_path, monkeypatch):
    model = tiny_model(seed=2)
    snapshot = tmp_path / "snapshot"
    save_pretrained(model, snapshot / "tiny")
    calls = {}

    def fake_snapshot_download(repo_id, **kwargs):
        calls.update(repo_id=repo_id, **kwargs)
        return str(snapshot)

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    loaded = load_pretrained("someone/mpg-sam2-tiny", revision="v1", subfolder="tiny", cache_dir=tmp_path / "cache")
    assert calls["repo_id"] == "someone/mpg-sam2-tiny" and calls["revision"] == "v1"
    assert loaded.path == snapshot / "tiny"
    assert torch.equal(loaded.model.text_feature_proj.weight, model.text_feature_proj.weight)


def test_a_checkpoint_without_tokenizer_loads_but_cannot_read_text(tmp_path):
    """One check, one message for every reader of sentences (CLI, evaluation, app)."""
    from mpg_sam2.cli import main

    folder = save_pretrained(tiny_model(seed=0), tmp_path / "no_tokenizer")
    pretrained = load_pretrained(folder)
    assert pretrained.tokenizer is None
    with pytest.raises(RuntimeError, match="has no tokenizer files .* so it cannot read text"):
        pretrained.text_tokenizer()
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")  # never opened: the model is refused first
    code = main(["segment", str(video), "--expression", "the dog", "--model", str(folder), "--out", str(tmp_path / "out")])
    assert code == 2 and not (tmp_path / "out").exists()
