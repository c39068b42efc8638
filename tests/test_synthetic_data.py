"""The synthetic referring-video benchmark: determinism, on-disk format, and that every
expression is true of its target and of no other object (re-checked here from masks and
attributes alone, independently of the generator's own facts)."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from mpg_sam2.data import load_masks, load_ref_youtube_vos
from mpg_sam2.data.synthetic import (
    COLOURS,
    EXPRESSION_TYPES,
    MOTIONS,
    SHAPES,
    SIZES,
    TEXTURES,
    SyntheticClip,
    clip_rng,
    generate_clip,
    load_synthetic,
    read_expression_types,
    read_object_attributes,
    read_phrase_needed,
    video_id,
    vocabulary,
    write_dataset,
)
from mpg_sam2.data.synthetic.__main__ import main as cli_main
from mpg_sam2.data.synthetic.motion import sample_trajectory
from mpg_sam2.mask_io.png import read_label_png

SEED = 3
SIZE = (112, 144)  # (height, width): small and non-square keeps the tests fast and honest
FRAMES = 6
COUNTS = {"train": 5, "valid": 3, "test": 2}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    write_dataset(root, SEED, COUNTS["train"], COUNTS["valid"], COUNTS["test"], frames=FRAMES, size=SIZE)
    return root


@pytest.fixture(scope="module")
def clips() -> list[SyntheticClip]:
    return [generate_clip(s, frames=FRAMES, size=SIZE) for s in range(60)]


def _files(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- determinism ----------------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for root, seed in ((a, 7), (b, 7), (c, 8)):
        write_dataset(root, seed, 2, 1, 1, frames=FRAMES, size=SIZE)
    files_a, files_b, files_c = _files(a), _files(b), _files(c)
    assert files_a == files_b
    assert files_a.keys() == files_c.keys()
    names = (
        "meta_expressions/train/meta_expressions.json", "train/JPEGImages/train_00000/00000.jpg", "test/Annotations/test_00000/00003.png"
    )
    for name in names:
        assert files_a[name] != files_c[name], name


def test_generate_clip_is_deterministic():
    a, b, c = (generate_clip(s, frames=FRAMES, size=SIZE) for s in (11, 11, 12))
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert a.expressions == b.expressions
    assert not np.array_equal(a.frames, c.frames)
    # A Generator works as well as an int seed, and a clip does not depend on the other splits' sizes.
    np.testing.assert_array_equal(generate_clip(np.random.default_rng(11), frames=FRAMES, size=SIZE).labels, a.labels)


# --- format ---------------------------------------------------------------------------------


def test_reader_loads_every_split(dataset):
    info = json.loads((dataset / "synthetic_info.json").read_text())
    assert (info["seed"], info["frames"], info["height"], info["width"]) == (SEED, FRAMES, *SIZE)
    names = tuple(f"{t:05d}" for t in range(FRAMES))
    for split, count in COUNTS.items():
        ds = load_ref_youtube_vos(dataset, split)  # valid = valid meta minus test meta keeps all valid videos
        assert ds.video_ids == tuple(video_id(split, i) for i in range(count))
        assert len(ds) == info["splits"][split]["expressions"] == sum(info["splits"][split]["types"].values())
        assert all(v.frame_names == names for v in ds.videos)
        assert ds.videos[0].read_frame(0).shape == (*SIZE, 3)
        assert all(len(s.object_ids) == 1 for s in ds)
        assert ds.has_ground_truth == (split == "train")
        types = read_expression_types(dataset, split)
        assert sorted(types.values()) == sorted(t for t, n in info["splits"][split]["types"].items() for _ in range(n))


@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_files_hold_the_generated_clip(dataset, split):
    ds = load_synthetic(dataset, split)
    assert ds.has_ground_truth
    video = ds.videos[-1]
    clip = generate_clip(clip_rng(SEED, split, len(ds.videos) - 1), frames=FRAMES, size=SIZE)
    for t, path in enumerate(video.frame_paths):
        labels = read_label_png(path.parents[2] / "Annotations" / video.video_id / f"{path.stem}.png")
        np.testing.assert_array_equal(labels, clip.labels[t])  # PNG pixel = object id
        assert np.abs(video.read_frame(t).astype(int) - clip.frames[t]).mean() < 4  # JPEG, quality 90
    types, needed = read_expression_types(dataset, split), read_phrase_needed(dataset, split)
    written = [
        (s.expression, types[(video.video_id, s.expression_id)], int(s.object_ids[0]), needed[(video.video_id, s.expression_id)])
        for s in video.expressions
    ]
    assert written == [tuple(e) for e in clip.expressions]
    for sample in video.expressions:
        np.testing.assert_array_equal(load_masks(sample.masks), clip.masks[int(sample.object_ids[0])])
    # Every object of the clip, by its label in the PNGs, with the attributes it was drawn with.
    objects = read_object_attributes(dataset, split)
    assert sorted(objects) == [v.video_id for v in ds.videos]
    assert objects[video.video_id] == {
        o.object_id: {"size": o.size, "texture": o.texture, "colour": o.colour, "shape": o.shape, "motion": o.trajectory.kind}
        for o in clip.objects
    }
    assert all(o.trajectory.kind in MOTIONS for o in clip.objects)


def test_object_attributes_of_a_dataset_written_before_they_were_recorded_are_refused(dataset, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(dataset, old)
    meta = old / "meta_expressions" / "test" / "meta_expressions.json"
    videos = json.loads(meta.read_text())["videos"]
    for entry in videos.values():
        del entry["objects"]
    meta.write_text(json.dumps({"videos": videos}))
    with pytest.raises(ValueError, match="lists no objects.*write it again with python -m mpg_sam2.data.synthetic"):
        read_object_attributes(old, "test")
    assert read_object_attributes(old, "test", missing_ok=True) is None


def test_clip_shapes_and_masks(clips):
    clip = clips[0]
    n = len(clip.objects)
    assert 2 <= n <= 5
    assert clip.frames.shape == (FRAMES, *SIZE, 3) and clip.frames.dtype == np.uint8
    assert clip.full_masks.shape == (n, FRAMES, *SIZE)
    assert set(np.unique(clip.labels)) <= set(range(n + 1))
    for o in clip.objects:
        visible = clip.masks[o.object_id]
        assert visible.dtype == bool and visible.shape == (FRAMES, *SIZE)
        assert not (visible & ~clip.full_masks[o.object_id - 1]).any()  # visible part of the whole shape


def test_refuses_to_overwrite_and_rejects_bad_arguments(dataset, tmp_path):
    with pytest.raises(ValueError, match="overwrite"):
        write_dataset(dataset, SEED, 1, 0, 0, frames=FRAMES, size=SIZE)
    with pytest.raises(ValueError, match="frames"):
        generate_clip(0, frames=2)
    with pytest.raises(ValueError, match="size"):
        generate_clip(0, size=(16, 300))
    with pytest.raises(ValueError, match="split"):
        load_synthetic(dataset, "val")
    with pytest.raises(ValueError, match="at least one clip"):
        write_dataset(tmp_path / "empty", 0, 0, 0, 0)


def test_cli(tmp_path, capsys):
    out = tmp_path / "cli"
    args = ["--out", str(out), "--seed", "1", "--train", "2", "--val", "1", "--test", "1", "--frames", "5", "--size", "96x80"]
    assert cli_main(args) == 0
    info = json.loads((out / "synthetic_info.json").read_text())
    assert (info["height"], info["width"], info["frames"]) == (80, 96, 5)
    assert [info["splits"][s]["videos"] for s in ("train", "valid", "test")] == [2, 1, 1]
    assert "wrote" in capsys.readouterr().out
    assert cli_main(["--out", str(out), "--train", "1", "--val", "0", "--test", "0"]) == 2  # exists, no --overwrite


# --- every expression is true of its target only ---------------------------------------------


def _parse_description(words: list[str]) -> tuple[dict[str, str], list[str]]:
    """Leading attribute words up to the noun ("shape" or a shape name) -> (attributes, rest)."""
    tables = {"size": SIZES, "texture": TEXTURES, "colour": COLOURS}
    description: dict[str, str] = {}
    for i, word in enumerate(words):
        if word == "shape" or word in SHAPES:
            if word != "shape":
                description["shape"] = word
            return description, words[i + 1 :]
        (key,) = [k for k, table in tables.items() if word in table]
        description[key] = word
    raise AssertionError(f"no noun in {words}")


def _centroid(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


def _whole_shape_track(clip: SyntheticClip, object_id: int, inside_only: bool) -> np.ndarray:
    """``[T', 2]`` centroids of the whole shape (occluders ignored) in the frames where it is drawn.

    With ``inside_only``, only frames where it does not touch the border: there the centroid moves
    exactly as the object does, while clipping at a border shifts it across the motion too.
    """
    track = []
    for m in clip.full_masks[object_id - 1]:
        touches = m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any()
        if m.any() and not (inside_only and touches):
            track.append(_centroid(m))
    return np.array(track).reshape(-1, 2)


def _holds(clip: SyntheticClip, phrase: list[str], oid: int, ref: int | None) -> bool | None:
    """The template's claim about object ``oid`` judged from the masks only; None if they cannot tell.

    Always a Python bool (callers test ``is True`` / ``is False``; ``np.False_ is False`` is false).
    """
    visible = clip.masks[oid]
    if phrase[0] in ("left", "right", "above", "below"):
        if not (visible[0].any() and clip.masks[ref][0].any()):
            return False
        axis = 0 if phrase[0] in ("left", "right") else 1
        sign = 1 if phrase[0] in ("left", "above") else -1
        return bool(sign * (_centroid(clip.masks[ref][0])[axis] - _centroid(visible[0])[axis]) > 0)
    if phrase == ["that", "appears", "later"]:
        return bool(not visible[0].any() and visible.any())
    if phrase == ["that", "leaves", "the", "frame"]:
        return bool(visible[0].any() and not visible[-1].any())
    if phrase == ["that", "stays", "still"]:
        return bool(np.abs(np.diff(_whole_shape_track(clip, oid, False), axis=0)).max(initial=0) < 0.5)
    steps = np.diff(_whole_shape_track(clip, oid, True), axis=0)
    if len(steps) == 0:
        return None
    if phrase[0] == "moving":
        axis, sign = {"left": (0, -1), "right": (0, 1), "up": (1, -1), "down": (1, 1)}[phrase[1]]
        return bool((sign * steps[:, axis] > 0.5).any())
    if phrase == ["that", "bounces"]:
        return bool(any((steps[:, a] > 0.5).any() and (steps[:, a] < -0.5).any() for a in (0, 1)))
    raise AssertionError(f"unknown template ending {phrase}")


def _check_expression(clip: SyntheticClip, text: str, kind: str, target: int) -> None:
    words = text.split()
    assert words[0] == "the"
    description, rest = _parse_description(words[1:])
    ref = None
    if kind == "relation":
        reference, tail = _parse_description(rest[rest.index("the") + 1 :])
        assert tail == []
        refs = [o.object_id for o in clip.objects if reference.items() <= o.attributes.items()]
        assert len(refs) == 1, (text, "reference is not unique")
        ref = refs[0]
        rest = rest[: rest.index("the")]
    matching = [o.object_id for o in clip.objects if description.items() <= o.attributes.items()]
    assert target in matching, text
    if kind == "appearance":
        assert rest == [] and matching == [target], text
        return
    assert _holds(clip, rest, target, ref) is not False, (text, "not true of its target")
    for other in matching:
        if other != target:
            assert _holds(clip, rest, other, ref) is not True, (text, f"also true of object {other}")
    if kind == "motion" and rest[0] == "moving":
        # The visible mask itself travels that way (first to last frame it shows in).
        axis, sign = {"left": (0, -1), "right": (0, 1), "up": (1, -1), "down": (1, 1)}[rest[1]]
        shown = [t for t in range(FRAMES) if clip.masks[target][t].any()]
        moved = _centroid(clip.masks[target][shown[-1]])[axis] - _centroid(clip.masks[target][shown[0]])[axis]
        assert sign * moved > 0.1 * SIZE[1 - axis], text
    if kind == "time":
        assert not clip.masks[target][0].any() if rest[1] == "appears" else not clip.masks[target][-1].any()


def test_every_expression_names_exactly_its_target(clips):
    checked = {t: 0 for t in EXPRESSION_TYPES}
    for clip in clips:
        assert 2 <= len(clip.expressions) <= 4
        assert len({e.text for e in clip.expressions}) == len(clip.expressions)
        for text, kind, target, _ in clip.expressions:
            _check_expression(clip, text, kind, target)
            checked[kind] += 1
    assert all(n > 0 for n in checked.values()), checked


def test_every_type_is_well_represented(clips):
    counts = {t: 0 for t in EXPRESSION_TYPES}
    targets = 0
    for clip in clips:
        for e in clip.expressions:
            counts[e.type] += 1
        targets += len({e.target_id for e in clip.expressions}) > 1
    total = sum(counts.values())
    assert all(n >= 0.08 * total for n in counts.values()), counts
    assert targets >= 0.8 * len(clips)  # expressions of a clip name different objects


def test_vocabulary_is_small_and_closed(clips):
    vocab = set(vocabulary())
    assert len(vocab) < 50
    assert {w for clip in clips for e in clip.expressions for w in e.text.split()} <= vocab


# --- motion and occlusion --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["left", "right", "up", "down", "bounce", "enter", "leave", "appear", "static"])
def test_trajectories(kind):
    height, width, frames, extent = 120, 160, 8, 12.0
    for seed in range(5):
        tr = sample_trajectory(np.random.default_rng(seed), kind, extent, height, width, frames)
        assert tr is not None and tr.centres.shape == (frames, 2)
        x, y = tr.centres[:, 0], tr.centres[:, 1]
        inside = (x - extent >= 0) & (x + extent < width) & (y - extent >= 0) & (y + extent < height)
        outside = (x + extent < 0) | (x - extent >= width) | (y + extent < 0) | (y - extent >= height)
        steps = np.diff(tr.centres, axis=0)
        if kind in ("left", "right", "up", "down"):
            axis, sign = {"left": (0, -1), "right": (0, 1), "up": (1, -1), "down": (1, 1)}[kind]
            assert (sign * steps[:, axis] > 0).all() and (steps[:, 1 - axis] == 0).all() and inside.all()
        elif kind == "bounce":
            assert inside.all()
            assert any((steps[:, a] > 0.5).any() and (steps[:, a] < -0.5).any() for a in (0, 1))
        elif kind == "enter":
            assert outside[0] and inside[-1] and tr.present.all()
        elif kind == "leave":
            assert inside[0] and outside[-1] and tr.present.all()
        elif kind == "appear":
            assert not tr.present[0] and tr.present[-1] and (steps == 0).all()
        else:
            assert (steps == 0).all() and tr.present.all() and inside.all()


def test_occlusion_hides_part_of_the_object_behind(clips):
    seen = 0
    for clip in clips:
        for front, back in clip.occlusions:
            full, visible = clip.full_masks[back - 1], clip.masks[back]
            hidden = full & ~visible
            if not hidden.any():
                continue
            seen += 1
            assert (visible.sum(axis=(1, 2)) < full.sum(axis=(1, 2))).any()
            # The hidden pixels belong to objects drawn in front, the planted occluder among them.
            assert (clip.labels[hidden] != 0).all()
            assert (clip.labels[hidden] == front).any()
            depth = {o.object_id: o.depth for o in clip.objects}
            assert all(depth[int(i)] > depth[back] for i in np.unique(clip.labels[hidden]))
    assert seen >= 5


def test_chance_level_is_one_for_single_object_clips_and_below_one_otherwise(dataset, tmp_path):
    from mpg_sam2.evaluation.synthetic_report import chance_level, format_table

    single = write_dataset(tmp_path / "single", seed=2, train=0, val=0, test=2, frames=4, size=64, objects=(1, 1))
    rows = chance_level(single, "test")
    assert rows["overall"].j == pytest.approx(1.0) and rows["overall"].f == pytest.approx(1.0)

    rows = chance_level(dataset, "test")
    types = read_expression_types(dataset, "test")
    assert rows["overall"].count == len(types)
    assert set(rows) == {"overall", *types.values()}
    assert 0.0 < rows["overall"].jf < 0.9  # several objects per clip: a random one is often wrong
    table = format_table(rows, "test split")
    assert table.splitlines()[2].startswith(f"| overall | {len(types)} | ")


def test_phrase_needed_says_whether_the_description_alone_is_ambiguous(clips):
    """Recomputed from the sentence: the target's description (the words before the template's
    phrase) matches another object of the clip exactly when the flag is set."""
    import re

    from mpg_sam2.data.synthetic.expressions import TEMPLATES

    seen = {True: 0, False: 0}
    for clip in clips:
        for expression in clip.expressions:
            if expression.type == "appearance":
                assert not expression.phrase_needed
                continue
            for template in TEMPLATES:
                pattern = re.escape(template.text).replace(r"\{target\}", "(?P<target>.+?)").replace(r"\{reference\}", ".+")
                found = re.fullmatch(pattern, expression.text)
                if found and template.type == expression.type:
                    break
            else:
                raise AssertionError(f"no template fits {expression.text!r}")
            words = set(found["target"].split()) - {"shape"}
            matching = [o for o in clip.objects if words <= {o.shape, o.colour, o.size, o.texture}]
            assert expression.phrase_needed == (len(matching) > 1), expression
            seen[expression.phrase_needed] += 1
    assert seen[True] > 0 and seen[False] > 0, seen
