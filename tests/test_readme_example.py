"""The README's Python example runs as written (on a tiny saved checkpoint and a random clip)."""
from __future__ import annotations

import re
from pathlib import Path

import sentencepiece as spm

from mpg_sam2.checkpoint.pretrained import save_pretrained
from mpg_sam2.checkpoint.tokenizer_files import load_tokenizer
from tiny_model import tiny_model
from tokenizer_factory import train_sentencepiece, write_authors_tokenizer_dir

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    code = next(b for b in blocks if "load_pretrained" in b)
    proto = train_sentencepiece()
    tok_dir = write_authors_tokenizer_dir(tmp_path / "tok", proto, spm.SentencePieceProcessor(model_proto=proto).get_piece_size())
    ckpt = save_pretrained(tiny_model(seed=4), tmp_path / "ckpt", tokenizer=load_tokenizer(tok_dir))
    assert '"path/to/checkpoint"' in code and "np.stack([...])" in code
    code = code.replace('"path/to/checkpoint"', repr(str(ckpt)))
    code = code.replace("np.stack([...])", "np.random.default_rng(0).integers(0, 256, (3, 30, 40, 3), dtype=np.uint8)")
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert namespace["mask"].shape == (30, 40)
    assert namespace["out"].frame_index == 2
    assert namespace["prior"].prior.shape == (3, 1, 4, 4)
