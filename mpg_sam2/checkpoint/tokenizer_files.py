"""The tokenizer files of a checkpoint: reading them into a :class:`ReferringTokenizer` and
writing them back, with the authors' settings (SPEC section 2).

transformers 5 has no pure-sentencepiece ("slow") XLM-R tokenizer any more: loading converts the
sentencepiece model into a ``tokenizers`` backend, which needs ``protobuf`` and ``sentencepiece``.
transformers 4.46+ loads the slow sentencepiece tokenizer (``use_fast=False``, as the authors did).
Both give the same ids for a Unigram sentencepiece model (XLM-R's kind); transformers 5 reads
every XLM-R model as Unigram, so for a BPE-trained model the ids can differ and we warn.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import warnings
from pathlib import Path
from typing import Any

from mpg_sam2.checkpoint.files import SENTENCEPIECE_FILE, TOKENIZER_CONFIG_FILE, TOKENIZER_JSON_FILE, has_tokenizer
from mpg_sam2.tokenizer import DEFAULT_MAX_TOKENS, ReferringTokenizer

__all__ = ["load_tokenizer", "save_tokenizer"]

# Keys transformers 5 writes into tokenizer_config.json that describe how it was loaded rather
# than the tokenizer; leaving them in would make a saved directory claim "local files only".
_LOAD_TIME_KEYS = ("is_local", "local_files_only")


def _module_available(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a missing parent package, e.g. "google" for "google.protobuf"
        return False


def _transformers_major() -> int:
    if not _module_available("transformers"):
        raise RuntimeError("loading the tokenizer needs transformers: pip install 'transformers>=4.46'")
    import transformers

    return int(transformers.__version__.split(".")[0])


def _check_backend_packages(directory: Path, transformers_major: int) -> None:
    """Fail early with the fix when the packages the tokenizer files need are missing.

    transformers 5 converts the sentencepiece model (no tokenizer.json) with protobuf; without it
    it falls back to a tiktoken reader and fails with a confusing "tiktoken is required" message.
    transformers 4 with ``use_fast=False`` always runs sentencepiece.
    """
    needed: list[str] = []
    if transformers_major < 5:
        needed = ["sentencepiece"]
    elif not (directory / TOKENIZER_JSON_FILE).is_file():
        needed = ["sentencepiece", "google.protobuf"]
    missing = [name for name in needed if not _module_available(name)]
    if missing:
        packages = " ".join("protobuf" if name == "google.protobuf" else name for name in missing)
        raise RuntimeError(
            f"the tokenizer in {directory} is a sentencepiece model, and reading it with transformers "
            f"{transformers_major}.x needs {packages!s}, which is not installed: pip install {packages}"
        )


def _sentencepiece_model_type(path: Path) -> str | None:
    """"UNIGRAM", "BPE", ... from the model's trainer spec; None if it cannot be read."""
    try:
        from sentencepiece import sentencepiece_model_pb2 as model_pb2

        proto = model_pb2.ModelProto()
        proto.ParseFromString(path.read_bytes())
        return str(model_pb2.TrainerSpec.ModelType.Name(proto.trainer_spec.model_type))
    except Exception:  # an unreadable file is reported by the loader itself
        return None


def _warn_if_not_unigram(directory: Path, transformers_major: int) -> None:
    """transformers 5 always turns an XLM-R sentencepiece model into a Unigram tokenizer; for a
    BPE-trained model that segments differently from sentencepiece (and from the authors'
    transformers 4 tokenizer), so the ids would not be the ones the checkpoint was trained on."""
    spm_path = directory / SENTENCEPIECE_FILE
    if transformers_major < 5 or not spm_path.is_file():
        return
    model_type = _sentencepiece_model_type(spm_path)
    if model_type is not None and model_type != "UNIGRAM":
        warnings.warn(
            f"{spm_path} is a {model_type} sentencepiece model, but transformers {transformers_major}.x "
            "reads XLM-R tokenizers as Unigram, which can give different ids than sentencepiece; "
            "compare the ids with sentencepiece (id + 1) or use transformers 4.x",
            RuntimeWarning,
            stacklevel=3,
        )


