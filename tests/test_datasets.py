"""Dataset readers on tiny datasets written in each benchmark's on-disk format."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from dataset_factory import HEIGHT, REFCOCO_POLYGON, WIDTH, write_mevis, write_ref_davis17, write_ref_youtube_vos, write_refcoco
from mpg_sam2.data import (
    MaskSource,
    ReferringDataset,
    load_masks,
    load_mevis,
    load_ref_davis17,
    load_ref_youtube_vos,
    load_refcoco,
)
from mpg_sam2.data.refcoco import read_refs
from mpg_sam2.mask_io.polygon import polygons_to_mask


def check_against(dataset: ReferringDataset, fake) -> None:
    """Texts, frames and (where present) masks of every expression equal what the factory wrote."""
    for video in dataset.videos:
        assert list(video.frame_names) == fake.frames[video.video_id]
        assert all(p.is_file() for p in video.frame_paths)
        assert video.read_frame(0).shape == (HEIGHT, WIDTH, 3)
        for sample in video.expressions:
            assert sample.video_id == video.video_id
            assert sample.frame_names == video.frame_names
            assert sample.expression == fake.expressions[(video.video_id, sample.expression_id)]
            if sample.masks is not None:
                assert isinstance(sample.masks, MaskSource)
                assert len(sample.masks) == sample.num_frames
                got = load_masks(sample.masks)
                assert got.dtype == bool and got.shape == (sample.num_frames, HEIGHT, WIDTH)
                np.testing.assert_array_equal(got, fake.target(video.video_id, sample.expression_id))


# --- Ref-YouTube-VOS ---------------------------------------------------------------------------


def test_ref_youtube_vos_train(tmp_path):
    fake = write_ref_youtube_vos(tmp_path)
    ds = load_ref_youtube_vos(tmp_path, "train")
    assert ds.has_ground_truth and ds.video_ids == ("t_cat", "t_dog")
    assert len(ds) == 3
    assert ds.video("t_cat").frame_names == ("00000", "00005", "00010", "00015")
    assert [s.object_ids for s in ds] == [("1",), ("2",), ("1",)]
    check_against(ds, fake)


def test_ref_youtube_vos_valid_is_valid_minus_test(tmp_path):
    fake = write_ref_youtube_vos(tmp_path)
    valid = load_ref_youtube_vos(tmp_path, "valid")
    assert valid.video_ids == ("v_a", "v_b")  # sorted, and the test video removed
    assert len(valid) == 4 and not valid.has_ground_truth
    assert all(s.masks is None and s.object_ids == () for s in valid)
    check_against(valid, fake)
    test = load_ref_youtube_vos(tmp_path, "test")
    assert test.video_ids == ("x_test",)


def test_ref_youtube_vos_valid_needs_test_meta(tmp_path):
    write_ref_youtube_vos(tmp_path)
    (tmp_path / "meta_expressions" / "test" / "meta_expressions.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"test/meta_expressions.json.*expected layout"):
        load_ref_youtube_vos(tmp_path, "valid")


def test_ref_youtube_vos_missing_video_folder(tmp_path):
    write_ref_youtube_vos(tmp_path)
    (tmp_path / "valid" / "JPEGImages" / "v_a").rename(tmp_path / "elsewhere")
    with pytest.raises(FileNotFoundError, match=r"v_a"):
        load_ref_youtube_vos(tmp_path, "valid")


def test_ref_youtube_vos_missing_annotation_png(tmp_path):
    write_ref_youtube_vos(tmp_path)
    (tmp_path / "train" / "Annotations" / "t_dog" / "00005.png").unlink()
    sample = load_ref_youtube_vos(tmp_path, "train").video("t_dog").expressions[0]
    sample.masks.load(0)
    with pytest.raises(FileNotFoundError, match=r"t_dog/00005.png"):
        sample.masks.load(1)


def test_bad_split_and_root(tmp_path):
    with pytest.raises(ValueError, match="split"):
        load_ref_youtube_vos(tmp_path, "val")
    with pytest.raises(FileNotFoundError, match="root"):
        load_mevis(tmp_path / "nope", "valid_u")
    with pytest.raises(FileNotFoundError, match="meta_expressions.json"):
        load_ref_davis17(tmp_path)


def test_malformed_meta(tmp_path):
    write_ref_youtube_vos(tmp_path)
    path = tmp_path / "meta_expressions" / "train" / "meta_expressions.json"
    path.write_text(json.dumps({"videos": {"t_cat": {"expressions": {"0": {"obj_id": "1"}}, "frames": []}}}))
    with pytest.raises(ValueError, match=r'"exp"'):
        load_ref_youtube_vos(tmp_path, "train")
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_ref_youtube_vos(tmp_path, "train")


# --- MeViS ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["train", "valid_u"])
def test_mevis_with_ground_truth(tmp_path, split):
    fake = write_mevis(tmp_path)
    ds = load_mevis(tmp_path, split)
    assert ds.has_ground_truth and ds.video_ids == (f"{split}_v1", f"{split}_v2")
    assert len(ds) == 4
    check_against(ds, fake)
    both = ds.video(f"{split}_v2").expressions[2]
    assert both.object_ids == ("1", "2")
    union = load_masks(both.masks)
    assert union.sum() == fake.objects[(f"{split}_v2", 1)].sum() + fake.objects[(f"{split}_v2", 2)].sum()
    # object 2 is null in frame 0: that expression's frame-0 target is empty, at full frame size
    only_two = ds.video(f"{split}_v2").expressions[1].masks.load(0)
    assert only_two.shape == (HEIGHT, WIDTH) and not only_two.any()


def test_mevis_valid_has_no_ground_truth(tmp_path):
    fake = write_mevis(tmp_path)
    ds = load_mevis(tmp_path, "valid")
    assert not ds.has_ground_truth and len(ds) == 4
    assert all(s.masks is None for s in ds)
    check_against(ds, fake)


def test_mevis_missing_mask_dict(tmp_path):
    write_mevis(tmp_path)
    (tmp_path / "valid_u" / "mask_dict.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"valid_u/mask_dict.json"):
        load_mevis(tmp_path, "valid_u")


def test_mevis_unknown_anno_id(tmp_path):
    write_mevis(tmp_path)
    path = tmp_path / "valid_u" / "mask_dict.json"
    masks = json.loads(path.read_text())
    path.write_text(json.dumps({k: v for k, v in masks.items() if k != min(masks, key=int)}))
    ds = load_mevis(tmp_path, "valid_u")
    with pytest.raises(KeyError, match="anno_id"):
        for sample in ds:
            load_masks(sample.masks)


# --- Ref-DAVIS17 --------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["converted", "davis"])
def test_ref_davis17(tmp_path, layout):
    fake = write_ref_davis17(tmp_path, layout)
    ds = load_ref_davis17(tmp_path)
    expected_order = ("bike-packing", "blackswan") if layout == "converted" else ("blackswan", "bike-packing")
    assert ds.video_ids == expected_order
    assert len(ds) == 12
    bike = ds.video("bike-packing").expressions
    assert [s.annotator for s in bike] == [0, 1, 2, 3] * 2
    assert [s.object_ids for s in bike] == [("1",)] * 4 + [("2",)] * 4
    assert bike[6].expression.startswith("a2 first")
    check_against(ds, fake)


def test_ref_davis17_root_may_be_the_davis_folder(tmp_path):
    write_ref_davis17(tmp_path, "davis")
    ds = load_ref_davis17(tmp_path / "DAVIS", meta_expressions=tmp_path / "meta_expressions" / "valid" / "meta_expressions.json")
    assert len(ds.videos) == 2


def test_ref_davis17_rejects_incomplete_annotator_groups(tmp_path):
    write_ref_davis17(tmp_path)
    path = tmp_path / "meta_expressions" / "valid" / "meta_expressions.json"
    meta = json.loads(path.read_text())
    del meta["videos"]["blackswan"]["expressions"]["3"]
    path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="4 per object"):
        load_ref_davis17(tmp_path)


def test_ref_davis17_video_missing_from_meta(tmp_path):
    write_ref_davis17(tmp_path, "davis")
    with open(tmp_path / "DAVIS" / "ImageSets" / "2017" / "val.txt", "a") as f:
        f.write("dogs-jump\n")
    with pytest.raises(ValueError, match="dogs-jump"):
        load_ref_davis17(tmp_path)


# --- RefCOCO ------------------------------------------------------------------------------------


def test_refcoco(tmp_path):
    truth = write_refcoco(tmp_path)
    train = load_refcoco(tmp_path, "refcoco", "train")
    assert [s.ref_id for s in train] == [0, 1]
    first = train[0]
    assert first.sentences == ("the triangle left", "square") and first.raw_sentences[0] == "The Triangle, left"
    assert first.image_path.is_file() and (first.height, first.width) == (HEIGHT, WIDTH)
    mask = first.mask()
    assert mask.shape == (HEIGHT, WIDTH)
    np.testing.assert_array_equal(mask, polygons_to_mask(REFCOCO_POLYGON, HEIGHT, WIDTH))
    assert mask[28, 40] and not mask[0, 0]
    np.testing.assert_array_equal(train[1].mask(), truth["rle_mask"])  # uncompressed RLE
    (test_a,) = load_refcoco(tmp_path, "refcoco", "testA")
    np.testing.assert_array_equal(test_a.mask(), truth["box_mask"])  # compressed RLE
    assert len(load_refcoco(tmp_path, "refcoco", None)) == 3


def test_refcoco_errors(tmp_path):
    write_refcoco(tmp_path)
    with pytest.raises(ValueError, match=r"no split 'val'.*\['testA', 'train'\]"):
        load_refcoco(tmp_path, "refcoco", "val")
    with pytest.raises(FileNotFoundError, match=r"refs\(umd\).p"):
        load_refcoco(tmp_path, "refcoco", "train", split_by="umd")
    with pytest.raises(FileNotFoundError, match="refcocog"):
        load_refcoco(tmp_path, "refcocog")


def test_refcoco_pickle_cannot_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "refs(unc).p"
    path.write_bytes(pickle.dumps([Evil()]))
    with pytest.raises(pickle.UnpicklingError, match="builtins.print"):
        read_refs(path)
