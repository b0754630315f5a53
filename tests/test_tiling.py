"""Editing in overlapping tiles: seamless blending, and frame positions handed to every tile."""

import numpy as np

from analogize.pairs import frame_position
from analogize.tiling import blend_window, edit_in_tiles, tile_starts


def test_tiles_cover_the_length_evenly_with_the_overlap():
    starts = tile_starts(101, 32, 8)
    assert starts[0] == 0 and starts[-1] == 101 - 32
    assert all(later - earlier <= 32 - 8 for earlier, later in zip(starts, starts[1:]))
    assert tile_starts(20, 32, 8) == [0]


def test_unchanged_tiles_blend_back_into_the_image(random_image):
    image = random_image(70, 101, seed=4)
    out = edit_in_tiles(image, lambda crops, positions: crops, tile=32, overlap=8, tiles_per_batch=5)
    np.testing.assert_allclose(out, image, atol=1e-6)
    assert blend_window(32, 8).min() > 0.0


def test_every_tile_gets_its_positions_in_the_whole_frame(random_image):
    # An editor that paints each pixel's x position reassembles the frame's own position map,
    # so a tile knows where in the frame it lies.
    image = random_image(50, 90, seed=2)

    def paint_x(crops, positions):
        return np.repeat((positions[..., :1] + 1.0) / 2.0, 3, axis=3)

    out = edit_in_tiles(image, paint_x, tile=32, overlap=8)
    expected = (frame_position(50, 90)[..., 0] + 1.0) / 2.0
    np.testing.assert_allclose(out[..., 0], expected, atol=1e-5)


def test_an_image_smaller_than_a_tile_is_mirrored_out_and_cut_back(random_image):
    image = random_image(5, 3, seed=1)
    out = edit_in_tiles(image, lambda crops, positions: crops, tile=16, overlap=4)
    np.testing.assert_allclose(out, image, atol=1e-6)
