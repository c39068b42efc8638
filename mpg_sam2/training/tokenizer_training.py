"""Train a small sentencepiece tokenizer and save it the way BEiT-3's XLM-R tokenizer is saved.

The released checkpoints read text with BEiT-3's 64k-piece XLM-R sentencepiece model. A model
trained from scratch on a small benchmark (the synthetic one has 38 words) needs no such
vocabulary: a unigram model trained on its sentences, saved with the same files and the same id
convention, loads through :func:`mpg_sam2.checkpoint.tokenizer_files.load_tokenizer` like the real one.

Ids (XLM-R / fairseq): ``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3; sentencepiece piece ``i``
becomes ``i + 1``; ``<mask>`` follows the pieces and ``[SEG]`` follows ``<mask>``. The BEiT-3
text embedding therefore needs ``pieces + 3`` rows (:func:`required_vocab_size`).

On a corpus this small, sentencepiece's unigram trainer keeps many short sub-word pieces and
splits even the most frequent words ("the" -> "▁th" "e"). ``whole_words`` adds a piece
``▁word`` for each listed word that is still split, scored at the best score of the trained
pieces, so the Viterbi segmentation takes the whole word (one piece always outscores two or
more). The model stays a unigram model (the type transformers 5 reads XLM-R files as).
"""
from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Iterable, Sequence

from mpg_sam2.checkpoint.files import SENTENCEPIECE_FILE
from mpg_sam2.checkpoint.tokenizer_files import load_tokenizer
from mpg_sam2.tokenizer import SEG_TOKEN, ReferringTokenizer

__all__ = [
    "required_vocab_size",
    "synthetic_corpus",
    "train_sentencepiece",
    "train_tokenizer",
    "write_xlmr_tokenizer_dir",
]

_WORD_BOUNDARY = "\u2581"  # sentencepiece's "▁"


def train_sentencepiece(
    sentences: Sequence[str], vocab_size: int = 100, whole_words: Iterable[str] = ()
) -> bytes:
    """A unigram sentencepiece model (serialized ``ModelProto``) trained on ``sentences``.

    ``vocab_size`` is an upper bound (the trainer takes what the corpus supports); every word of
    ``whole_words`` becomes a single piece (see the module docstring).
    """
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as model_pb2

    sentences = [s for s in sentences if s.strip()]
    if not sentences:
        raise ValueError("the tokenizer corpus is empty; pass at least one sentence")
    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=buffer,
        model_type="unigram",
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        character_coverage=1.0,
        num_threads=1,
        minloglevel=2,
    )
    proto = model_pb2.ModelProto()
    proto.ParseFromString(buffer.getvalue())
    processor = spm.SentencePieceProcessor(model_proto=buffer.getvalue())
    normal = model_pb2.ModelProto.SentencePiece.Type.NORMAL
    best = max(p.score for p in proto.pieces if p.type == normal)
    existing = {p.piece for p in proto.pieces}
    for word in sorted(set(whole_words)):
        if not word or any(ch.isspace() for ch in word):
            raise ValueError(f"whole_words must be single words without spaces, got {word!r}")
        piece = _WORD_BOUNDARY + word
        if piece in existing or len(processor.encode(word)) == 1:
            continue
        proto.pieces.add(piece=piece, score=best, type=normal)
        existing.add(piece)
    return proto.SerializeToString()


def write_xlmr_tokenizer_dir(directory: str | Path, sp_model_proto: bytes) -> Path:
    """Write ``sentencepiece.bpe.model`` + the XLM-R tokenizer config files into ``directory``.

    The files are those an XLM-R tokenizer's ``save_pretrained`` writes after the authors set
    pad = unk and added ``[SEG]``; :func:`mpg_sam2.checkpoint.tokenizer_files.load_tokenizer` reads them.
    """
    import sentencepiece as spm

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    pieces = spm.SentencePieceProcessor(model_proto=sp_model_proto).get_piece_size()
    (directory / SENTENCEPIECE_FILE).write_bytes(sp_model_proto)
    mask_id, seg_id = pieces + 1, pieces + 2

    def token(content: str, special: bool, lstrip: bool = False) -> dict:
        return {
            "content": content, "lstrip": lstrip, "normalized": not special, "rstrip": False,
            "single_word": False, "special": special,
        }

    specials = {"bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>", "pad_token": "<unk>",
                "sep_token": "</s>", "unk_token": "<unk>"}
    config = {
        "added_tokens_decoder": {
            "0": token("<s>", True), "1": token("<pad>", True), "2": token("</s>", True),
            "3": token("<unk>", True), str(mask_id): token("<mask>", True, lstrip=True),
            str(seg_id): token(SEG_TOKEN, False),
        },
        **specials,
        "clean_up_tokenization_spaces": True,
        "mask_token": "<mask>",
        "model_max_length": 512,
        "padding_side": "right",
        "sp_model_kwargs": {},
        "tokenizer_class": "XLMRobertaTokenizer",
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    mask = {"content": "<mask>", "lstrip": True, "normalized": False, "rstrip": False, "single_word": False}
    (directory / "special_tokens_map.json").write_text(json.dumps({**specials, "mask_token": mask}, indent=2), encoding="utf-8")
    (directory / "added_tokens.json").write_text(json.dumps({SEG_TOKEN: seg_id}), encoding="utf-8")
    return directory


def required_vocab_size(tokenizer: ReferringTokenizer) -> int:
    """Rows the BEiT-3 text embedding needs for this tokenizer (pieces, specials, ``<mask>``, ``[SEG]``)."""
    return len(tokenizer)


def synthetic_corpus(num_sentences: int = 2000, seed: int = 0) -> list[str]:
    """Sentences from the synthetic benchmark's templates with random object descriptions."""
    from mpg_sam2.data.synthetic import COLOURS, SHAPES, SIZES, TEMPLATES, TEXTURES

    rng = random.Random(seed)

    def description() -> str:
        words = [rng.choice([None, *SIZES]), rng.choice([None, *TEXTURES]), rng.choice([None, *COLOURS])]
        return " ".join([w for w in words if w] + [rng.choice([*SHAPES, "shape"])])

    return [rng.choice(TEMPLATES).text.format(target=description(), reference=description()) for _ in range(num_sentences)]


def train_tokenizer(
    directory: str | Path,
    sentences: Sequence[str] | None = None,
    vocab_size: int = 100,
    whole_words: Iterable[str] | None = None,
) -> ReferringTokenizer:
    """Train, save into ``directory`` and load back a tokenizer.

    Without ``sentences`` the synthetic benchmark's corpus and vocabulary are used.
    """
    if sentences is None:
        from mpg_sam2.data.synthetic import vocabulary

        sentences = synthetic_corpus()
        whole_words = vocabulary() if whole_words is None else whole_words
    proto = train_sentencepiece(sentences, vocab_size=vocab_size, whole_words=whole_words or ())
    return load_tokenizer(write_xlmr_tokenizer_dir(directory, proto))
