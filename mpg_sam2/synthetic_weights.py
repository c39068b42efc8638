"""Deterministic synthetic weights for any state-dict layout.

Tests and the reference comparison need weights that two independent implementations of the same
architecture can both load and that give bit-identical numbers on every machine, numpy and torch
version. A framework's random generator cannot promise that, so every value here comes from integer
hashing only: element ``i`` of entry ``name`` is ``splitmix64(i + (key << 32))`` with
``key = (crc32(utf8(name)) ^ (seed * 0x9E3779B1)) mod 2**32``. The top 53 bits become a uniform
number on [-sqrt(3), sqrt(3)] (mean 0, variance 1), which is then scaled by what the entry is
(see :func:`synth_tensor`).

The values match the reference ``synth_weights.py`` used to make the reference fixtures bit for
bit, so the fixtures can be reproduced from ``(layout, seed)`` alone.

A layout file lists one state-dict entry per line::

    visual_model.no_mem_embed [1,1,256] float32
    some.scalar [] float32
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["layout_numel", "read_layout", "synth_state_dict", "synth_tensor", "unit_uniform"]

# Elements hashed per step. The hash needs a few uint64/float64 temporaries per element, so
# generating a 65M-entry embedding table in one go would need gigabytes; chunks keep the peak at
# the float32 output plus a few MB, stay in cache (as fast as one big step), and cannot change
# the result (each element depends on its index only).
_CHUNK = 1 << 16

_GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_SEED_MULTIPLIER = 0x9E3779B1
_SQRT3 = math.sqrt(3.0)

_LAYOUT_LINE = re.compile(r"^(?P<name>\S+)\s+\[(?P<dims>[^\]]*)\]\s+(?P<dtype>[A-Za-z][A-Za-z0-9_]*)$")


def _check_shape(name: str, shape: Sequence[int]) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape of {name!r} must be a sequence of ints, got {shape!r}") from None
    if any(d < 0 for d in dims) or any(int(d) != d for d in shape):
        raise ValueError(f"shape of {name!r} must hold non-negative ints, got {tuple(shape)!r}")
    return dims


def _entry_key(name: str, seed: int) -> int:
    """The 32-bit stream key of one entry; Python ints so that any seed (also negative or
    larger than 64 bits) reduces the same way as in the reference."""
    return (zlib.crc32(name.encode("utf-8")) ^ (int(seed) * _SEED_MULTIPLIER)) & 0xFFFFFFFF


def _splitmix64_(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser applied in place to a uint64 array (wrap-around is intended)."""
    x += _GOLDEN_GAMMA
    x ^= x >> np.uint64(30)
    x *= _MIX1
    x ^= x >> np.uint64(27)
    x *= _MIX2
    x ^= x >> np.uint64(31)
    return x


def _unit_uniform_chunk(base: np.uint64, start: int, stop: int) -> np.ndarray:
    """Elements ``start:stop`` of an entry's stream as float64 on [-sqrt3, sqrt3]."""
    idx = np.arange(start, stop, dtype=np.uint64)
    idx += base
    bits = _splitmix64_(idx)
    bits >>= np.uint64(11)  # keep 53 bits: exactly representable in float64
    u = bits.astype(np.float64) * (2.0**-53)
    # Same float64 operations, in the same order, as the reference; reordering them (e.g. folding
    # sqrt3 into the scale) would change the last bit of some values.
    return (2.0 * u - 1.0) * _SQRT3


def unit_uniform(name: str, shape: Sequence[int], seed: int = 0) -> np.ndarray:
    """Unscaled values of one entry: uniform on [-sqrt(3), sqrt(3)] (mean 0, variance 1).

    Args:
        name: state-dict key; it selects the hash stream.
        shape: tensor shape, ``()`` for a scalar.
        seed: any int; different seeds give unrelated streams.

    Returns:
        float64 array of ``shape``.
    """
    return _fill(name, shape, seed, np.float64, lambda dims, x: x)


def _fill(
    name: str, shape: Sequence[int], seed: int, dtype: type, transform: Callable[[tuple[int, ...], np.ndarray], np.ndarray]
) -> np.ndarray:
    """The entry's stream chunk by chunk (bounded float64 temporaries), ``transform(dims, x)``
    applied in float64 and stored as ``dtype``."""
    dims = _check_shape(name, shape)
    n = math.prod(dims)
    base = np.uint64(_entry_key(name, seed)) << np.uint64(32)
    out = np.empty(n, dtype=dtype)
    for start in range(0, n, _CHUNK):
        stop = min(n, start + _CHUNK)
        out[start:stop] = transform(dims, _unit_uniform_chunk(base, start, stop))
    return out.reshape(dims)


