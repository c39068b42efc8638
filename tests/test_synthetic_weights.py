"""Synthetic weights must be bit-identical to the reference generator that made the fixtures.

The expected hashes in ``fixtures/synthetic_weights_expected.json`` were produced once with the
reference ``synth_weights.py``; when that file is available (``/work/shared/reference``) a second
test also compares against it directly on random names, shapes and seeds.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from mpg_sam2.synthetic_weights import layout_numel, read_layout, synth_state_dict, synth_tensor, unit_uniform

FIXTURES = Path(__file__).parent / "fixtures"
REFERENCE_SYNTH = Path("/work/shared/reference/synth_weights.py")
EXPECTED = json.loads((FIXTURES / "synthetic_weights_expected.json").read_text(encoding="utf-8"))["entries"]


def _sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype="<f4").tobytes()).hexdigest()


@pytest.mark.parametrize("entry", EXPECTED, ids=lambda e: f"{e['name']}{e['shape']}@{e['seed']}")
def test_matches_stored_hashes(entry: dict) -> None:
    a = synth_tensor(entry["name"], tuple(entry["shape"]), entry["seed"])
    assert a.dtype == np.float32
    assert a.shape == tuple(entry["shape"])
    flat = a.reshape(-1)
    assert [f"{int(v):08x}" for v in flat[:4].view(np.uint32)] == entry["first_bits"]
    assert _sha256(a) == entry["sha256"]


def test_exact_values_and_scaling_rules() -> None:
    # Bit patterns written out so a reader can see the numbers without the JSON.
    assert synth_tensor("logit_scale", ()).view(np.uint32) == np.uint32(0x3CABA04F)
    assert synth_tensor("logit_scale.weight", ()).view(np.uint32) == np.uint32(0x3F7684F1)
    # The stream depends on name and seed only; the kind of entry only rescales it.
    x = unit_uniform("mask_linear.bias", (1024,), seed=9)
    assert np.abs(x).max() <= np.sqrt(3.0)
    np.testing.assert_array_equal(
        synth_tensor("a.bias", (6,), 3), (0.02 * unit_uniform("a.bias", (6,), 3)).astype(np.float32)
    )
    np.testing.assert_array_equal(
        synth_tensor("a.weight", (6,), 3), (1.0 + 0.1 * unit_uniform("a.weight", (6,), 3)).astype(np.float32)
    )
    w = synth_tensor("proj.weight", (8, 4, 3, 3), 1)
    np.testing.assert_array_equal(w, (unit_uniform("proj.weight", (8, 4, 3, 3), 1) / 6.0).astype(np.float32))
    g = synth_tensor("pe.positional_encoding_gaussian_matrix", (2, 4), 1)
    expected = unit_uniform("pe.positional_encoding_gaussian_matrix", (2, 4), 1).astype(np.float32)
    np.testing.assert_array_equal(g, expected)


def test_chunking_does_not_change_values(monkeypatch: pytest.MonkeyPatch) -> None:
    import mpg_sam2.synthetic_weights as sw

    expected = synth_tensor("mask_linear.weight", (300, 70), seed=5)
    monkeypatch.setattr(sw, "_CHUNK", 1000)  # many chunks, the last one partial
    np.testing.assert_array_equal(synth_tensor("mask_linear.weight", (300, 70), seed=5), expected)


def test_synth_state_dict_types_and_order() -> None:
    layout = {"b.bias": (3,), "a.weight": [2, 5], "s": ()}
    sd = synth_state_dict(layout, seed=9)
    assert list(sd) == list(layout)
    for name, shape in layout.items():
        assert sd[name].dtype == torch.float32
        assert tuple(sd[name].shape) == tuple(shape)
        np.testing.assert_array_equal(sd[name].numpy(), synth_tensor(name, tuple(shape), 9))


def test_bad_shape_is_rejected() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        synth_tensor("a.weight", (2, -1))
    with pytest.raises(ValueError, match="sequence of ints"):
        synth_tensor("a.weight", ("two",))  # type: ignore[arg-type]


@pytest.mark.skipif(not REFERENCE_SYNTH.is_file(), reason=f"reference generator {REFERENCE_SYNTH} not available")
def test_bit_identical_to_reference_generator() -> None:
    spec = importlib.util.spec_from_file_location("_reference_synth_weights", REFERENCE_SYNTH)
    assert spec is not None and spec.loader is not None
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)

    rng = random.Random(1234)
    leaves = ["weight", "bias", "positional_encoding_gaussian_matrix", "cls_token", "A.weight", "gamma", "weights"]
    for _ in range(60):
        parts = ["encoder", "layers", str(rng.randrange(40)), "proj", "ü", "層"]
        name = ".".join(rng.choice(parts) for _ in range(3))
        name = f"{name}.{rng.choice(leaves)}"
        shape = tuple(rng.randrange(0, 9) for _ in range(rng.randrange(0, 5)))
        seed = rng.choice([0, 9, rng.randrange(2**31), rng.randrange(2**70), -rng.randrange(1, 10**6)])
        ours = synth_tensor(name, shape, seed)
        theirs = reference.synth_tensor(name, shape, seed)
        assert ours.dtype == theirs.dtype == np.float32
        assert ours.shape == theirs.shape
        assert ours.tobytes() == theirs.tobytes(), (name, shape, seed)

    layout = read_layout(FIXTURES / "layout_mini.txt")
    small = dict(list(layout.items())[:40])
    ours_sd, theirs_sd = synth_state_dict(small, seed=9), reference.synth_state_dict(small, seed=9)
    for name in small:
        assert torch.equal(ours_sd[name], theirs_sd[name]), name


@pytest.mark.parametrize(
    ("filename", "entries", "numel"),
    [("layout_mini.txt", 627, 114_756_036), ("layout_release_large.txt", 1939, 919_446_836)],
)
def test_read_layout_fixtures(filename: str, entries: int, numel: int) -> None:
    layout = read_layout(FIXTURES / filename)
    assert len(layout) == entries
    assert layout_numel(layout) == numel
    assert all(isinstance(d, int) for shape in layout.values() for d in shape)


def test_read_layout_release_entries() -> None:
    layout = read_layout(FIXTURES / "layout_release_large.txt")
    assert layout["mm_extractor.beit3.text_embed.weight"] == (64010, 1024)
    assert layout["mm_extractor.beit3.encoder.embed_positions.B.weight"] == (1024, 1024)
    assert layout["visual_model.sam_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"] == (2, 128)


def test_read_layout_scalars_comments_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text("# comment\nlogit_scale [] float32\n\nproj.weight [4, 3] float32\n", encoding="utf-8")
    assert read_layout(good) == {"logit_scale": (), "proj.weight": (4, 3)}

    for bad_line, message in [
        ("proj.weight [4,3]", "malformed layout line"),
        ("proj.weight 4,3 float32", "malformed layout line"),
        ("proj.weight [4,x] float32", "bad shape"),
        ("proj.weight [4,-3] float32", "negative dimension"),
    ]:
        bad = tmp_path / "bad.txt"
        bad.write_text(f"ok.bias [3] float32\n{bad_line}\n", encoding="utf-8")
        with pytest.raises(ValueError, match=message) as info:
            read_layout(bad)
        assert ":2:" in str(info.value)  # the line number is reported

    dup = tmp_path / "dup.txt"
    dup.write_text("a [1] float32\na [1] float32\n", encoding="utf-8")
    with pytest.raises(ValueError, match="appears twice"):
        read_layout(dup)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_layout(tmp_path / "missing.txt")
