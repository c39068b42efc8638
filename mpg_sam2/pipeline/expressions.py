"""Checking and tokenising the referring expressions of one request."""
from __future__ import annotations

import unicodedata
import warnings
from dataclasses import dataclass
from typing import Sequence

import torch

from mpg_sam2.tokenizer import ReferringTokenizer


class ExpressionError(ValueError):
    """An expression cannot be used; the message says which one and why."""


@dataclass(frozen=True)
class PreparedExpression:
    text: str  # as given, surrounding whitespace removed
    input_ids: torch.Tensor  # [1, L] int64
    attention_mask: torch.Tensor  # [1, L] bool (ids != pad, the authors' convention)
    truncated: bool  # cut to the tokenizer limit


def _expression_key(text: str) -> str:
    # Same words up to Unicode compatibility forms, case and spacing: a repeated request.
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def prepare_expressions(
    texts: Sequence[str], tokenizer: ReferringTokenizer, max_tokens: int | None = None
) -> list[PreparedExpression]:
    """Strip, validate and tokenise; non-ASCII text is fine (sentencepiece handles it).

    Raises :class:`ExpressionError` for no expressions, an empty one, or a repeated one (same
    words ignoring case and spacing). An expression longer than the model's text limit is cut
    to ``max_tokens`` with a warning.
    """
    if isinstance(texts, str):
        texts = [texts]
    if not texts:
        raise ExpressionError("no referring expression given; pass at least one sentence such as 'the dog on the left'")
    seen: dict[str, int] = {}
    prepared = []
    limit = min(max_tokens, tokenizer.max_tokens) if max_tokens is not None else tokenizer.max_tokens
    for i, raw in enumerate(texts):
        if not isinstance(raw, str):
            raise ExpressionError(f"expression {i + 1} is a {type(raw).__name__}, not text")
        text = raw.strip()
        if not text:
            raise ExpressionError(f"expression {i + 1} is empty; write a sentence that names the object")
        key = _expression_key(text)
        if key in seen:
            raise ExpressionError(
                f"expression {i + 1} ({text!r}) repeats expression {seen[key] + 1}; remove the duplicate"
            )
        seen[key] = i
        full_length = len(tokenizer.backend(text, add_special_tokens=True, verbose=False)["input_ids"])
        truncated = full_length > limit
        if truncated:
            warnings.warn(
                f"expression {i + 1} has {full_length} tokens; the model reads at most {limit}, so it was cut",
                stacklevel=2,
            )
        tokens = tokenizer.encode(text, max_length=limit if truncated else None)
        prepared.append(PreparedExpression(text, tokens.input_ids, tokens.attention_mask, truncated))
    return prepared


def prepare_distinct(
    texts: Sequence[str], tokenizer: ReferringTokenizer, max_tokens: int | None = None
) -> list[PreparedExpression]:
    """Each of ``texts`` tokenised on its own, for datasets rather than user requests: a video of
    a benchmark may hold sentences that differ only in case or spacing, which
    :func:`prepare_expressions` refuses as repeats. Pass each exact text once (the caller gives
    its masks to every expression that has it); each is checked as a request of one."""
    return [prepare_expressions([text], tokenizer, max_tokens=max_tokens)[0] for text in texts]
