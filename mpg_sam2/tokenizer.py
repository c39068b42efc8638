"""Text tokenisation for referring expressions (BEiT-3's XLM-R style sentencepiece tokenizer).

A checkpoint directory carries the tokenizer the authors saved: ``sentencepiece.bpe.model`` (BEiT-3's
``beit3.spm``) with ``tokenizer_config.json`` (``tokenizer_class: XLMRobertaTokenizer``). Ids follow
the fairseq convention: ``<s>`` = 0, ``<pad>`` = 1, ``</s>`` = 2, ``<unk>`` = 3, and sentencepiece
piece ``i`` (> 0) becomes ``i + 1``; an expression becomes ``[0, pieces..., 2]``.

Two quirks of the authors' code are kept on purpose, because their checkpoints were trained with
them (SPEC section 2):

* the pad token is set to the unk token, so ``pad_token_id == 3`` and the attention mask is
  ``input_ids != 3``: an ``<unk>`` piece inside an expression is masked out of BEiT-3 attention,
  while the real ``<pad>`` id 1 would count as an ordinary token;
* a ``[SEG]`` token is added to the vocabulary but never inserted into a prompt.

Reading and writing the tokenizer files of a checkpoint: :mod:`mpg_sam2.checkpoint.tokenizer_files`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "PAD_TOKEN_ID",
    "SEG_TOKEN",
    "ReferringTokenizer",
    "TokenizedText",
    "attention_mask_from_ids",
]

# BEiT-3's text position table has 1024 rows and text positions start at index 2 (fairseq's
# padding offset), so at most 1022 tokens (including <s> and </s>) have a position embedding.
DEFAULT_MAX_TOKENS = 1022
# The authors set pad = unk after loading; the ids below are the XLM-R/fairseq specials.
PAD_TOKEN_ID = 3
_EXPECTED_SPECIAL_IDS = {"bos_token_id": 0, "eos_token_id": 2, "unk_token_id": 3}
SEG_TOKEN = "[SEG]"


@dataclass(frozen=True)
class TokenizedText:
    """One tokenised expression.

    Attributes:
        input_ids: int64 ``[1, L]``, ``[0, pieces..., 2]``.
        attention_mask: bool ``[1, L]``, ``input_ids != 3`` (True = attend).
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    def __post_init__(self) -> None:
        if self.input_ids.dim() != 2 or self.input_ids.shape[0] != 1:
            raise ValueError(f"input_ids must have shape [1, L], got {tuple(self.input_ids.shape)}")
        if self.input_ids.dtype != torch.int64:
            raise ValueError(f"input_ids must be int64, got {self.input_ids.dtype}")
        if self.attention_mask.shape != self.input_ids.shape or self.attention_mask.dtype != torch.bool:
            raise ValueError(
                f"attention_mask must be bool with the shape of input_ids {tuple(self.input_ids.shape)}, "
                f"got {self.attention_mask.dtype} {tuple(self.attention_mask.shape)}"
            )

    @property
    def length(self) -> int:
        """Number of tokens L, including ``<s>`` and ``</s>``."""
        return int(self.input_ids.shape[1])


def attention_mask_from_ids(input_ids: torch.Tensor, pad_token_id: int = PAD_TOKEN_ID) -> torch.Tensor:
    """The authors' attention mask: every token that is not the pad (= unk) id.

    Args:
        input_ids: integer ids ``[B, L]`` (any shape works).
        pad_token_id: 3 for the authors' tokenizer (pad = unk).

    Returns:
        bool tensor of the same shape, True = attend.
    """
    if input_ids.is_floating_point() or input_ids.is_complex() or input_ids.dtype == torch.bool:
        raise ValueError(f"input_ids must be an integer tensor, got {input_ids.dtype}")
    return input_ids != pad_token_id


class ReferringTokenizer:
    """A transformers XLM-R tokenizer set up the way the authors used it.

    Wrapping applies the authors' two quirks to ``backend`` in place: pad token = unk token, and
    ``[SEG]`` added to the vocabulary (a no-op if it is already there).

    Args:
        backend: a loaded transformers tokenizer with XLM-R ids (``<s>`` 0, ``</s>`` 2, ``<unk>`` 3).
        max_tokens: longest tokenised expression accepted by :meth:`encode` (BEiT-3: 1022).
    """

    def __init__(self, backend: PreTrainedTokenizerBase, max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
        if max_tokens < 2:
            raise ValueError(f"max_tokens must be at least 2 (<s> and </s>), got {max_tokens}")
        wrong = {
            attr: getattr(backend, attr, None)
            for attr, expected in _EXPECTED_SPECIAL_IDS.items()
            if getattr(backend, attr, None) != expected
        }
        if wrong:
            raise RuntimeError(
                f"tokenizer {type(backend).__name__} has special ids {wrong}, but the model expects the "
                f"XLM-R/fairseq ids {_EXPECTED_SPECIAL_IDS}; is this BEiT-3's sentencepiece tokenizer "
                "(sentencepiece.bpe.model with tokenizer_class XLMRobertaTokenizer)?"
            )
        # The authors' checkpoints were trained with pad = unk, so that the attention mask
        # `ids != pad_token_id` also hides unknown pieces; keep it for identical behaviour.
        backend.pad_token = backend.unk_token
        # Added as the authors do; it is never put into a prompt, so it only changes len(backend).
        backend.add_tokens([SEG_TOKEN])
        self._backend = backend
        self.max_tokens = max_tokens

    @property
    def backend(self) -> PreTrainedTokenizerBase:
        """The wrapped transformers tokenizer."""
        return self._backend

    @property
    def pad_token_id(self) -> int:
        """3: the unk id, used as padding by the authors."""
        return int(self._backend.pad_token_id)

    @property
    def seg_token_id(self) -> int:
        """Id of the (unused) ``[SEG]`` token."""
        return int(self._backend.convert_tokens_to_ids(SEG_TOKEN))

    def __len__(self) -> int:
        """Vocabulary size including added tokens."""
        return len(self._backend)

    def encode(self, text: str, max_length: int | None = None) -> TokenizedText:
        """Tokenise one referring expression.

        Args:
            text: the expression; an empty string gives ``[0, 2]``.
            max_length: if given, truncate to this many tokens (``</s>`` is kept). The authors
                truncate only in training (to 512); inference uses the whole expression.

        Returns:
            :class:`TokenizedText` with ``input_ids`` int64 ``[1, L]`` and ``attention_mask``
            bool ``[1, L]``.

        Raises:
            ValueError: ``text`` is not a string, ``max_length`` < 2, or the result is longer than
                ``max_tokens``.
        """
        if not isinstance(text, str):
            raise ValueError(f"text must be a str, got {type(text).__name__}")
        kwargs: dict[str, Any] = {"add_special_tokens": True, "truncation": False}
        if max_length is not None:
            if max_length < 2:
                raise ValueError(f"max_length must be at least 2 (<s> and </s>), got {max_length}")
            kwargs.update(truncation=True, max_length=max_length)
        # verbose=False: the saved model_max_length (512, the training length) is not a limit at
        # inference; our own check below is the one that matters.
        ids = list(self._backend(text, verbose=False, **kwargs)["input_ids"])
        if len(ids) > self.max_tokens:
            raise ValueError(
                f"the expression has {len(ids)} tokens but at most {self.max_tokens} fit BEiT-3's text "
                f"position table; shorten it or pass max_length={self.max_tokens} to truncate"
            )
        input_ids = torch.tensor([ids], dtype=torch.int64)
        return TokenizedText(input_ids=input_ids, attention_mask=attention_mask_from_ids(input_ids, self.pad_token_id))
