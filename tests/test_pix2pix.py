"""The pix2pix baseline, with the `tiny` preset (seconds on a CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from analogize.editfile import load_edit, save_edit
from analogize.errors import AnalogizeError
from analogize.methods import get_method
from analogize.methods.pix2pix import Pix2PixConfig, Pix2PixEdit, UNetGenerator
from analogize.pairs import PairSet
from conftest import assert_same_weights, inverted_pairs, learn_interrupted_then_resumed, mean_l1


@pytest.fixture(scope="module", name="inverted_pairs")
def inverted_pairs_fixture() -> PairSet:
    return inverted_pairs(size=48, grid=6)


@pytest.fixture(scope="module")
def trained(inverted_pairs) -> Pix2PixEdit:
    method = get_method("pix2pix")
    return method.learn(inverted_pairs, method.make_config("tiny", seed=5), progress=False)


def untrained_edit(config: Pix2PixConfig) -> Pix2PixEdit:
    torch.manual_seed(config.seed)
    return Pix2PixEdit(config, UNetGenerator(config.generator_width, config.generator_depth))


def test_output_has_the_input_size_at_odd_sizes(random_image):
    edit = untrained_edit(get_method("pix2pix").make_config("tiny"))
    for height, width in ((37, 53), (5, 3), (64, 32)):
        out = edit.edit(random_image(height, width, seed=height), seed=0)
        assert out.shape == (height, width, 3)
        assert out.dtype == np.float32
        assert 0.0 <= out.min() and out.max() <= 1.0


def test_training_lowers_the_error_on_the_pairs(inverted_pairs, trained):
    before = mean_l1(untrained_edit(trained.config), inverted_pairs)
    after = mean_l1(trained, inverted_pairs)
    assert trained.provenance.steps == trained.config.steps
    assert after < 0.6 * before, (before, after)


def test_edit_file_round_trip_gives_identical_output(tmp_path, trained, random_image):
    loaded = load_edit(save_edit(trained, tmp_path / "inverse.edit"))
    assert isinstance(loaded, Pix2PixEdit)
    assert loaded.config == trained.config
    photo = random_image(40, 56, seed=7)
    np.testing.assert_array_equal(loaded.apply(photo, seed=2), trained.apply(photo, seed=2))


def test_the_same_seed_gives_the_same_edit(inverted_pairs, trained, random_image):
    method = get_method("pix2pix")
    again = method.learn(inverted_pairs, method.make_config("tiny", seed=5), progress=False)
    photo = random_image(32, 48, seed=3)
    np.testing.assert_array_equal(again.edit(photo, seed=1), trained.edit(photo, seed=1))
    # Dropout stays on when applying (the paper's noise source), so the seed picks the noise.
    assert not np.array_equal(trained.edit(photo, seed=1), trained.edit(photo, seed=2))


def test_resumed_training_matches_an_uninterrupted_run(tmp_path, inverted_pairs, trained):
    resumed = learn_interrupted_then_resumed("pix2pix", inverted_pairs, tmp_path, seed=5,
                                             steps=trained.config.steps)
    assert_same_weights(trained, resumed)


def test_resume_with_another_model_size_is_refused(tmp_path, inverted_pairs):
    method = get_method("pix2pix")
    method.learn(inverted_pairs, method.make_config("tiny", steps=2), run_dir=tmp_path, progress=False)
    wider = method.make_config("tiny", steps=4, generator_width=16)
    with pytest.raises(AnalogizeError, match="generator_width=8 there but 16 now"):
        method.learn(inverted_pairs, wider, run_dir=tmp_path, resume=True, progress=False)


def test_ema_generator_is_the_one_applied(inverted_pairs):
    method = get_method("pix2pix")
    config = method.make_config("tiny", steps=10, ema_decay=0.9)
    edit = method.learn(inverted_pairs, config, progress=False)
    raw = method.learn(inverted_pairs, method.make_config("tiny", steps=10), progress=False)
    # Same seed, same training: only the averaging differs.
    assert any(not torch.equal(edit.state_dict()[name], tensor) for name, tensor in raw.state_dict().items())


def test_crop_size_must_fit_the_depth():
    with pytest.raises(AnalogizeError, match="multiple of 2\\*\\*generator_depth"):
        get_method("pix2pix").make_config("tiny", crop_size=40)
