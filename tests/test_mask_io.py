"""mpg_sam2.mask_io: COCO RLE and polygons against pycocotools, label maps, mask PNGs read back."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dataset_factory import davis_palette as reference_palette
from mpg_sam2.mask_io import rle
from mpg_sam2.mask_io.label_map import label_map
from mpg_sam2.mask_io.png import davis_palette, read_binary_png, read_label_png, write_binary_png, write_label_png
from mpg_sam2.mask_io.polygon import polygon_to_mask

# --- RLE and polygons against pycocotools -------------------------------------------------------


def test_rle_round_trip_and_column_major():
    rng = np.random.default_rng(0)
    for shape in [(1, 1), (3, 5), (32, 48), (7, 1)]:
        for p in (0.0, 0.1, 0.5, 1.0):
            mask = rng.random(shape) < p
            for compressed in (True, False):
                np.testing.assert_array_equal(rle.decode(rle.encode(mask, compressed)), mask)
    # column-major: the first run of ones in a 2x2 with only the bottom-left pixel set starts at 1
    assert rle.encode(np.array([[0, 0], [1, 0]], bool), compressed=False)["counts"] == [1, 1, 2]
    assert rle.encode(np.array([[1, 1], [1, 1]], bool), compressed=False)["counts"] == [0, 4]
    with pytest.raises(ValueError, match="sum to"):
        rle.decode({"size": [2, 2], "counts": [1, 1]})


# pycocotools' decode warns under numpy 2 (its __array__ lacks a copy argument); harmless here.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_rle_and_polygons_match_pycocotools():
    mask_utils = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(1)
    for _ in range(40):
        h, w = (int(v) for v in rng.integers(1, 60, 2))
        mask = rng.random((h, w)) < rng.random()
        ref = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
        ours = rle.encode(mask)
        assert ours["counts"] == ref["counts"].decode() and ours["size"] == list(ref["size"])
        np.testing.assert_array_equal(rle.decode({"size": ref["size"], "counts": ref["counts"]}), mask)
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(1, 60, 2))
        k = int(rng.integers(3, 9))
        # Include vertices outside the image and on pixel corners/centres.
        poly = (rng.uniform(-5, max(h, w) + 5, 2 * k)).round(int(rng.integers(0, 3))).tolist()
        expected = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects([poly], h, w))).astype(bool)
        np.testing.assert_array_equal(polygon_to_mask(poly, h, w), expected, err_msg=f"{poly} {h}x{w}")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_rle_matches_pycocotools_on_edge_cases() -> None:
    mask_util = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(1)
    cases = [
        np.zeros((5, 7), bool),
        np.ones((5, 7), bool),
        rng.random((61, 97)) > 0.5,  # many short runs, negative differences
        rng.random((300, 400)) > 0.999,  # long runs: multi-group encodings
    ]
    corner = np.zeros((4, 4), bool)
    corner[0, 0] = True
    cases.append(corner)
    for m in cases:
        ours = rle.encode(m)
        theirs = mask_util.encode(np.asfortranarray(m.astype(np.uint8)))
        assert ours["counts"] == theirs["counts"].decode("ascii")
        assert ours["size"] == list(theirs["size"])
        np.testing.assert_array_equal(mask_util.decode({"size": ours["size"], "counts": ours["counts"]}), m)
    assert rle.mask_counts(corner)[:2] == [0, 1]
    assert rle.counts_to_string([0]) == "0"


# --- label maps and PNGs -------------------------------------------------------------------------


def test_label_maps_and_palette():
    a = np.zeros((2, 3), bool)
    a[0] = True
    b = np.zeros((2, 3), bool)
    b[:, 0] = True
    np.testing.assert_array_equal(label_map([a, b]), [[2, 1, 1], [2, 0, 0]])  # later wins
    assert davis_palette() == reference_palette()
    with pytest.raises(ValueError, match="1 to 254 objects, got 255"):
        label_map([a] * 255, max_label=254)
    with pytest.raises(ValueError, match="1 to 255 objects, got 0"):
        label_map([])


def test_pngs_read_back(tmp_path: Path):
    rng = np.random.default_rng(2)
    mask = rng.random((5, 7)) > 0.5
    write_binary_png(tmp_path / "m.png", mask)
    with Image.open(tmp_path / "m.png") as image:
        assert image.mode == "L" and set(np.unique(np.asarray(image))) <= {0, 255}
    np.testing.assert_array_equal(read_binary_png(tmp_path / "m.png"), mask)

    labels = rng.integers(0, 4, (5, 7)).astype(np.uint8)
    write_label_png(tmp_path / "l.png", labels)
    with Image.open(tmp_path / "l.png") as image:
        assert image.mode == "P" and image.getpalette()[:6] == reference_palette()[:6]
    np.testing.assert_array_equal(read_label_png(tmp_path / "l.png"), labels)
    write_label_png(tmp_path / "c.png", labels, palette=[9, 8, 7] * 256)
    with Image.open(tmp_path / "c.png") as image:
        assert image.getpalette()[:6] == [9, 8, 7, 9, 8, 7]

    with pytest.raises(FileNotFoundError, match=r"label PNG .*gone.png is missing; predict first"):
        read_label_png(tmp_path / "gone.png", missing_hint="predict first")
    with pytest.raises(FileNotFoundError, match=r"mask PNG .*gone.png is missing$"):
        read_binary_png(tmp_path / "gone.png")
    Image.new("RGB", (3, 2)).save(tmp_path / "rgb.png")
    with pytest.raises(ValueError, match="PIL mode RGB"):
        read_label_png(tmp_path / "rgb.png")
    # A 1-bit PNG (as some tools write a single object) reads as labels 0 / 1.
    Image.fromarray(mask).convert("1").save(tmp_path / "bit.png")
    bits = read_label_png(tmp_path / "bit.png")
    assert bits.dtype == np.uint8
    np.testing.assert_array_equal(bits, mask.astype(np.uint8))
