"""Tiny sentencepiece tokenizers saved the way the authors' checkpoints carry BEiT-3's."""
from __future__ import annotations

import io
import json
from pathlib import Path

from mpg_sam2.checkpoint.files import SENTENCEPIECE_FILE
from mpg_sam2.tokenizer import SEG_TOKEN

TRAINING_CORPUS = [
    "the man in the red shirt standing on the left",
    "a black dog running across the grass",
    "the second car from the right side of the road",
    "person wearing a white hat and blue jeans",
    "the giraffe eating leaves from the tall tree",
    "a small bird sitting on the branch above the water",
    "the woman holding an umbrella in the rain",
    "zebra walking to the left behind the other zebra",
    "the horse jumping over the fence in the field",
    "the cat lying on the sofa near the window",
    "a brown bear climbing a rock",
    "the skateboarder doing a trick on the ramp",
    "two people riding bicycles down the street",
    "the boy with a green backpack",
    "the surfer riding the wave at the front",
    "the elephant spraying water with its trunk",
    "a monkey hanging from the rope",
    "the duck swimming closest to the camera",
    "the biggest fish in the tank",
    "the motorcycle parked next to the truck",
]


def train_sentencepiece(corpus: list[str] = TRAINING_CORPUS, vocab_size: int = 200) -> bytes:
    """A unigram sentencepiece model (serialized proto), trained in well under a second."""
    import sentencepiece as spm

    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(corpus) * 10),
        model_writer=buffer,
        model_type="unigram",
        vocab_size=vocab_size,
        hard_vocab_limit=False,  # the corpus is tiny; take what it supports
        character_coverage=1.0,
        num_threads=1,
        minloglevel=2,
    )
    return buffer.getvalue()


def write_authors_tokenizer_dir(directory: Path, sp_model_proto: bytes, piece_count: int) -> Path:
    """Files as an old transformers' XLMRobertaTokenizer.save_pretrained wrote them after the
    authors set pad = unk and added [SEG]. Ids: sentencepiece pieces shift by one, <mask> comes
    after them, [SEG] after <mask>."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / SENTENCEPIECE_FILE).write_bytes(sp_model_proto)
    mask_id, seg_id = piece_count + 1, piece_count + 2

    def added(content: str, special: bool, lstrip: bool = False) -> dict:
        return {"content": content, "lstrip": lstrip, "normalized": not special, "rstrip": False,
                "single_word": False, "special": special}

    config = {
        "added_tokens_decoder": {
            "0": added("<s>", True), "1": added("<pad>", True), "2": added("</s>", True),
            "3": added("<unk>", True), str(mask_id): added("<mask>", True, lstrip=True),
            str(seg_id): added(SEG_TOKEN, False),
        },
        "bos_token": "<s>", "clean_up_tokenization_spaces": True, "cls_token": "<s>", "eos_token": "</s>",
        "mask_token": "<mask>", "model_max_length": 512, "pad_token": "<unk>", "padding_side": "right",
        "sep_token": "</s>", "sp_model_kwargs": {}, "tokenizer_class": "XLMRobertaTokenizer",
        "unk_token": "<unk>",
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    special = {"bos_token": "<s>", "cls_token": "<s>", "eos_token": "</s>", "pad_token": "<unk>",
               "sep_token": "</s>", "unk_token": "<unk>",
               "mask_token": {"content": "<mask>", "lstrip": True, "normalized": False, "rstrip": False,
                              "single_word": False}}
    (directory / "special_tokens_map.json").write_text(json.dumps(special, indent=2), encoding="utf-8")
    (directory / "added_tokens.json").write_text(json.dumps({SEG_TOKEN: seg_id}), encoding="utf-8")
    return directory
