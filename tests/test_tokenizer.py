"""The tokenizer gives the authors' ids: ``[0] + [sentencepiece id + 1 ...] + [2]``, pad = unk = 3.

A tiny unigram sentencepiece model is trained here (well under a second) and saved the way the
authors' old transformers saved BEiT-3's tokenizer: ``sentencepiece.bpe.model`` +
``tokenizer_config.json`` (``tokenizer_class: XLMRobertaTokenizer``, ``pad_token: <unk>``, the
added ``[SEG]``) + ``special_tokens_map.json`` + ``added_tokens.json``.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")
spm = pytest.importorskip("sentencepiece")

from mpg_sam2.checkpoint import tokenizer_files as tokenizer_module  # noqa: E402
from tokenizer_factory import TRAINING_CORPUS, train_sentencepiece, write_authors_tokenizer_dir  # noqa: E402
from mpg_sam2.checkpoint.files import SENTENCEPIECE_FILE  # noqa: E402
from mpg_sam2.checkpoint.tokenizer_files import load_tokenizer, save_tokenizer  # noqa: E402
from mpg_sam2.tokenizer import ReferringTokenizer, TokenizedText, attention_mask_from_ids  # noqa: E402

EXPRESSIONS = [
    "the man in the red shirt",
    "a black dog running across the grass",
    "The Second Car From The Right!",
    "person #2, wearing a white hat (left).",
    "the 3rd zebra at 10 o'clock",
    "  the   cat  lying    on the sofa  ",
    "\tthe bird\non the branch\n",
    "la girafe à gauche, très grande",
    "die Katze über dem Sofa",
    "左边的狗",
    "🐶 dog",
    "qqqq xyzzy",
    "",
    " ",
    "a",
    "the duck swimming closest to the camera " * 5,
]


@pytest.fixture(scope="module")
def sp_model_proto() -> bytes:
    return train_sentencepiece()


@pytest.fixture(scope="module")
def sp_processor(sp_model_proto: bytes):
    return spm.SentencePieceProcessor(model_proto=sp_model_proto)


@pytest.fixture(scope="module")
def authors_dir(tmp_path_factory: pytest.TempPathFactory, sp_model_proto: bytes, sp_processor) -> Path:
    return write_authors_tokenizer_dir(
        tmp_path_factory.mktemp("authors_tokenizer"), sp_model_proto, sp_processor.get_piece_size()
    )


@pytest.fixture(scope="module")
def tok(authors_dir: Path) -> ReferringTokenizer:
    return load_tokenizer(authors_dir)


def _expected_ids(sp_processor, text: str) -> list[int]:
    unk = sp_processor.unk_id()
    return [0] + [3 if i == unk else i + 1 for i in sp_processor.encode(text)] + [2]


def test_ids_follow_fairseq_offset(tok: ReferringTokenizer, sp_processor) -> None:
    saw_unknown = False
    for text in EXPRESSIONS:
        encoded = tok.encode(text)
        assert isinstance(encoded, TokenizedText)
        assert encoded.input_ids.dtype == torch.int64 and encoded.attention_mask.dtype == torch.bool
        assert encoded.input_ids.shape == encoded.attention_mask.shape == (1, encoded.length)
        ids = encoded.input_ids[0].tolist()
        assert ids == _expected_ids(sp_processor, text), repr(text)
        assert torch.equal(encoded.attention_mask, encoded.input_ids != 3)
        saw_unknown |= 3 in ids
    assert saw_unknown, "the corpus should exercise the unk = pad masking quirk"
    assert tok.encode("").input_ids.tolist() == [[0, 2]]


def test_pad_is_unk_and_seg_is_added(tok: ReferringTokenizer, sp_processor) -> None:
    assert tok.pad_token_id == 3
    assert tok.backend.unk_token_id == 3
    assert tok.backend.bos_token_id == 0 and tok.backend.eos_token_id == 2
    assert tok.seg_token_id == sp_processor.get_piece_size() + 2  # after the pieces and <mask>
    assert len(tok) == sp_processor.get_piece_size() + 3
    # id 1 stays "<pad>" even though the saved config names "<unk>" as pad token (transformers 5
    # would otherwise duplicate "<unk>" at id 1 and append "<pad>" as a new token).
    assert tok.backend.convert_ids_to_tokens([0, 1, 2, 3]) == ["<s>", "<pad>", "</s>", "<unk>"]
    assert tok.backend.convert_tokens_to_ids("<mask>") == sp_processor.get_piece_size() + 1
    # [SEG] is never inserted: no expression's ids contain it.
    assert tok.seg_token_id not in tok.encode("the man in the red shirt").input_ids[0].tolist()


def test_seg_added_when_missing(tmp_path: Path, sp_model_proto: bytes, sp_processor) -> None:
    directory = write_authors_tokenizer_dir(tmp_path / "tok", sp_model_proto, sp_processor.get_piece_size())
    (directory / "added_tokens.json").unlink()
    config = json.loads((directory / "tokenizer_config.json").read_text())
    config["pad_token"] = "<pad>"  # as saved before the authors' pad = unk
    config["added_tokens_decoder"].pop(str(sp_processor.get_piece_size() + 2))
    (directory / "tokenizer_config.json").write_text(json.dumps(config))
    loaded = load_tokenizer(directory)
    assert loaded.pad_token_id == 3
    assert loaded.seg_token_id == sp_processor.get_piece_size() + 2


def test_attention_mask_from_ids() -> None:
    ids = torch.tensor([[0, 5, 3, 1, 2]])
    assert attention_mask_from_ids(ids).tolist() == [[True, True, False, True, True]]
    assert attention_mask_from_ids(ids, pad_token_id=1).tolist() == [[True, True, True, False, True]]
    with pytest.raises(ValueError, match="integer"):
        attention_mask_from_ids(ids.float())


def test_length_limit_and_truncation(authors_dir: Path) -> None:
    short = load_tokenizer(authors_dir, max_tokens=8)
    text = "the woman holding an umbrella in the rain"
    with pytest.raises(ValueError, match="at most 8"):
        short.encode(text)
    truncated = short.encode(text, max_length=8)
    assert truncated.length == 8
    assert truncated.input_ids[0, 0] == 0 and truncated.input_ids[0, -1] == 2
    full = short.backend(text)["input_ids"]
    assert truncated.input_ids[0, 1:-1].tolist() == full[1:7]
    with pytest.raises(ValueError, match="max_length"):
        short.encode(text, max_length=1)
    with pytest.raises(ValueError, match="must be a str"):
        short.encode(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_tokens"):
        load_tokenizer(authors_dir, max_tokens=1)


def test_no_truncation_by_default(tok: ReferringTokenizer) -> None:
    # Longer than the saved model_max_length (512, the training length) but within BEiT-3's 1022.
    long_text = "the cat lying on the sofa near the window " * 40
    encoded = tok.encode(long_text)
    assert 512 < encoded.length <= 1022
    with pytest.raises(ValueError, match="1022"):
        tok.encode(long_text * 3)


def test_save_load_round_trip(tok: ReferringTokenizer, tmp_path: Path) -> None:
    written = save_tokenizer(tok, tmp_path / "saved")
    names = {p.name for p in written}
    assert "tokenizer_config.json" in names and SENTENCEPIECE_FILE in names
    config = json.loads((tmp_path / "saved" / "tokenizer_config.json").read_text())
    assert "local_files_only" not in config and "is_local" not in config
    assert not isinstance(config.get("extra_special_tokens", {}), list)  # transformers 4 needs a dict
    again = load_tokenizer(tmp_path / "saved")
    assert again.pad_token_id == 3 and again.seg_token_id == tok.seg_token_id and len(again) == len(tok)
    for text in EXPRESSIONS:
        assert torch.equal(again.encode(text).input_ids, tok.encode(text).input_ids), repr(text)

    # The saved sentencepiece model alone (no tokenizer.json) must load to the same ids too.
    (tmp_path / "saved" / "tokenizer.json").unlink(missing_ok=True)
    from_spm = load_tokenizer(tmp_path / "saved")
    for text in EXPRESSIONS:
        assert torch.equal(from_spm.encode(text).input_ids, tok.encode(text).input_ids), repr(text)


def test_missing_directory_and_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_tokenizer(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no tokenizer in"):
        load_tokenizer(empty)
    (empty / "tokenizer_config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=SENTENCEPIECE_FILE):
        load_tokenizer(empty)


def test_missing_protobuf_is_explained(authors_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = tokenizer_module._module_available
    monkeypatch.setattr(tokenizer_module, "_module_available", lambda name: name != "google.protobuf" and real(name))
    if tokenizer_module._transformers_major() >= 5:
        with pytest.raises(RuntimeError, match="pip install protobuf"):
            load_tokenizer(authors_dir)
    monkeypatch.setattr(tokenizer_module, "_module_available", lambda name: name != "sentencepiece" and real(name))
    with pytest.raises(RuntimeError, match="pip install sentencepiece"):
        load_tokenizer(authors_dir)


def test_wrong_special_ids_are_refused(tok: ReferringTokenizer) -> None:
    class NotXLMR:
        bos_token_id, eos_token_id, unk_token_id = 1, 2, 0

    with pytest.raises(RuntimeError, match="XLM-R"):
        ReferringTokenizer(NotXLMR())  # type: ignore[arg-type]


def test_bpe_sentencepiece_model_warns(tmp_path: Path) -> None:
    # transformers 5 reads every XLM-R sentencepiece model as Unigram; a BPE-trained one segments
    # differently from sentencepiece, so loading one must not pass silently.
    if tokenizer_module._transformers_major() < 5:
        pytest.skip("transformers 4 runs sentencepiece itself; the BPE model is read correctly")
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(TRAINING_CORPUS * 10), model_writer=buffer, model_type="bpe", vocab_size=150,
        hard_vocab_limit=False, character_coverage=1.0, num_threads=1, minloglevel=2,
    )
    piece_count = spm.SentencePieceProcessor(model_proto=buffer.getvalue()).get_piece_size()
    directory = write_authors_tokenizer_dir(tmp_path / "bpe", buffer.getvalue(), piece_count)
    with pytest.warns(RuntimeWarning, match="BPE sentencepiece model"):
        load_tokenizer(directory)
