"""Pair folders on disk, and the paired crops and augmentations drawn from them."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from analogize.errors import AnalogizeError
from analogize.pairs import (Augmentation, Pair, PairSet, frame_position, sample_crop_batch, sample_crop_pair,
                             sample_positioned_crop_pair)

ALL_AUGMENTATIONS = Augmentation(flip=True, affine=True, color_jitter=True, jitter_amount=0.3)


def invert(image: np.ndarray) -> np.ndarray:
    """A pixel-wise edit that commutes with flips, linear interpolation and clipping to [0, 1]."""
    return (1.0 - image).astype(np.float32)


def contains_window(image: np.ndarray, window: np.ndarray) -> bool:
    """Whether `window` appears unchanged somewhere in `image`."""
    size = window.shape[0]
    windows = sliding_window_view(image, (size, size, 3))[:, :, 0]  # (rows, cols, size, size, 3)
    return bool(np.all(windows == window, axis=(2, 3, 4)).any())


# --- reading folders -----------------------------------------------------------------------------


@pytest.mark.parametrize("names", [("before", "after"), ("source", "target")])
def test_reads_both_folder_spellings(tmp_path, make_pair_folder, random_image, names):
    written = {name: (random_image(seed=i), random_image(seed=i + 9)) for i, name in enumerate("bac")}
    root = make_pair_folder(tmp_path / "pairs", written, *names)
    pairs = PairSet.from_folder(root)
    assert pairs.names == ["a", "b", "c"]
    assert len(pairs) == 3 and pairs.root == root
    for pair in pairs:
        np.testing.assert_array_equal(pair.before, written[pair.name][0])
        np.testing.assert_array_equal(pair.after, written[pair.name][1])


def test_pairs_match_by_stem_across_extensions(tmp_path, make_pair_folder, random_image):
    before = np.full((24, 32, 3), (0.2, 0.5, 0.8), dtype=np.float32)  # flat, so JPEG keeps it
    after = random_image(seed=2)
    root = make_pair_folder(tmp_path, {"cat": (before, after)}, ext=(".jpg", ".png"))
    (root / "before" / "dog.PNG").write_bytes((root / "after" / "cat.png").read_bytes())
    (root / "after" / "dog.webp").write_bytes((root / "after" / "cat.png").read_bytes())
    pairs = PairSet.from_folder(root)
    assert pairs.names == ["cat", "dog"]
    np.testing.assert_array_equal(pairs[0].after, after)
    np.testing.assert_allclose(pairs[0].before, before, atol=0.02)


def test_hidden_and_non_image_files_are_ignored(tmp_path, make_pair_folder, random_image):
    root = make_pair_folder(tmp_path, {"a": (random_image(seed=1), random_image(seed=2))})
    (root / "before" / ".DS_Store").write_bytes(b"\x00\x01junk")
    (root / "before" / "._a.png").write_bytes(b"AppleDouble metadata, not a PNG")
    (root / "after" / ".hidden.png").write_bytes(b"not a PNG")
    (root / "before" / "notes.txt").write_text("shot on a cloudy day")
    (root / "after" / "a.xmp").write_text("<x:xmpmeta/>")
    (root / "after" / "thumbs").mkdir()
    (root / "after" / "thumbs" / "b.png").write_bytes(b"not looked at")
    assert PairSet.from_folder(root).names == ["a"]


def test_missing_folder(tmp_path, assert_clear_error):
    with pytest.raises(AnalogizeError) as caught:
        PairSet.from_folder(tmp_path / "nope")
    assert_clear_error(caught.value, tmp_path / "nope", "no such folder", "before/ and after/")


def test_a_file_is_not_a_pair_folder(tmp_path, assert_clear_error):
    path = tmp_path / "pairs.zip"
    path.write_bytes(b"PK")
    with pytest.raises(AnalogizeError) as caught:
        PairSet.from_folder(path)
    assert_clear_error(caught.value, path, "before/ and after/")


def test_folder_without_subfolders(tmp_path, random_image, write_image, assert_clear_error):
    write_image(random_image(), tmp_path / "loose.png")
    (tmp_path / "originals").mkdir()
    with pytest.raises(AnalogizeError) as caught:
        PairSet.from_folder(tmp_path)
    message = assert_clear_error(caught.value, tmp_path, "before/ and after/", "source/ and target/")
    assert "originals/" in message  # says what it found instead


@pytest.mark.parametrize("present, missing", [("before", "after"), ("after", "before"), ("source", "target")])
def test_only_one_of_the_two_subfolders(tmp_path, present, missing, assert_clear_error):
    (tmp_path / present).mkdir()
    with pytest.raises(AnalogizeError) as caught:
        PairSet.from_folder(tmp_path)
    assert_clear_error(caught.value, tmp_path / missing, "missing", "add it beside", str(tmp_path / present))


def test_unmatched_stems_are_listed_by_name(
    tmp_path, make_pair_folder, random_image, write_image, assert_clear_error
):
    image = random_image()
    root = make_pair_folder(tmp_path, {"shared": (image, image)})
    write_image(image, root / "before" / "lonely_before.png")
    write_image(image, root / "before" / "another_before.jpg")
    write_image(image, root / "after" / "lonely_after.png")
    with pytest.raises(AnalogizeError) as caught:
        PairSet.from_folder(root)
    message = assert_clear_error(
        caught.value, root, "another_before", "lonely_before", "lonely_after", "same file name stem"
    )
    assert "shared" not in message


@pytest.mark.parametrize("junk", [None, "readme.txt"])
def test_zero_pairs(tmp_path, junk, assert_clear_error):
    (tmp_path / "before").mkdir()
    (tmp_path / "after").mkdir()
    if junk:
        (tmp_path / "before" / junk).write_text("add photos here")
        (tmp_path / "after" / junk).write_text("add photos here")
    with pytest.raises(AnalogizeError) as caught:
        PairSet.from_folder(tmp_path)
    assert_clear_error(caught.value, tmp_path / "before", "no images found", "add before/after pairs")


def test_unreadable_file_is_named(tmp_path, make_pair_folder, random_image, assert_clear_error):
    image = random_image()
    root = make_pair_folder(tmp_path, {"good": (image, image), "bad": (image, image)})
    broken = root / "after" / "bad.png"
    broken.write_bytes(broken.read_bytes()[:60])
    with pytest.raises(AnalogizeError) as caught:
        PairSet.from_folder(root)
    assert_clear_error(caught.value, broken, "re-export")


def test_size_mismatch_is_refused_unless_resizing_is_asked_for(
    tmp_path, make_pair_folder, random_image, assert_clear_error
):
    before = random_image(24, 32, seed=1)
    after = np.full((48, 64, 3), 0.25, dtype=np.float32)
    root = make_pair_folder(tmp_path, {"shot": (before, after)})
    with pytest.raises(AnalogizeError) as caught:
        PairSet.from_folder(root)
    assert_clear_error(caught.value, root / "after" / "shot.png", "64x48", "32x24", "--resize-pairs")

    pairs = PairSet.from_folder(root, resize_mismatched=True)
    assert pairs[0].after.shape == before.shape
    np.testing.assert_allclose(pairs[0].after, 64 / 255, atol=1e-5)  # 0.25 is stored as level 64
    np.testing.assert_array_equal(pairs[0].before, before)


def test_max_pixels_reaches_every_file(tmp_path, make_pair_folder, random_image, assert_clear_error):
    image = random_image(24, 32)
    root = make_pair_folder(tmp_path, {"shot": (image, image)})
    with pytest.raises(AnalogizeError) as caught:
        PairSet.from_folder(root, max_pixels=100)
    assert_clear_error(caught.value, root / "before" / "shot.png", "100")


def test_duplicate_stem_in_one_folder(
    tmp_path, make_pair_folder, random_image, write_image, assert_clear_error
):
    image = random_image()
    root = make_pair_folder(tmp_path, {"shot": (image, image)})
    write_image(image, root / "before" / "shot.jpg")
    with pytest.raises(AnalogizeError) as caught:
        PairSet.from_folder(root)
    message = assert_clear_error(caught.value, root / "before", "one file per stem")
    assert "shot.jpg" in message and "shot.png" in message


def test_pairset_checks_pairs_given_directly(random_image, assert_clear_error):
    with pytest.raises(AnalogizeError) as caught:
        PairSet([])
    assert_clear_error(caught.value, "pairs", "at least one")

    mismatched = Pair("odd", random_image(8, 8), random_image(8, 9))
    with pytest.raises(AnalogizeError) as caught:
        PairSet([mismatched])
    assert_clear_error(caught.value, "'odd'", "same size")


# --- paired crops --------------------------------------------------------------------------------


def test_crop_without_augmentation_is_the_same_window_of_both_sides(random_image):
    before = random_image(40, 50, seed=3)
    pair = Pair("p", before, invert(before))
    rng = np.random.default_rng(0)
    for _ in range(5):
        crop_before, crop_after = sample_crop_pair(pair, 16, rng)
        assert crop_before.shape == crop_after.shape == (16, 16, 3)
        assert contains_window(before, crop_before)
        np.testing.assert_array_equal(crop_after, invert(crop_before))


def test_flip_keeps_a_nonlinear_mapping_and_happens_both_ways(random_image, warm_edit):
    before = random_image(40, 50, seed=4)
    pair = Pair("p", before, warm_edit(before))
    flipped = unflipped = 0
    for seed in range(20):
        crop_before, crop_after = sample_crop_pair(
            pair, 16, np.random.default_rng(seed), Augmentation(flip=True)
        )
        np.testing.assert_array_equal(crop_after, warm_edit(crop_before))
        if contains_window(before, crop_before):
            unflipped += 1
        else:
            assert contains_window(before[:, ::-1], crop_before)
            flipped += 1
    assert flipped and unflipped


def test_affine_warp_is_the_same_on_both_sides(random_image):
    # Linear interpolation commutes with a linear pixel-wise edit, so the pair still corresponds.
    before = random_image(40, 50, seed=5)
    pair = Pair("p", before, invert(before))
    augmentation = Augmentation(flip=True, affine=True, max_rotation_degrees=30, max_scale_change=0.3)
    for seed in range(5):
        crop_before, crop_after = sample_crop_pair(pair, 24, np.random.default_rng(seed), augmentation)
        assert not contains_window(before, crop_before)  # the warp really moved pixels
        np.testing.assert_allclose(crop_after, invert(crop_before), atol=1e-5)


def test_identical_sides_stay_identical_under_every_augmentation(random_image):
    # Colour jitter does not commute with most edits, but it is the same jitter on both sides.
    image = random_image(40, 50, seed=6)
    pair = Pair("p", image, image.copy())
    for seed in range(5):
        crop_before, crop_after = sample_crop_pair(pair, 24, np.random.default_rng(seed), ALL_AUGMENTATIONS)
        assert crop_before.dtype == np.float32 and crop_before.flags.c_contiguous
        assert crop_before.min() >= 0.0 and crop_before.max() <= 1.0
        np.testing.assert_array_equal(crop_before, crop_after)
        plain, _ = sample_crop_pair(pair, 24, np.random.default_rng(seed))
        assert not np.allclose(crop_before, plain)  # the augmentations did something


def test_colour_jitter_changes_colours(random_image):
    image = random_image(32, 32, seed=7)
    pair = Pair("p", image, image)
    augmentation = Augmentation(flip=False, color_jitter=True, jitter_amount=0.3)
    jittered, _ = sample_crop_pair(pair, 32, np.random.default_rng(1), augmentation)
    assert jittered.shape == image.shape
    assert np.abs(jittered - image).mean() > 0.005


def test_crop_of_an_image_smaller_than_the_crop(random_image):
    before = random_image(10, 20, seed=8)
    pair = Pair("small", before, invert(before))
    crop_before, crop_after = sample_crop_pair(pair, 16, np.random.default_rng(0))
    assert crop_before.shape == crop_after.shape == (16, 16, 3)
    np.testing.assert_allclose(crop_after, invert(crop_before), atol=1e-5)


def test_crop_the_size_of_the_image_is_the_whole_image(random_image):
    before = random_image(16, 16, seed=9)
    crop_before, _ = sample_crop_pair(Pair("p", before, before), 16, np.random.default_rng(0))
    np.testing.assert_array_equal(crop_before, before)


def test_crop_batch_shapes_and_sources(random_image):
    images = [random_image(30 + 5 * i, 40, seed=i) for i in range(3)]
    pairs = [Pair(str(i), image, invert(image)) for i, image in enumerate(images)]
    befores, afters, positions = sample_crop_batch(pairs, 7, 12, np.random.default_rng(0))
    assert befores.shape == afters.shape == (7, 12, 12, 3)
    assert positions.shape == (7, 12, 12, 2)
    assert befores.dtype == afters.dtype == np.float32
    for crop_before, crop_after in zip(befores, afters):
        assert any(contains_window(image, crop_before) for image in images)
        np.testing.assert_array_equal(crop_after, invert(crop_before))


def test_same_seed_same_crops(random_image):
    image = random_image(40, 50, seed=10)
    pairs = [Pair("a", image, invert(image)), Pair("b", image[::-1].copy(), image[::-1].copy())]

    def draw(seed):
        return sample_crop_batch(pairs, 4, 16, np.random.default_rng(seed), ALL_AUGMENTATIONS)

    first, again, other = draw(3), draw(3), draw(4)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])


def test_frame_position_spans_the_frame_from_minus_one_to_one():
    position = frame_position(4, 8)
    assert position.shape == (4, 8, 2) and position.dtype == np.float32
    np.testing.assert_allclose(position[0, :, 0], (np.arange(8) + 0.5) / 8 * 2 - 1)  # x across
    np.testing.assert_allclose(position[:, 0, 1], (np.arange(4) + 0.5) / 4 * 2 - 1)  # y down
    np.testing.assert_array_equal(frame_position(4, 8, 1, 2, 2, 3), position[1:3, 2:5])


def test_a_crop_carries_its_place_in_the_frame_through_flips_and_warps(random_image):
    before = random_image(40, 60, seed=3)
    pair = Pair("p", before, invert(before))
    for seed in range(6):
        plain = sample_crop_pair(pair, 16, np.random.default_rng(seed))
        crop_before, crop_after, position = sample_positioned_crop_pair(pair, 16, np.random.default_rng(seed))
        np.testing.assert_array_equal(crop_before, plain[0])  # the same draws give the same crop
        # Reading the frame's own position map at the crop's positions finds the same pixels.
        rows = np.round((position[..., 1] + 1) / 2 * 40 - 0.5).astype(int)
        columns = np.round((position[..., 0] + 1) / 2 * 60 - 0.5).astype(int)
        np.testing.assert_array_equal(before[rows, columns], crop_before)
    flipped = Augmentation(flip=True)
    for seed in range(6):
        crop_before, _, position = sample_positioned_crop_pair(pair, 16, np.random.default_rng(seed), flipped)
        columns = np.round((position[..., 0] + 1) / 2 * 60 - 0.5).astype(int)
        rows = np.round((position[..., 1] + 1) / 2 * 40 - 0.5).astype(int)
        np.testing.assert_array_equal(before[rows, columns], crop_before)
    warped = Augmentation(flip=False, affine=True)
    _, _, position = sample_positioned_crop_pair(pair, 16, np.random.default_rng(0), warped)
    assert position.shape == (16, 16, 2) and np.abs(position).max() <= 1.2