def load_tokenizer(directory: str | Path, max_tokens: int = DEFAULT_MAX_TOKENS) -> ReferringTokenizer:
    """Load the tokenizer stored in a checkpoint directory, with the authors' settings.

    Args:
        directory: folder holding ``sentencepiece.bpe.model`` and/or ``tokenizer.json`` (plus
            ``tokenizer_config.json``), e.g. a checkpoint directory.
        max_tokens: longest accepted tokenised expression (BEiT-3: 1022).

    Returns:
        a :class:`ReferringTokenizer` with ``pad_token_id == 3`` and ``[SEG]`` in its vocabulary.

    Raises:
        FileNotFoundError: the directory does not exist or holds no tokenizer files.
        RuntimeError: transformers, sentencepiece or protobuf is missing, or loading failed.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"tokenizer directory {str(directory)!r} does not exist or is not a directory")
    # Without tokenizer.json or the sentencepiece model, transformers 5 silently builds a
    # 5-token vocabulary from the config alone; refuse instead.
    if not has_tokenizer(directory):
        found = sorted(p.name for p in directory.iterdir())
        raise FileNotFoundError(
            f"no tokenizer in {directory}: expected {SENTENCEPIECE_FILE} (BEiT-3's sentencepiece model) "
            f"or {TOKENIZER_JSON_FILE}, next to {TOKENIZER_CONFIG_FILE}; found {found or 'nothing'}. "
            "Point to the checkpoint directory that was saved with its tokenizer."
        )
    major = _transformers_major()
    _check_backend_packages(directory, major)
    _warn_if_not_unigram(directory, major)

    from transformers import AutoTokenizer, XLMRobertaTokenizer

    # use_fast=False is what the authors passed (transformers 4: the sentencepiece tokenizer;
    # transformers 5 ignores it). Local files only and never remote code.
    # pad_token="<pad>": the authors' saved config says pad_token "<unk>". transformers 5 builds
    # the vocabulary from the sentencepiece model with the configured pad token in slot 1, so it
    # would put a second "<unk>" at id 1 and re-add "<pad>" as a new token after "<mask>",
    # shifting [SEG] by one. Loading with the real pad token and switching pad to unk afterwards
    # (ReferringTokenizer) gives the authors' vocabulary in transformers 4 and 5 alike.
    kwargs: dict[str, Any] = {
        "use_fast": False,
        "padding_side": "right",
        "pad_token": "<pad>",
        "local_files_only": True,
        "trust_remote_code": False,
    }
    try:
        config_path = directory / TOKENIZER_CONFIG_FILE
        named = json.loads(config_path.read_text(encoding="utf-8")).get("tokenizer_class", "") if config_path.is_file() else ""
        if config_path.is_file() and not named.startswith("XLMRoberta"):
            backend = AutoTokenizer.from_pretrained(str(directory), **kwargs)
        else:
            # The XLM-R class is named directly: AutoTokenizer would also read the checkpoint's
            # config.json, whose model type ("evf", "mpg_sam2") transformers does not know.
            kwargs.pop("use_fast")
            backend = XLMRobertaTokenizer.from_pretrained(str(directory), **kwargs)
    except Exception as error:  # transformers raises many types here; keep the cause attached
        raise RuntimeError(f"could not load the tokenizer in {directory}: {type(error).__name__}: {error}") from error
    return ReferringTokenizer(backend, max_tokens=max_tokens)


def save_tokenizer(tokenizer: ReferringTokenizer, directory: str | Path) -> list[Path]:
    """Write the tokenizer files so that :func:`load_tokenizer` gives the same tokenizer back.

    Writes what ``save_pretrained`` of the installed transformers writes (transformers 5:
    ``tokenizer.json`` + ``tokenizer_config.json``; transformers 4: the sentencepiece model,
    ``tokenizer_config.json``, ``special_tokens_map.json``, ...) and, when the tokenizer was loaded
    from a sentencepiece model, copies that model as ``sentencepiece.bpe.model`` too, so the
    directory also loads with an older transformers.

    Args:
        tokenizer: the tokenizer to save.
        directory: target folder, created if needed; existing tokenizer files are overwritten.

    Returns:
        the files written, sorted.
    """
    if not isinstance(tokenizer, ReferringTokenizer):
        raise ValueError(f"save_tokenizer expects a ReferringTokenizer, got {type(tokenizer).__name__}")
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"{directory} exists and is not a directory; choose another path")
    directory.mkdir(parents=True, exist_ok=True)
    backend = tokenizer.backend
    written = {Path(p) for p in backend.save_pretrained(str(directory))}

    source = getattr(backend, "vocab_file", None)
    target = directory / SENTENCEPIECE_FILE
    if source and Path(source).is_file() and Path(source).resolve() != target.resolve():
        shutil.copyfile(source, target)
        written.add(target)

    config_path = directory / TOKENIZER_CONFIG_FILE
    if config_path.is_file():
        config = json.loads(config_path.read_text(encoding="utf-8"))
        cleaned = {k: v for k, v in config.items() if k not in _LOAD_TIME_KEYS}
        # transformers 5 lists <s> and </s> again as "extra_special_tokens" (a list); transformers
        # 4.47+ expects a dict there and fails on a list. They are bos/eos already: drop the list.
        extra = cleaned.get("extra_special_tokens")
        named = {str(cleaned.get(key)) for key in ("bos_token", "eos_token", "unk_token", "sep_token",
                                                   "pad_token", "cls_token", "mask_token")}
        if isinstance(extra, list) and all(str(token) in named for token in extra):
            del cleaned["extra_special_tokens"]
        if cleaned != config:
            config_path.write_text(json.dumps(cleaned, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return sorted(p for p in written if p.is_file())
