"""PIXELS: the latent surgery, its maps and exemplars, on tiny random backbones."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from analogize.backbones import BackboneConfig, load_backbone
from analogize.cli import main
from analogize.errors import AnalogizeError
from analogize.images import load_image
from analogize.methods.pixels import (
    Exemplar,
    combine,
    img2img,
    img2img_levels,
    pixels_edit,
    pixels_surgery,
    place,
)
from conftest import random_image, write_image

STEPS = 8


@pytest.fixture(scope="module", params=["flux", "sd", "sdxl-refiner", "kandinsky"])
def backbone(request, tiny_backbones):
    prior = str(tiny_backbones["kandinsky-prior"]) if request.param == "kandinsky" else ""
    return load_backbone(BackboneConfig(base_model=str(tiny_backbones[request.param]), resolution=32), prior=prior)


def latents(backbone, seed):
    generator = torch.Generator().manual_seed(seed)
    source = backbone.encode(torch.rand(1, 3, 32, 32, generator=generator) * 2 - 1).float()
    exemplar = backbone.encode(torch.rand(1, 3, 32, 32, generator=generator) * 2 - 1).float()
    noise = [torch.randn(source.shape, generator=generator) for _ in range(2)]
    return source, exemplar, noise


def run(backbone, edit_map_value, locked=None, seed=0):
    source, exemplar, (source_noise, exemplar_noise) = latents(backbone, seed)
    edit_map = torch.full((1, 1, *source.shape[-2:]), edit_map_value) if isinstance(edit_map_value, float) \
        else edit_map_value
    result = img2img(backbone, exemplar, exemplar_noise, steps=STEPS, strength=1.0, condition=backbone.condition(""),
                     surgery=pixels_surgery(source, source_noise, edit_map, STEPS, locked))
    return result, source, exemplar, source_noise, exemplar_noise


def test_an_all_black_map_is_plain_img2img_of_the_exemplar(backbone):
    result, _, exemplar, _, exemplar_noise = run(backbone, 0.0)
    plain = img2img(backbone, exemplar, exemplar_noise, steps=STEPS, strength=1.0, condition=backbone.condition(""))
    assert torch.equal(result, plain)


def test_an_all_white_map_is_the_backbones_reconstruction_of_the_source(backbone):
    result, source, _, source_noise, _ = run(backbone, 1.0)
    # Every step is reset to the noised source, so what is left is the model's estimate of the
    # source from its last noise level.
    last = img2img_levels(backbone, STEPS, 1.0)[-1]
    start = last.noised(source, source_noise)
    clean, _ = backbone.estimates(start, backbone.predict(start, last, backbone.condition("")), last)
    torch.testing.assert_close(result, clean)


def test_a_pixel_with_value_m_is_locked_for_its_first_m_n_steps(backbone):
    source, _, _ = latents(backbone, 0)
    values = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0, 0.3])
    height, width = source.shape[-2:]
    edit_map = values.repeat(height * width // len(values) + 1)[: height * width].reshape(1, 1, height, width)
    locked = []
    run(backbone, edit_map, locked)
    assert len(locked) == STEPS
    locked_steps = torch.stack(locked).sum(dim=0)[0, 0]  # (h, w): steps each pixel was held to the source
    for value in values.tolist():
        expected = int(np.ceil(value * STEPS - 1e-9))  # #{i : i/N < m}
        assert torch.all(locked_steps[edit_map[0, 0] == value] == expected), value


def test_two_exemplars_with_disjoint_maps_each_act_in_their_region_only():
    source = torch.zeros(1, 2, 4, 4)
    first, second = torch.full((1, 2, 4, 4), 1.0), torch.full((1, 2, 4, 4), 2.0)
    left, right = torch.ones(1, 1, 4, 4), torch.ones(1, 1, 4, 4)
    left[..., :2] = 0.25
    right[..., 3:] = 0.0
    exemplar, edit_map = combine(source, [(first, left), (second, right)])
    assert torch.all(exemplar[..., :2] == 1.0) and torch.all(exemplar[..., 3:] == 2.0)
    assert torch.all(exemplar[..., 2] == 0.0)  # in neither region: the source
    assert torch.all(edit_map[..., :2] == 0.25) and torch.all(edit_map[..., 3:] == 0.0)
    assert torch.all(edit_map[..., 2] == 1.0)


def test_pixels_edit_keeps_the_source_size_and_placement_aligns_a_reference(backbone):
    source = random_image(30, 44, seed=1)
    reference = random_image(10, 12, seed=2)
    exemplar, edit_map = place(reference, source, scale=2.0, left=30, top=5)
    assert exemplar.shape == source.shape and edit_map.shape == source.shape[:2]
    assert np.array_equal(exemplar[5:25, 30:44], __import__("analogize.images", fromlist=["resize"]).resize(
        reference, (24, 20))[:, :14])
    assert edit_map[5:25, 30:].max() == 0.0 and edit_map[:5].min() == 1.0 and edit_map[:, :30].min() == 1.0
    result = pixels_edit(backbone, source, [Exemplar(exemplar, edit_map)], steps=4, seed=3)
    assert result.shape == source.shape and result.dtype == np.float32
    with pytest.raises(AnalogizeError, match="misses"):
        place(reference, source, left=100)


def test_progressive_edits_from_the_command_line_keep_their_history(tiny_backbones, tmp_path):
    source = write_image(random_image(24, 32, seed=0), tmp_path / "photo.png")
    reference = write_image(random_image(12, 12, seed=1), tmp_path / "hat.png")
    edit_map = np.zeros((24, 32), dtype=np.float32)
    edit_map[:, :16] = 1.0
    write_image(np.repeat(edit_map[..., None], 3, axis=2), tmp_path / "map.png")
    common = ["--base-model", str(tiny_backbones["sd"]), "--steps", "3", "--resolution", "32", "--quiet"]
    assert main(["edit", str(source), "--exemplar", str(tmp_path / "hat.png"), "--map", str(tmp_path / "map.png"),
                 "-o", str(tmp_path / "once.png"), *common]) == 0
    assert main(["edit", str(tmp_path / "once.png"), "--exemplar", f"{tmp_path / 'hat.png'}@0.5,4,6",
                 "-o", str(tmp_path / "twice.png"), *common]) == 0
    assert load_image(tmp_path / "twice.png").shape == (24, 32, 3)
    history = json.loads((tmp_path / "twice.png.history.json").read_text())
    assert [step["source"] for step in history] == [str(source), str(tmp_path / "once.png")]
    assert history[1]["exemplars"][0]["placement"] == {"scale": 0.5, "left": 4, "top": 6}
    assert history[0]["exemplars"][0]["map"] == str(tmp_path / "map.png")
