"""The few-shot method, with the `tiny` preset (seconds on a CPU)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from analogize.editfile import load_edit, save_edit
from analogize.errors import AnalogizeError
from analogize.methods import get_method
from analogize.methods.fewshot import FewShotEdit, reference_pairs
from analogize.methods.fewshot import sample as sample_module
from analogize.methods.fewshot.config import FewShotConfig
from analogize.methods.fewshot.model import AffineColorOutput, FewShotModel, NoiseInjection, transform, warp
from analogize.methods.fewshot.train import (FewShotTask, compute_losses, draw_batch, fit_color_transform, pair_indices,
                                             train)
from analogize.data.edits import get_edit
from analogize.images import resize
from analogize.pairs import Augmentation, Pair, PairSet
from analogize.tiling import tile_starts
from conftest import assert_same_weights, inverted_pairs, learn_interrupted_then_resumed, mean_l1

ABLATIONS = ("n_to_n", "use_query", "use_flow_color", "vae_skips", "decoder_noise", "frequency_loss")


@pytest.fixture(scope="module", name="inverted_pairs")
def inverted_pairs_fixture() -> PairSet:
    return inverted_pairs(size=40, grid=5)


@pytest.fixture(scope="module")
def trained(inverted_pairs) -> FewShotEdit:
    method = get_method("fewshot")
    return method.learn(inverted_pairs, method.make_config("tiny", seed=3), progress=False)


def tiny_config(**overrides):
    return get_method("fewshot").make_config("tiny", **overrides)


def untrained_edit(pairs: PairSet, config) -> FewShotEdit:
    torch.manual_seed(config.seed)
    return FewShotEdit(config, FewShotModel(config), *reference_pairs(pairs, config))


def test_training_pass_has_the_expected_shapes_and_finite_losses(inverted_pairs):
    config = tiny_config()
    batch = draw_batch(inverted_pairs, config, np.random.default_rng(0), Augmentation())
    outputs = FewShotModel(config)(batch["x_i"], batch["y_i"], batch["x_j"], batch["y_j"], batch["sigma"],
                                   batch["noise"], batch["position_i"], batch["position_j"])
    side, latent_side = config.crop_size, config.crop_size // config.latent_downsampling
    assert outputs["edited"].shape == (config.batch_size, 3, side, side)
    assert outputs["reconstructed"].shape == (config.batch_size, 3, side, side)
    assert outputs["transformed_x_i"].shape == (config.batch_size, 3, side, side)
    assert outputs["predicted"].shape == (config.batch_size, config.latent_channels, latent_side, latent_side)
    losses = compute_losses(outputs, batch, config)
    assert set(losses) == {"pixel", "latent", "frequency", "flow", "vae", "kl"}
    for name, value in losses.items():
        assert value.ndim == 0 and torch.isfinite(value), name


def test_without_the_vae_loss_the_reconstruction_is_not_decoded(inverted_pairs):
    config = tiny_config(vae_weight=0.0)
    batch = draw_batch(inverted_pairs, config, np.random.default_rng(0), Augmentation())
    outputs = FewShotModel(config)(batch["x_i"], batch["y_i"], batch["x_j"], batch["y_j"], batch["sigma"],
                                   batch["noise"], batch["position_i"], batch["position_j"])
    assert "reconstructed" not in outputs and outputs["edited"].shape == batch["y_j"].shape
    assert compute_losses(outputs, batch, config)["vae"] == 0.0


@pytest.mark.parametrize("overrides, trains_through_y_j", [
    (dict(vae_weight=0.0, kl_weight=0.0), False), (dict(vae_weight=0.0, kl_weight=1e-3), True), (dict(), True)])
def test_y_j_is_encoded_with_gradient_only_when_a_vae_loss_uses_it(inverted_pairs, overrides, trains_through_y_j):
    config = tiny_config(**overrides)
    batch = draw_batch(inverted_pairs, config, np.random.default_rng(0), Augmentation())
    outputs = FewShotModel(config)(batch["x_i"], batch["y_i"], batch["x_j"], batch["y_j"], batch["sigma"],
                                   batch["noise"], batch["position_i"], batch["position_j"])
    assert outputs["mean_y_j"].requires_grad == trains_through_y_j
    assert outputs["edited"].requires_grad


def test_an_untrained_affine_decoder_returns_the_query():
    model = FewShotModel(tiny_config(affine_output=True))
    query = torch.rand(2, 3, 32, 32) * 2 - 1
    latent = torch.randn(2, 4, 8, 8)
    _, _, skips = model.vae.encoder(query, torch.zeros(2, 2, 32, 32))
    torch.testing.assert_close(model.vae.decoder(latent, skips, query), query)


def test_the_affine_output_applies_a_colour_matrix_and_a_bias_per_pixel():
    output = AffineColorOutput(channels=1)
    torch.nn.init.zeros_(output.project.weight)
    # Zero features, so only the bias acts: A − I = a channel swap minus I, b = 0.1 everywhere.
    swap_minus_identity = torch.tensor([[-1.0, 1, 0], [1, -1, 0], [0, 0, 0]])
    with torch.no_grad():
        output.project.bias.copy_(torch.cat([swap_minus_identity.flatten(), torch.full((3,), 0.1)]))
    image = torch.rand(1, 3, 4, 4)
    expected = image[:, [1, 0, 2]] + 0.1
    torch.testing.assert_close(output(torch.zeros(1, 1, 4, 4), image), expected)


def test_without_a_per_pixel_matrix_the_output_is_the_global_transform_plus_a_residual():
    output = AffineColorOutput(channels=1, per_pixel_matrix=False)
    assert output.project.out_channels == 3  # a bias per pixel, nothing else
    torch.nn.init.zeros_(output.project.weight)
    with torch.no_grad():
        output.base.copy_(torch.cat([torch.eye(3)[[2, 0, 1]], torch.full((3, 1), -0.5)], dim=1))
        output.project.bias.copy_(torch.tensor([0.1, 0.2, 0.3]))
    image = torch.rand(1, 3, 4, 4)
    expected = image[:, [2, 0, 1]] - 0.5 + torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)
    torch.testing.assert_close(output(torch.zeros(1, 1, 4, 4), image), expected)


def test_a_per_pixel_gain_scales_the_global_transform_before_the_residual_is_added():
    output = AffineColorOutput(channels=1, per_pixel_matrix=False, per_pixel_gain=True)
    assert output.project.out_channels == 4  # a gain and a bias per pixel
    torch.nn.init.zeros_(output.project.weight)
    with torch.no_grad():
        output.base.copy_(torch.cat([0.5 * torch.eye(3), torch.full((3, 1), 0.2)], dim=1))
        output.project.bias.copy_(torch.tensor([-0.75, 0.1, 0.2, 0.3]))  # g = −0.75: a quarter is left
    image = torch.rand(1, 3, 4, 4)
    expected = 0.25 * (0.5 * image + 0.2) + torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)
    torch.testing.assert_close(output(torch.zeros(1, 1, 4, 4), image), expected)


def test_a_per_pixel_gain_with_a_per_pixel_matrix_is_refused():
    with pytest.raises(AnalogizeError, match="per_pixel_gain needs per_pixel_matrix off"):
        FewShotConfig(affine_output=True, per_pixel_matrix=True, per_pixel_gain=True)
    # Without the affine output neither is used, so turning it off in a preset with the gain is no clash.
    assert FewShotConfig(affine_output=False, per_pixel_matrix=True, per_pixel_gain=True).per_pixel_gain


def test_the_fitted_colour_transform_recovers_an_affine_colour_map():
    before = np.random.default_rng(0).uniform(-1, 1, size=(500, 3)).astype(np.float32)
    matrix = np.array([[0.5, 0.2, 0.0], [0.0, -1.0, 0.3], [0.1, 0.1, 0.1]], dtype=np.float32)
    bias = np.array([0.1, -0.2, 0.3], dtype=np.float32)
    fitted = fit_color_transform(before, before @ matrix.T + bias)
    torch.testing.assert_close(fitted, torch.from_numpy(np.concatenate([matrix, bias[:, None]], axis=1)))


def test_the_affine_output_starts_at_the_pairs_colour_transform(inverted_pairs):
    # The pairs invert every colour: y = 1 − x, in the model's range y = −x, so [A₀ | b₀] = [−I | 0]
    # and the untrained decoder already returns the negated query.
    model = FewShotTask(inverted_pairs, tiny_config(affine_output=True)).modules["model"]
    torch.testing.assert_close(model.vae.decoder.to_image.base, torch.cat([-torch.eye(3), torch.zeros(3, 1)], 1),
                               atol=1e-4, rtol=0)
    query = torch.rand(2, 3, 32, 32) * 2 - 1
    _, _, skips = model.vae.encoder(query, torch.zeros(2, 2, 32, 32))
    torch.testing.assert_close(model.vae.decoder(torch.randn(2, 4, 8, 8), skips, query), -query, atol=1e-4, rtol=0)
    identity_start = FewShotTask(inverted_pairs, tiny_config(affine_output=True, affine_start="identity"))
    torch.testing.assert_close(identity_start.modules["model"].vae.decoder.to_image.base, torch.eye(3, 4))


def test_an_affine_edit_file_without_a_fitted_start_loads_with_the_identity(inverted_pairs):
    # Edit files learned before the fitted start existed hold no `base`; they started at the identity.
    config = tiny_config(affine_output=True)
    tensors = untrained_edit(inverted_pairs, config).state_dict()
    del tensors["model.vae.decoder.to_image.base"]
    loaded = FewShotEdit.from_state_dict(tensors, config)
    torch.testing.assert_close(loaded.model.vae.decoder.to_image.base, torch.eye(3, 4))


def test_decoder_noise_keeps_a_bf16_activation_in_bf16():
    # A float32 noise scale once promoted every bf16 decoder activation to float32 (elementwise ops
    # are not autocast), which made bf16 applying several times slower.
    injection = NoiseInjection(channels=4)
    with torch.no_grad():
        injection.weight.fill_(0.5)
    x = torch.zeros(2, 4, 8, 8, dtype=torch.bfloat16)
    noised_x = injection(x, torch.Generator().manual_seed(0))
    assert noised_x.dtype == torch.bfloat16 and noised_x.abs().sum() > 0


def test_the_latent_has_unit_scale_per_image_whatever_the_encoder_weights():
    # Without a KL pull the latent's scale is free; it once grew until M_y's latent loss diverged.
    model = FewShotModel(tiny_config())
    with torch.no_grad():
        model.vae.encoder.to_moments.weight.mul_(1000.0)
    images = torch.rand(3, 3, 32, 32) * torch.tensor([0.1, 1.0, 2.0]).view(3, 1, 1, 1) - 1.0
    mean, _, _ = model.vae.encoder(images, torch.zeros(3, 2, 32, 32))
    root_mean_square = mean.pow(2).mean(dim=(1, 2, 3)).sqrt()
    torch.testing.assert_close(root_mean_square, torch.ones(3), atol=1e-4, rtol=0)


def test_training_keeps_the_frame_in_place_unless_affine_is_asked_for(inverted_pairs):
    # A random affine warp moves a frame-bound edit such as a vignette (see FewShotConfig.affine).
    assert not FewShotTask(inverted_pairs, tiny_config()).augmentation.affine
    assert FewShotTask(inverted_pairs, tiny_config(affine=True)).augmentation.affine


def test_the_cpu_preset_trains_in_bf16():
    assert get_method("fewshot").make_config("cpu").loop_settings(ema_module="model", progress=False).mixed_precision == "bf16"


@pytest.mark.parametrize("size", [32, 128])
def test_identity_flow_returns_the_input_exactly(size):
    image = torch.rand(2, 3, size, size)
    assert torch.equal(warp(image, torch.zeros(2, 2, size, size)), image)
    # Gain 1 and bias 0 too, from a lower-resolution [F, C] as M_x gives it.
    assert torch.equal(transform(image, torch.zeros(2, 4, size // 4, size // 4)), image)


def test_flow_of_one_pixel_shifts_the_image_by_one_pixel():
    image = torch.rand(1, 3, 32, 32)
    flow = torch.zeros(1, 2, 32, 32)
    flow[:, 0] = 2.0 / 32  # one pixel to the right in grid_sample's [-1, 1] units
    shifted = warp(image, flow)
    torch.testing.assert_close(shifted[..., :-1], image[..., 1:], atol=1e-5, rtol=0)


def test_n_to_n_sampler_draws_every_pair_of_pairs():
    first, second = pair_indices(3, 400, np.random.default_rng(0), n_to_n=True)
    assert set(zip(first.tolist(), second.tolist())) == {(i, j) for i in range(3) for j in range(3)}
    first, second = pair_indices(3, 400, np.random.default_rng(0), n_to_n=False)
    assert np.array_equal(first, second) and set(first.tolist()) == {0, 1, 2}


def test_without_n_to_n_both_sides_are_the_same_crop(inverted_pairs):
    batch = draw_batch(inverted_pairs, tiny_config(n_to_n=False, batch_size=4), np.random.default_rng(1),
                       Augmentation(affine=True))
    assert torch.equal(batch["x_i"], batch["x_j"]) and torch.equal(batch["y_i"], batch["y_j"])
    batch = draw_batch(inverted_pairs, tiny_config(batch_size=4), np.random.default_rng(1), Augmentation())
    assert not torch.equal(batch["x_i"], batch["x_j"])


def test_training_lowers_the_loss_and_the_error_on_the_pairs(inverted_pairs, trained):
    # A fresh run with the same settings: the last ten steps' mean loss against the first step's.
    _, result = train(inverted_pairs, trained.config, run_dir=None, resume=False, progress=False)
    pixel = [row["pixel"] for row in result.losses]
    assert np.mean(pixel[-10:]) < 0.5 * pixel[0], pixel
    before = mean_l1(untrained_edit(inverted_pairs, trained.config), inverted_pairs)
    after = mean_l1(trained, inverted_pairs)
    assert trained.provenance.steps == trained.config.steps
    assert after < 0.5 * before, (before, after)


def test_resumed_training_matches_an_uninterrupted_run(tmp_path, inverted_pairs, trained):
    resumed = learn_interrupted_then_resumed("fewshot", inverted_pairs, tmp_path, seed=3,
                                             steps=trained.config.steps)
    assert_same_weights(trained, resumed)


def test_output_has_the_input_size_at_odd_sizes(inverted_pairs, random_image):
    edit = untrained_edit(inverted_pairs, tiny_config())
    for height, width in ((37, 53), (5, 3), (80, 32)):
        out = edit.apply(random_image(height, width, seed=height), seed=0)
        assert out.shape == (height, width, 3)
        assert out.dtype == np.float32
        assert 0.0 <= out.min() and out.max() <= 1.0


def test_tiles_blend_back_into_the_image_without_seams(monkeypatch, random_image):
    # With a sampler that returns each tile unchanged, tiling and blending must give back the image.
    monkeypatch.setattr(sample_module, "sample", lambda model, before, latents, queries, *_, **__: queries)
    config = tiny_config()
    references = reference_pairs(inverted_pairs(size=40, grid=5), config)
    image = random_image(70, 101, seed=4)
    out = sample_module.edit_image(FewShotModel(config), *references, image, tile=32, overlap=8,
                                   steps=1, start_noise=0.5, seed=0, tiles_per_batch=5)
    np.testing.assert_allclose(out, image, atol=1e-6)


def test_edit_file_round_trip_gives_identical_output(tmp_path, trained, random_image):
    loaded = load_edit(save_edit(trained, tmp_path / "inverse.edit"))
    assert isinstance(loaded, FewShotEdit)
    assert loaded.config == trained.config
    photo = random_image(40, 56, seed=7)
    np.testing.assert_array_equal(loaded.apply(photo, seed=2), trained.apply(photo, seed=2))


def test_the_seed_makes_applying_reproducible(trained, random_image):
    photo = random_image(32, 32, seed=3)
    np.testing.assert_array_equal(trained.edit(photo, seed=1), trained.edit(photo, seed=1))
    assert not np.array_equal(trained.edit(photo, seed=1), trained.edit(photo, seed=2))


@pytest.mark.parametrize("switch", ABLATIONS)
def test_each_ablation_builds_and_trains_a_step(inverted_pairs, switch):
    config = tiny_config(steps=1, **{switch: False})
    names = [name for name, _ in FewShotModel(config).named_parameters()]
    assert any(".noise." in name for name in names) == config.decoder_noise
    _, result = train(inverted_pairs, config, run_dir=None, resume=False, progress=False)
    assert all(math.isfinite(value) for value in result.losses[0].values())


@pytest.mark.parametrize("switches, changed", [
    ({"use_flow_color": False}, "x_i"),  # x_i reaches M_y only through [F, C]
    ({"use_flow_color": False, "use_query": False}, "x_j"),  # x_j through [F, C] and its latent
])
def test_ablations_cut_what_m_y_sees(inverted_pairs, switches, changed):
    torch.manual_seed(0)
    config = tiny_config(**switches)
    model = FewShotModel(config)
    # Non-zero [F, C] and prediction, which start at zero, so there is something to compare.
    torch.nn.init.normal_(model.flow.to_flow_color.weight, std=0.05)
    torch.nn.init.normal_(model.denoiser.final.project.weight)
    batch = draw_batch(inverted_pairs, config, np.random.default_rng(0), Augmentation())
    inputs = {name: batch[name] for name in ("x_i", "y_i", "x_j", "y_j", "sigma", "noise", "position_i", "position_j")}
    first = model(**inputs)["predicted"]
    second = model(**dict(inputs, **{changed: torch.rand_like(inputs[changed])}))["predicted"]
    torch.testing.assert_close(first, second)
    full = FewShotModel(tiny_config())
    full.load_state_dict(model.state_dict())
    assert not torch.allclose(full(**inputs)["predicted"],
                              full(**dict(inputs, **{changed: torch.rand_like(inputs[changed])}))["predicted"])


def test_settings_that_do_not_fit_together_are_refused():
    with pytest.raises(AnalogizeError, match="not a multiple of latent_downsampling"):
        tiny_config(crop_size=36)
    with pytest.raises(AnalogizeError, match="ensemble_size 3 exceeds reference_count 2"):
        tiny_config(ensemble_size=3)


def test_a_vignette_learned_from_small_pairs_covers_a_large_photo_once():
    # Issue 15: learned from 20 pairs at 128 px and applied at 1024×768, a vignette must be drawn
    # once over the frame (bright centre, dark corners), not once per tile: no brightness ripple
    # at the tile pitch. Without frame positions the tiles cannot know where they lie.
    rng = np.random.default_rng(0)
    vignette = get_edit("vignette")
    fields = [resize(rng.random((6, 6, 3)).astype(np.float32), (128, 128)) for _ in range(20)]
    pairs = PairSet([Pair(f"field{index}", field, vignette(field)) for index, field in enumerate(fields)])
    method = get_method("fewshot")
    config = method.make_config("tiny", steps=150, seed=0, tile_overlap=16)
    edit = method.learn(pairs, config, progress=False)
    luma = edit.apply(np.full((768, 1024, 3), 0.6, dtype=np.float32)).mean(axis=2)
    centre, corners = luma[374:394, 502:522].mean(), np.mean([luma[:20, :20].mean(), luma[-20:, -20:].mean(),
                                                             luma[:20, -20:].mean(), luma[-20:, :20].mean()])
    assert centre - corners > 0.08, (centre, corners)
    starts = tile_starts(1024, config.crop_size, config.tile_overlap)
    pitch_frequency = round(1024 / ((starts[-1] - starts[0]) / (len(starts) - 1)))  # cycles along the row
    for row in (luma[384], luma[200]):
        spectrum = np.abs(np.fft.rfft(row - row.mean()))
        ripple = spectrum[pitch_frequency - 1:pitch_frequency + 2].max()
        assert ripple < 0.1 * spectrum[1:3].max(), (ripple, spectrum[1:3])
