"""PairEdit and the backbone layer, on tiny random FLUX and Stable Diffusion pipelines."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from analogize.backbones import Backbone, BackboneConfig, Level, load_backbone
from analogize.cli import main
from analogize.editfile import load_edit
from analogize.errors import AnalogizeError
from analogize.images import load_image
from analogize.methods import get_method
from analogize.methods.pairedit import (
    CONTENT,
    SEMANTIC,
    PairEditTask,
    lora_parameters,
    pairedit_targets,
)
from analogize.pairs import Pair, PairSet
from conftest import make_pair_folder, random_image, warm_edit

FAMILIES = ("flux", "sd", "sd-v", "sdxl")


def one_pair(seed: int = 0) -> PairSet:
    image = random_image(32, 32, seed=seed)
    return PairSet([Pair("p", image, warm_edit(image))])


def formula_backbone(prediction: str) -> Backbone:
    """A backbone with no networks: enough for the target formulas."""
    return Backbone(None, "flux" if prediction == "flow" else "sd", prediction, torch.device("cpu"), torch.float32)


def test_flow_matching_targets_are_the_papers():
    source, target, noise = torch.tensor([[1.0, -2.0]]), torch.tensor([[0.5, 1.0]]), torch.tensor([[0.3, -0.1]])
    level = Level(timestep=600.0, signal=0.4, noise=0.6)  # σ = 0.6
    noised, content, semantic = pairedit_targets(formula_backbone("flow"), source, target, noise, level,
                                                 beta=3.0, eta=4.0)
    torch.testing.assert_close(noised, torch.tensor([[1.0 + 0.6 * 3 * 0.3, -2.0 + 0.6 * 3 * -0.1]]))
    torch.testing.assert_close(content, torch.tensor([[0.9, -0.3]]))  # β·ε
    torch.testing.assert_close(semantic, torch.tensor([[0.9 + 4 * 0.5, -0.3 + 4 * -3.0]]))  # β·ε + η·(A − B)


def test_epsilon_targets_follow_the_derivation():
    source, target, noise = torch.tensor([[1.0]]), torch.tensor([[3.0]]), torch.tensor([[0.5]])
    level = Level(timestep=500.0, signal=0.6, noise=0.8)
    noised, content, semantic = pairedit_targets(formula_backbone("epsilon"), source, target, noise, level,
                                                 beta=2.0, eta=4.0)
    torch.testing.assert_close(noised, torch.tensor([[0.6 * 1.0 + 0.8 * 2.0 * 0.5]]))
    torch.testing.assert_close(content, torch.tensor([[1.0]]))  # β·ε
    # β·ε + η·signal/(signal + noise)·(A − B) = 1 + 4 · 0.6/1.4 · (−2)
    torch.testing.assert_close(semantic, torch.tensor([[1.0 + 4 * 0.6 / 1.4 * -2.0]]))


@pytest.mark.parametrize("prediction", ["flow", "epsilon", "v_prediction"])
def test_without_guidance_the_semantic_target_is_the_content_target(prediction):
    generator = torch.Generator().manual_seed(0)
    source, target, noise = (torch.randn(2, 4, 3, 3, generator=generator) for _ in range(3))
    level = Level(400.0, 0.8, 0.6) if prediction != "flow" else Level(400.0, 0.6, 0.4)
    _, content, semantic = pairedit_targets(formula_backbone(prediction), source, target, noise, level, 1.5, 0.0)
    torch.testing.assert_close(semantic, content)


@pytest.mark.parametrize("prediction", ["flow", "epsilon", "v_prediction"])
def test_the_semantic_target_moves_the_clean_estimate_towards_b(prediction):
    backbone = formula_backbone(prediction)
    source, target, noise = torch.zeros(1, 1), torch.ones(1, 1), torch.full((1, 1), 0.7)
    level = Level(300.0, 0.8, 0.6) if prediction != "flow" else Level(300.0, 0.5, 0.5)
    noised, _, semantic = pairedit_targets(backbone, source, target, noise, level, 1.0, 1.0)
    clean, _ = backbone.estimates(noised, semantic, level)
    torch.testing.assert_close(clean, torch.full((1, 1), level.sigma))  # A + σ·η·(B − A)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_loss_trains_only_its_own_lora(tiny_backbones, family):
    method = get_method("pairedit")
    config = method.make_config("tiny", base_model=str(tiny_backbones[family]))
    backbone = load_backbone(config)
    task = PairEditTask(one_pair(), config, backbone)
    denoiser = backbone.denoiser
    content, semantic = lora_parameters(denoiser, CONTENT), lora_parameters(denoiser, SEMANTIC)
    base = [parameter for name, parameter in denoiser.named_parameters() if "lora_" not in name]
    assert content and semantic and base
    batch = task.batch(np.random.default_rng(0))
    seen = []

    class Recorder:  # stands in for the accelerator: records the gradients after each loss
        def backward(self, loss):
            loss.backward()
            seen.append([[None if p.grad is None else p.grad.clone() for p in group] for group in (content, semantic)])

    task.optimizers = {"loras": torch.optim.SGD(content + semantic, lr=0.0)}
    task.training_step(batch, Recorder())
    (content_first, semantic_first), (content_second, semantic_second) = seen
    # The content loss reaches the content LoRA only (its B starts at zero, so only B moves first).
    assert all(grad is not None for grad in content_first) and any(grad.abs().sum() > 0 for grad in content_first)
    assert all(grad is None for grad in semantic_first)
    # The semantic loss reaches the semantic LoRA only: the content LoRA's gradients are unchanged.
    assert all(grad is not None for grad in semantic_second) and any(grad.abs().sum() > 0 for grad in semantic_second)
    assert all(torch.equal(before, after) for before, after in zip(content_first, content_second))
    assert all(parameter.grad is None for parameter in base)


def test_training_on_one_pair_lowers_both_losses(tiny_backbones):
    # FLUX, the original's backbone. (The tiny SD UNet has too little attention for its LoRAs to
    # move its losses in a few dozen steps: 1.07 -> 1.05 measured; its training runs in the tests above.)
    method = get_method("pairedit")
    config = method.make_config("tiny", base_model=str(tiny_backbones["flux"]), steps=60, learning_rate=5e-2)
    backbone = load_backbone(config)
    task = PairEditTask(one_pair(), config, backbone)
    from analogize.training import run_training

    losses = run_training(task, config.loop_settings(ema_module="denoiser", progress=False)).losses
    for name in ("content", "semantic"):
        first = np.mean([row[name] for row in losses[:10]])
        last = np.mean([row[name] for row in losses[-10:]])
        assert last < 0.8 * first, (name, first, last)


def test_learn_apply_and_export_from_the_command_line(tiny_backbones, tmp_path, capsys):
    images = {f"p{i}": random_image(32, 32, seed=i) for i in range(2)}
    pairs = make_pair_folder(tmp_path / "pairs", {name: (image, warm_edit(image)) for name, image in images.items()})
    edit_path = tmp_path / "warm.edit"
    assert main(["learn", str(pairs), "-o", str(edit_path), "--method", "pairedit", "--preset", "tiny",
                 "--base-model", str(tiny_backbones["sd"]), "--steps", "4", "--quiet"]) == 0
    edit = load_edit(edit_path)
    assert edit.method == "pairedit" and edit.config.base_model == str(tiny_backbones["sd"])
    # Only the LoRAs travel in the edit file and in checkpoints, never the base model.
    assert all(".lora_A." in name or ".lora_B." in name for name in edit.state_dict())
    checkpoint = next((tmp_path / "warm.edit.run" / "checkpoints").iterdir())
    from safetensors.torch import load_file

    assert all("lora_" in name for name in load_file(checkpoint / "model.safetensors"))

    photo = tmp_path / "photo.png"
    from conftest import write_image

    write_image(random_image(27, 41, seed=7), photo)
    assert main(["apply", str(edit_path), str(photo), "-o", str(tmp_path / "out"), "--quiet"]) == 0
    assert load_image(tmp_path / "out" / "photo.png").shape == (27, 41, 3)

    capsys.readouterr()
    assert main(["export", str(edit_path), "-o", str(tmp_path / "export")]) == 0
    assert len(capsys.readouterr().out.split()) == 4  # what the files do: tests/test_exports.py


def test_a_missing_base_model_says_how_to_get_it(tmp_path):
    with pytest.raises(AnalogizeError) as error:
        load_backbone(BackboneConfig(base_model="black-forest-labs/FLUX.1-dev"))
    message = str(error.value)
    assert "\n" not in message and "download" in message and "--base-model" in message
    with pytest.raises(AnalogizeError, match="model_index.json"):
        load_backbone(BackboneConfig(base_model=str(tmp_path)))
    with pytest.raises(AnalogizeError, match="--base-model"):
        get_method("pairedit").learn(one_pair(), get_method("pairedit").make_config("tiny"), progress=False)


ORIGINAL_STYLE_CONFIG = """\
device: 0
pretrained_model_name_or_path: "{base_model}"
datasets: [age]
start_step: 0
end_step: 3
num_inference_steps: 4
guidance_scale: 3.5
cfg_eta: 2
noise_scales: [3]
train_iteration: 3
save_per_steps: 2
skips: [1]
scales: 0,0.2,0.4
"""


def test_the_originals_yaml_is_read_as_our_settings(tiny_backbones, tmp_path):
    config_file = tmp_path / "train_image.yaml"
    config_file.write_text(ORIGINAL_STYLE_CONFIG.format(base_model=tiny_backbones["flux"]))
    images = {"p0": random_image(32, 32, seed=0)}
    pairs = make_pair_folder(tmp_path / "pairs", {name: (image, warm_edit(image)) for name, image in images.items()})
    edit_path = tmp_path / "from-yaml.edit"
    assert main(["learn", str(pairs), "-o", str(edit_path), "--method", "pairedit", "--preset", "tiny",
                 "--config", str(config_file), "--quiet"]) == 0
    config = load_edit(edit_path).config
    assert (config.base_model, config.eta, config.noise_scale, config.grid_steps, config.sample_steps) == (
        str(tiny_backbones["flux"]), 2, 3, 4, 4)
    assert (config.first_level, config.last_level, config.steps, config.checkpoint_every, config.skip) == (0, 3, 3, 2, 1)

    real = ORIGINAL_STYLE_CONFIG + "image_ids: [610]\nsemantic_cfg_scale: 0.5\n"
    config_file.write_text(real.format(base_model=tiny_backbones["flux"]))
    settings = get_method("pairedit").settings_from_file(__import__("yaml").safe_load(config_file.read_text()), "x")
    assert settings["inversion_steps"] == 3 and settings["semantic_cfg"] == 0.5 and "steps" not in settings

    config_file.write_text("cfg_eta: 2\nlearning_rat: 0.1\n")
    with pytest.raises(AnalogizeError, match="unknown setting.*learning_rat"):
        get_method("pairedit").settings_from_file({"cfg_eta": 2, "learning_rat": 0.1}, str(config_file))


def lora_deltas(lora: dict[str, torch.Tensor], scale: float) -> dict[str, torch.Tensor]:
    """ΔW = scale · B · A of every layer."""
    return {key.replace(".lora_A.weight", ""): scale * lora[key.replace("lora_A", "lora_B")] @ lora[key]
            for key in lora if ".lora_A." in key}


def test_merged_edits_add_their_loras_exactly(tiny_backbones, tmp_path, capsys):
    method = get_method("pairedit")
    edits = []
    for seed in (0, 1):
        config = method.make_config("tiny", base_model=str(tiny_backbones["sd"]), steps=3, seed=seed,
                                    learning_rate=5e-2)
        edits.append(method.learn(one_pair(seed), config, progress=False))
    paths = [tmp_path / f"e{index}.edit" for index in range(2)]
    from analogize.editfile import save_edit

    for edit, path in zip(edits, paths):
        save_edit(edit, path)
    assert main(["merge", *map(str, paths), "--weights", "1,0.5", "-o", str(tmp_path / "both.edit")]) == 0
    merged = load_edit(tmp_path / "both.edit")
    scale = edits[0].config.alpha / edits[0].config.rank
    first, second = (lora_deltas(edit.semantic, scale) for edit in edits)
    combined = lora_deltas(merged.semantic, merged.config.alpha / merged.config.rank)
    assert merged.config.rank == 2 * edits[0].config.rank
    for layer, delta in combined.items():
        torch.testing.assert_close(delta, first[layer] + 0.5 * second[layer])
    content = lora_deltas(merged.content, 1.0)
    for layer, delta in content.items():
        expected = (lora_deltas(edits[0].content, scale)[layer] + lora_deltas(edits[1].content, scale)[layer]) / 2
        torch.testing.assert_close(delta, expected)

    capsys.readouterr()
    assert main(["merge", str(paths[0]), "-o", str(tmp_path / "one.edit")]) == 2
    assert "two or more" in capsys.readouterr().err


def test_a_strength_map_goes_through_the_pixels_surgery(tiny_backbones, monkeypatch):
    pairedit = importlib.import_module("analogize.methods.pairedit")

    calls = []
    original = pairedit.pixels_edit

    def spy(backbone, source, exemplars, **settings):
        from peft.tuners.tuners_utils import BaseTunerLayer

        calls.append(exemplars[0].edit_map)
        layers = [module for module in backbone.denoiser.modules() if isinstance(module, BaseTunerLayer)]
        assert layers and all(layer.disable_adapters for layer in layers)  # the base model, LoRAs off
        return original(backbone, source, exemplars, **settings)

    monkeypatch.setattr(pairedit, "pixels_edit", spy)
    method = get_method("pairedit")
    edit = method.learn(one_pair(), method.make_config("tiny", base_model=str(tiny_backbones["sd"]), steps=2),
                        progress=False)
    image = random_image(16, 20, seed=3)
    strength_map = np.zeros((16, 20), np.float32)
    strength_map[:, 10:] = 0.5
    edit.apply(image, strength_map=strength_map)
    assert len(calls) == 1
    np.testing.assert_allclose(calls[0][:, :9], 1.0)  # PIXELS' white: keep the source
    np.testing.assert_allclose(calls[0][:, 11:], 0.5)


def test_generate_draws_an_image_of_the_base_models_own_with_the_semantic_slider(tiny_backbones):
    # docs/methods/pairedit.md: the original's generation with sliders.
    method = get_method("pairedit")
    config = method.make_config("tiny", base_model=str(tiny_backbones["flux"]), steps=3, learning_rate=5e-2)
    edit = method.learn(one_pair(), config, progress=False)
    plain = edit.generate(scale=0.0, seed=1)
    assert plain.shape == (config.resolution, config.resolution, 3) and 0.0 <= plain.min() <= plain.max() <= 1.0
    np.testing.assert_array_equal(edit.generate(scale=0.0, seed=1), plain)  # the seed fixes the image
    assert not np.array_equal(edit.generate(scale=0.0, seed=2), plain)
    assert not np.array_equal(edit.generate(scale=2.0, seed=1), plain)  # the slider moves it
