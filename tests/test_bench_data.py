"""The benchmark's data: the photo corpus, its split and crops, and the procedural edits.

Only photos shipped in pip packages are used, so these tests need no `fetch_photos.sh` run.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from analogize.data import corpus
from analogize.data.corpus import Photo
from analogize.data.edits import EDIT_SETS, EDITS, SEPIA, expand_edit_names, get_edit, make_pairs
from analogize.errors import AnalogizeError
from analogize.images import resize, save_image, to_uint8


@pytest.fixture
def package_photos_only(tmp_path, monkeypatch) -> Path:
    """Point the photo folder at an empty directory, leaving only the pip-package photos."""
    folder = tmp_path / "photos"
    folder.mkdir()
    monkeypatch.setenv(corpus.PHOTOS_ENV, str(folder))
    return folder


def installed_package_photos() -> list[str]:
    """The PACKAGE_PHOTOS whose package is installed here (scikit-image's always: it is core)."""
    return sorted(name for name, (package, _) in corpus.PACKAGE_PHOTOS.items() if importlib.util.find_spec(package))


@pytest.fixture
def core_install_only(package_photos_only, monkeypatch):
    """The corpus as a core install sees it: no scikit-learn or matplotlib (the `bench` extra)."""
    package_file = corpus._package_file
    monkeypatch.setattr(corpus, "_package_file", lambda package, relative_path: None
                        if package in ("sklearn", "matplotlib") else package_file(package, relative_path))


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    chelsea = next(p for p in corpus.photos() if p.name == "chelsea")
    return resize(chelsea.load(), (96, 64))


def fake_photos(groups: list[str]) -> list[Photo]:
    return [Photo(f"photo{index}", group, Path("unused")) for index, group in enumerate(groups)]


# --- corpus ---------------------------------------------------------------------------------


def test_package_photos_are_found_sorted_and_load_as_rgb(package_photos_only):
    photos = corpus.photos()
    assert [p.name for p in photos] == installed_package_photos()
    for p in photos:
        image = p.load()
        assert image.dtype == np.float32 and image.ndim == 3 and image.shape[2] == 3
        assert min(image.shape[:2]) >= 256
        assert 0.0 <= image.min() and image.max() <= 1.0
        assert image.std() > 0.05, f"{p.name} looks blank"


def test_photos_in_the_folder_join_the_corpus(package_photos_only):
    grey = np.full((40, 50, 3), 0.5, dtype=np.float32)
    for name in ("aero1", "aero3", "mine"):
        save_image(grey, package_photos_only / f"{name}.png")
    (package_photos_only / "notes.txt").write_text("not a photo")
    by_name = {p.name: p for p in corpus.photos()}
    assert set(by_name) == set(installed_package_photos()) | {"aero1", "aero3", "mine"}
    assert by_name["aero1"].group == by_name["aero3"].group
    assert by_name["mine"].group == "mine"
    assert by_name["mine"].load().shape == (40, 50, 3)


def test_require_photos_names_the_fetch_command(package_photos_only):
    available = len(installed_package_photos())
    assert len(corpus.require_photos(available)) == available
    with pytest.raises(AnalogizeError) as error:
        corpus.require_photos(available + 1)
    message = str(error.value)
    assert "bash benchmarks/fetch_photos.sh" in message and "\n" not in message
    assert str(package_photos_only) in message


def test_split_is_disjoint_by_group_and_keeps_scenes_together():
    groups = [f"scene{index}" for index in range(40)] + ["scene0", "scene1", "scene2"]
    train, test = corpus.split(fake_photos(groups))
    assert len(train) + len(test) == len(groups)
    assert not {p.group for p in train} & {p.group for p in test}
    assert 0.15 < len({p.group for p in test}) / 40 < 0.45


def test_split_does_not_move_photos_when_the_corpus_changes():
    photos = fake_photos([f"scene{index}" for index in range(40)])
    _, test = corpus.split(photos)
    assert corpus.split(photos) == corpus.split(photos)
    subset = photos[::3]
    _, sub_test = corpus.split(subset)
    assert {p.name for p in sub_test} == {p.name for p in test} & {p.name for p in subset}


def test_package_photos_alone_give_both_sides(package_photos_only):
    train, test = corpus.split(corpus.photos())
    assert train and test


def test_a_core_install_has_scikit_images_photos_and_enough_for_the_demo(core_install_only):
    photos = corpus.photos()
    assert {p.name for p in photos} == {"astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "motorcycle"}
    train, test = corpus.split(photos)
    assert len(train) == 3 and len(test) == 3  # the demo learns from crops of three, tests on three


def test_split_refuses_an_empty_side():
    with pytest.raises(AnalogizeError, match="fetch_photos.sh"):
        corpus.split(fake_photos(["only-scene"]))


def test_validation_split_takes_scenes_only_from_the_training_side_and_keeps_them_together():
    groups = [f"scene{index}" for index in range(60)] + ["scene0", "scene1", "scene2"]
    train, test = corpus.split(fake_photos(groups))
    fit, validation = corpus.validation_split(train)
    assert sorted(p.name for p in fit + validation) == sorted(p.name for p in train)
    assert not {p.group for p in fit} & {p.group for p in validation}
    assert not {p.group for p in validation} & {p.group for p in test}
    assert 0.15 < len({p.group for p in validation}) / len({p.group for p in train}) < 0.45
    assert corpus.validation_split(train) == (fit, validation)


def test_validation_split_refuses_an_empty_side():
    with pytest.raises(AnalogizeError, match="fetch_photos.sh"):
        corpus.validation_split(fake_photos(["only-scene"]))


def test_crops_have_the_right_size_and_repeat_with_the_seed(package_photos_only, tmp_path):
    small = tmp_path / "small.png"  # smaller than the crop: must be enlarged, not fail
    save_image(np.random.default_rng(0).random((20, 30, 3), dtype=np.float32), small)
    photos = corpus.photos()[:2] + [Photo("small", "small", small)]
    first = corpus.crops(photos, 12, 48, np.random.default_rng(7))
    second = corpus.crops(photos, 12, 48, np.random.default_rng(7))
    assert len(first) == 12
    for crop, again in zip(first, second):
        assert crop.shape == (48, 48, 3) and crop.dtype == np.float32
        assert 0.0 <= crop.min() and crop.max() <= 1.0
        np.testing.assert_array_equal(crop, again)
    assert len({crop.tobytes() for crop in first}) == 12


def test_crops_need_photos():
    with pytest.raises(AnalogizeError, match="fetch_photos.sh"):
        corpus.crops([], 1, 32, np.random.default_rng(0))


# --- edits ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", EDITS)
def test_edit_keeps_shape_range_and_is_deterministic(name, photo):
    edit = EDITS[name]
    out = edit(photo)
    assert out.shape == photo.shape and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    np.testing.assert_array_equal(out, edit(photo.copy()))
    assert np.abs(out - photo).mean() > 0.01, f"{name} barely changes a photo"
    assert edit.kind in ("colour", "local", "spatial") and edit.description


@pytest.mark.parametrize("name", EDITS)
def test_edit_works_on_odd_sizes(name, photo):
    odd = photo[:37, :53]
    out = EDITS[name](odd)
    assert out.shape == (37, 53, 3) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0


@pytest.mark.parametrize("name", EDITS)
def test_only_colour_edits_are_per_pixel_mappings(name, photo):
    # Shuffling the pixels commutes with an edit exactly when it maps each colour on its own.
    edit = EDITS[name]
    order = np.random.default_rng(0).permutation(photo.shape[0] * photo.shape[1])
    shuffle = lambda image: image.reshape(-1, 3)[order].reshape(photo.shape)  # noqa: E731
    commutes = np.allclose(edit(shuffle(photo)), shuffle(edit(photo)), atol=1e-6)
    assert commutes == (edit.kind == "colour")


def test_vignette_uses_relative_coordinates():
    grey = np.full((60, 80, 3), 0.6, dtype=np.float32)
    small = get_edit("vignette")(grey)
    large = get_edit("vignette")(np.repeat(np.repeat(grey, 3, axis=0), 3, axis=1))
    assert small[0, 0].mean() < small[30, 40].mean() - 0.1  # darker corners
    assert small[0, 40, 0] > small[-1, 40, 0]  # warmer at the top
    np.testing.assert_allclose(resize(large, (80, 60)), small, atol=0.02)


def test_make_pairs_applies_the_edit(photo):
    images = [photo, photo[::-1].copy()]
    pairs = make_pairs("tone", images)
    assert len(pairs) == 2 and len(set(pairs.names)) == 2
    for pair, image in zip(pairs, images):
        np.testing.assert_array_equal(pair.before, image)
        np.testing.assert_array_equal(pair.after, get_edit("tone")(image))


def test_unknown_edit_lists_the_known_ones():
    with pytest.raises(AnalogizeError, match="grade"):
        make_pairs("no-such-edit", [np.zeros((8, 8, 3), np.float32)])


def test_edit_sets_cover_every_edit_once_and_expand_in_order():
    members = [name for names in EDIT_SETS.values() for name in names]
    assert sorted(members) == sorted(EDITS) and len(members) == len(set(members))
    assert len(EDIT_SETS["filters"]) >= 6
    assert expand_edit_names(["blur", "filters", "emboss"]) == ["blur", *EDIT_SETS["filters"]]


def test_emboss_and_contour_leave_flat_areas_at_their_offsets():
    # Both kernels sum to zero: a flat image keeps only the offset, mid-grey and white. Pillow
    # copies the one-pixel border unfiltered, so that is part of the ground truth too.
    flat = np.full((20, 24, 3), 0.3, dtype=np.float32)
    for name, offset in (("emboss", 128 / 255), ("contour", 1.0)):
        out = get_edit(name)(flat)
        np.testing.assert_allclose(out[1:-1, 1:-1], offset, atol=1e-6)
        np.testing.assert_allclose(out[0], to_uint8(flat)[0] / 255, atol=1e-6)


def test_emboss_saturates_at_a_strong_edge():
    # Pillow's EMBOSS is the difference to the upper-left neighbour plus 128, clipped.
    step = np.zeros((20, 20, 3), dtype=np.float32)
    step[:, 10:] = 1.0
    out = get_edit("emboss")(step)
    assert out[5, 10, 0] == 1.0  # 255 - 0 + 128, clipped to white
    assert out[5, 5, 0] == pytest.approx(128 / 255)


def test_contour_draws_grey_strokes_on_white(photo):
    out = get_edit("contour")(photo)
    np.testing.assert_array_equal(out[..., 0], out[..., 1])  # grey
    assert np.median(out) > 0.9 and out.min() < 0.5  # mostly paper, some dark strokes


def test_cartoon_is_flat_posterised_colour_or_black_outline(photo):
    levels = np.round(get_edit("cartoon")(photo) * 255).astype(int)
    outline = (levels == 0).all(axis=2)
    assert 0.01 < outline.mean() < 0.5
    assert set(np.unique(levels[~outline])) <= {32, 96, 160, 224}


def test_detail_and_smooth_leave_a_flat_image_alone():
    flat = np.full((32, 32, 3), 100 / 255, dtype=np.float32)
    for name in ("detail", "smooth"):
        np.testing.assert_allclose(get_edit(name)(flat), flat, atol=2 / 255)


def test_frame_tones_the_centre_and_darkens_the_corners_at_any_size():
    grey = np.full((101, 101, 3), 0.5, dtype=np.float32)
    out = get_edit("frame")(grey)
    sepia = SEPIA @ np.full(3, 0.5, dtype=np.float32)
    np.testing.assert_allclose(out[50, 50], sepia, atol=1e-3)  # radius 0: full sepia, no darkening
    radius = np.hypot(1 - 1 / 101, 1 - 1 / 101) / np.sqrt(2.0)  # the corner pixel's centre
    corner = (0.5 + (1 - 0.6 * radius) * (sepia - 0.5)) * (1 - 0.6 * radius**2)
    np.testing.assert_allclose(out[0, 0], corner, atol=1e-5)
    large = get_edit("frame")(np.full((303, 303, 3), 0.5, dtype=np.float32))
    np.testing.assert_allclose(resize(large, (101, 101)), out, atol=0.01)
    assert get_edit("frame").pair_size == 512
