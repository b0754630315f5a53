"""The plain L1 U-Net baseline, with the `tiny` preset (seconds on a CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from analogize.errors import AnalogizeError
from analogize.images import resize
from analogize.methods import get_method
from analogize.methods.unet import UNet, UNetEdit
from analogize.pairs import PairSet
from conftest import assert_same_weights, inverted_pairs, learn_interrupted_then_resumed, mean_l1


@pytest.fixture(scope="module", name="inverted_pairs")
def inverted_pairs_fixture() -> PairSet:
    return inverted_pairs(size=48, grid=6)


@pytest.fixture(scope="module")
def trained(inverted_pairs) -> UNetEdit:
    method = get_method("unet")
    return method.learn(inverted_pairs, method.make_config("tiny", seed=5), progress=False)


def tiny_config(**overrides):
    return get_method("unet").make_config("tiny", **overrides)


def untrained_edit(config) -> UNetEdit:
    torch.manual_seed(config.seed)
    return UNetEdit(config, UNet(config.width, config.levels, 2 if config.frame_position else 0))


def test_an_untrained_unet_is_the_identity_edit(random_image):
    image = random_image(40, 56, seed=1)
    np.testing.assert_allclose(untrained_edit(tiny_config()).edit(image, seed=0), image, atol=1e-6)


def test_output_has_the_input_size_at_odd_sizes(random_image):
    edit = untrained_edit(tiny_config())
    for height, width in ((37, 53), (5, 3), (150, 70)):  # 150 px spans several 64 px tiles
        out = edit.edit(random_image(height, width, seed=height), seed=0)
        assert out.shape == (height, width, 3) and out.dtype == np.float32
        assert 0.0 <= out.min() and out.max() <= 1.0


def test_training_lowers_the_error_on_the_pairs(inverted_pairs, trained):
    before = mean_l1(untrained_edit(trained.config), inverted_pairs)
    after = mean_l1(trained, inverted_pairs)
    assert trained.provenance.steps == trained.config.steps
    assert after < 0.6 * before, (before, after)


def test_resumed_training_matches_an_uninterrupted_run(tmp_path, inverted_pairs, trained):
    resumed = learn_interrupted_then_resumed("unet", inverted_pairs, tmp_path, seed=5, steps=trained.config.steps)
    assert_same_weights(trained, resumed)


def test_the_frame_position_reaches_the_network_only_when_asked_for():
    image = torch.zeros(1, 3, 32, 32)
    positions = [torch.zeros(1, 2, 32, 32), torch.ones(1, 2, 32, 32)]
    for frame_position in (True, False):
        config = tiny_config(frame_position=frame_position)
        torch.manual_seed(0)
        network = UNet(config.width, config.levels, 2 if frame_position else 0)
        torch.nn.init.normal_(network.to_change.weight)  # starts at zero: give it something to show
        first, second = (network(image, position) for position in positions)
        assert torch.equal(first, second) != frame_position


def test_settings_that_do_not_fit_together_are_refused():
    with pytest.raises(AnalogizeError, match="multiples of 2\\*\\*levels"):
        tiny_config(crop_size=30)
    with pytest.raises(AnalogizeError, match="tile_overlap"):
        tiny_config(tile_overlap=40)


def test_apply_at_a_scale_edits_a_resized_copy_and_returns_the_photo_size(trained, random_image):
    photo = random_image(64, 96, seed=4)
    out = trained.apply(photo, scale=0.5)
    assert out.shape == photo.shape
    expected = resize(trained.edit(resize(photo, (48, 32)), seed=0), (96, 64))
    np.testing.assert_allclose(out, np.clip(expected, 0.0, 1.0), atol=1e-6)
    with pytest.raises(AnalogizeError, match="scale 0"):
        trained.apply(photo, scale=0.0)