def _scale(name: str, dims: tuple[int, ...], x: np.ndarray) -> np.ndarray:
    """Scale unit values by the kind of entry, in float64, as the reference does."""
    leaf = name.rsplit(".", 1)[-1]
    if leaf.endswith("gaussian_matrix"):
        # SAM's random Fourier features are drawn from N(0, 1) upstream: keep unit variance.
        return x
    if leaf.endswith("weight") and len(dims) >= 2:
        # Linear and conv kernels: variance 1/fan_in keeps activations O(1) through deep stacks.
        return x / math.sqrt(max(1, math.prod(dims[1:])))
    if leaf.endswith("weight"):
        # 1-d weights are norm gains: near 1, but not exactly 1 so that a missed gain shows up.
        return 1.0 + 0.1 * x
    # Biases, embeddings, tokens and positional tables: small, like their usual init.
    return 0.02 * x


def synth_tensor(name: str, shape: Sequence[int], seed: int = 0) -> np.ndarray:
    """Deterministic float32 values for one state-dict entry.

    Scaling by entry kind (``leaf`` is the part of ``name`` after the last dot):

    * ``leaf`` ends with ``gaussian_matrix``: ``x``;
    * ``leaf`` ends with ``weight`` and 2+ dims (matrices, kernels): ``x / sqrt(fan_in)`` with
      ``fan_in = prod(shape[1:])``;
    * ``leaf`` ends with ``weight``, 0 or 1 dims (norm gains): ``1 + 0.1 x``;
    * anything else (``bias``, embeddings, tokens, positional tables): ``0.02 x``.

    Args:
        name: state-dict key, e.g. ``"visual_model.no_mem_embed"``.
        shape: tensor shape, e.g. ``(1, 1, 256)``; ``()`` for a scalar.
        seed: any int.

    Returns:
        float32 array of ``shape``, bit-identical for the same (name, shape, seed) everywhere.
    """
    return _fill(name, shape, seed, np.float32, lambda dims, x: _scale(name, dims, x))


def synth_state_dict(layout: Mapping[str, Sequence[int]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Synthetic float32 weights for a whole layout.

    Args:
        layout: ``{name: shape}``, e.g. from :func:`read_layout` or
            ``{k: tuple(v.shape) for k, v in model.state_dict().items() if v.is_floating_point()}``.
        seed: any int.

    Returns:
        ``{name: float32 CPU tensor}`` in the order of ``layout``; each tensor owns its memory.
    """
    import torch  # lazily: the numpy part is usable without loading torch

    return {name: torch.from_numpy(synth_tensor(name, shape, seed)) for name, shape in layout.items()}


def read_layout(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Parse a layout file: one ``<name> [<d0>,<d1>,...] <dtype>`` per line.

    ``[]`` denotes a scalar. Blank lines and lines starting with ``#`` are skipped. The dtype is
    checked for form only (the synthetic weights are always float32).

    Args:
        path: the layout text file.

    Returns:
        ``{name: shape}`` in file order.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: a line is malformed or a name repeats; the message gives the line number.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"layout file {str(path)!r} does not exist")
    layout: dict[str, tuple[int, ...]] = {}
    with path.open(encoding="utf-8") as f:
        for lineno, raw in enumerate(f, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            match = _LAYOUT_LINE.match(line)
            if match is None:
                raise ValueError(
                    f"{path}:{lineno}: malformed layout line {line!r}; expected "
                    "'<name> [<d0>,<d1>,...] <dtype>', e.g. 'proj.weight [256,1024] float32' "
                    "('[]' for a scalar)"
                )
            name, dims_text = match.group("name"), match.group("dims").strip()
            try:
                dims = tuple(int(d) for d in dims_text.split(",")) if dims_text else ()
            except ValueError:
                raise ValueError(
                    f"{path}:{lineno}: bad shape [{dims_text}] for {name!r}; dimensions must be "
                    "comma-separated non-negative integers"
                ) from None
            if any(d < 0 for d in dims):
                raise ValueError(f"{path}:{lineno}: negative dimension in shape {dims} of {name!r}")
            if name in layout:
                raise ValueError(f"{path}:{lineno}: entry {name!r} appears twice in the layout")
            layout[name] = dims
    return layout


def layout_numel(layout: Mapping[str, Sequence[int]]) -> int:
    """Total number of values in a layout (a scalar counts as 1)."""
    return sum(math.prod(int(d) for d in shape) for shape in layout.values())
