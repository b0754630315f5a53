"""The colour-map baseline learns colour edits exactly, continues them sensibly into colours the
pairs never show, and behaves like every other Edit (strength, sizes, edit files)."""

import numpy as np
import pytest

from analogize import learn, load_edit, save_edit
from analogize.errors import AnalogizeError
from analogize.images import resize
from analogize.methods import get_method
from analogize.pairs import Pair, PairSet

WARM_MATRIX = np.array([[0.9, 0.1, 0.0], [0.05, 0.8, 0.1], [0.0, 0.2, 0.7]], dtype=np.float32)


def warm_grade(image: np.ndarray) -> np.ndarray:
    """A colour matrix, an offset and a gamma curve: a typical grade, increasing in every channel."""
    return (np.clip(image @ WARM_MATRIX.T + 0.05, 0.0, 1.0) ** 0.8).astype(np.float32)


def smooth_photos(count: int, size: tuple[int, int] = (48, 48), seed: int = 0) -> list[np.ndarray]:
    """Photo-like images: smooth random colour fields, so pixels cover the colour cube unevenly."""
    rng = np.random.default_rng(seed)
    height, width = size
    return [resize(rng.random((5, 5, 3)).astype(np.float32), (width, height)) for _ in range(count)]


def pairs_for(edit, befores: list[np.ndarray]) -> PairSet:
    return PairSet([Pair(f"pair{i}", before, edit(before)) for i, before in enumerate(befores)])


def psnr(result: np.ndarray, truth: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((result.astype(np.float64) - truth) ** 2)))


@pytest.fixture(scope="module")
def warm_edit():
    return learn(pairs_for(warm_grade, smooth_photos(8)), method="colormap", preset="cpu")


def test_learns_a_colour_grade_that_holds_on_new_photos(warm_edit):
    for photo in smooth_photos(3, size=(40, 56), seed=1):
        assert psnr(warm_edit.apply(photo), warm_grade(photo)) > 35


def test_learns_a_per_channel_tone_curve():
    def curve(image):
        return (image**0.5 * np.array([1.0, 0.9, 0.7], dtype=np.float32)).astype(np.float32)

    edit = learn(pairs_for(curve, smooth_photos(8)), method="colormap")
    photo = smooth_photos(1, seed=2)[0]
    assert psnr(edit.apply(photo), curve(photo)) > 35


def test_identity_pairs_leave_photos_unchanged():
    edit = learn(pairs_for(np.copy, smooth_photos(4)), method="colormap")
    photo = smooth_photos(1, seed=3)[0]
    assert np.abs(edit.apply(photo) - photo).max() < 1e-3
    # Even colours far from the pairs' ones stay put.
    corners = np.array([[[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 1]]], dtype=np.float32)
    assert np.abs(edit.apply(corners) - corners).max() < 1e-3


def test_colours_brighter_than_any_example_continue_the_edit():
    def faded_grade(image):  # whites end about 0.2 below where they started: far from "no change"
        return (0.1 + 0.7 * image @ WARM_MATRIX.T).astype(np.float32)

    dark_photos = [photo * 0.45 for photo in smooth_photos(8)]
    edit = learn(pairs_for(faded_grade, dark_photos), method="colormap")
    ramp = np.linspace(0.0, 1.0, 64, dtype=np.float32)[None, :, None] * np.array([1.0, 0.9, 0.8], dtype=np.float32)
    result = edit.apply(ramp)[0]  # (64, 3) from black to a warm white
    assert (np.diff(result, axis=0) > -1e-3).all(), "outputs must keep increasing with the input"
    assert np.abs(result[-8:] - faded_grade(ramp)[0, -8:]).max() < 0.05


def test_colour_directions_the_pairs_never_vary_are_kept():
    grey_photos = [np.repeat(photo.mean(axis=2, keepdims=True), 3, axis=2) for photo in smooth_photos(6)]
    edit = learn(pairs_for(lambda image: image**0.7, grey_photos), method="colormap")
    red = np.array([[[0.8, 0.1, 0.1]]], dtype=np.float32)
    result = edit.apply(red)[0, 0]
    assert result[0] > 0.7 and result[1] < 0.3 and result[2] < 0.3, result


def test_apply_keeps_shape_dtype_and_range_at_odd_sizes(warm_edit):
    photo = np.random.default_rng(4).random((37, 53, 3)).astype(np.float32)
    result = warm_edit.apply(photo)
    assert result.shape == (37, 53, 3) and result.dtype == np.float32
    assert result.min() >= 0.0 and result.max() <= 1.0


def test_strength_blends_between_photo_and_full_edit(warm_edit):
    photo = smooth_photos(1, seed=5)[0]
    full = warm_edit.apply(photo)
    assert np.array_equal(warm_edit.apply(photo, strength=0.0), photo)
    np.testing.assert_allclose(warm_edit.apply(photo, strength=0.5), (photo + full) / 2, atol=1e-6)


def test_edit_file_round_trip_gives_identical_output(warm_edit, tmp_path):
    loaded = load_edit(save_edit(warm_edit, tmp_path / "warm.edit"))
    photo = smooth_photos(1, seed=6)[0]
    assert loaded.config == warm_edit.config
    assert np.array_equal(loaded.apply(photo), warm_edit.apply(photo))


def test_subsampling_follows_the_seed():
    pairs = pairs_for(warm_grade, smooth_photos(4))
    method = get_method("colormap")

    def lut(seed):
        return method.learn(pairs, method.make_config("tiny", max_samples=2000, seed=seed)).lut

    assert np.array_equal(lut(1), lut(1))
    assert not np.array_equal(lut(1), lut(2))


def test_rejects_an_unusable_lut_size():
    with pytest.raises(AnalogizeError, match="lut_size"):
        get_method("colormap").make_config(lut_size=2)
