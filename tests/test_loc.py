"""LoRA of Change on a tiny random InstructPix2Pix pipeline (tiny_backbones "ip2p"), CPU only."""

from __future__ import annotations

import dataclasses
import json
import shutil
import time

import numpy as np
import pytest
import torch

from analogize.backbones import load_backbone
from analogize.cli import main
from analogize.editfile import load_edit, save_edit
from analogize.errors import AnalogizeError
from analogize.methods import get_method
from analogize.methods.loc import LocEdit, generate_lora, sample, train_loc
from analogize.methods.loc.data import PairQuads, folder_pairs, magicbrush_pairs, manifest_pairs, quad_source
from analogize.methods.loc.lora import generated_lora, mean_lora
from analogize.methods.loc.train import ReverseTask, build_hypernetwork, load_hypernetwork
from analogize.pairs import Pair, PairSet
from analogize.training import LoopSettings, run_training
from conftest import assert_clear_error, make_pair_folder, random_image, warm_edit


@pytest.fixture
def trained(tiny_hypernetwork):
    """`train-loc --preset tiny` (base model, then hypernetwork): conftest trains it once."""
    return tiny_hypernetwork


@pytest.fixture(scope="module")
def ip2p(tiny_backbones):
    """The tiny config on the random ip2p backbone (frozen: tests may share it)."""
    config = get_method("loc").make_config("tiny", base_model=str(tiny_backbones["ip2p"]))
    return config, load_backbone(config)


@pytest.fixture
def setup(ip2p):
    """The tiny config, its backbone and a hypernetwork whose up-heads are random (a fresh one's
    are zero, which would make every LoRA zero)."""
    config, backbone = ip2p
    torch.manual_seed(0)
    hypernetwork = build_hypernetwork(config, backbone.denoiser)
    for head in hypernetwork.decoder.up_heads:
        torch.nn.init.normal_(head.weight, std=0.1)
    return config, backbone, hypernetwork


class FixedQuads:
    """Four known images, so a batch's order can be checked."""

    description = "fixed"

    def __init__(self, size: int):
        self.images = [np.full((size, size, 3), value, dtype=np.float32) for value in (0.1, 0.4, 0.6, 0.9)]

    def quad(self, rng):
        return tuple(self.images)


def pairs(count: int = 1, size: int = 32) -> PairSet:
    images = [random_image(size, size, seed=seed) for seed in range(count)]
    return PairSet([Pair(f"p{i}", image, warm_edit(image)) for i, image in enumerate(images)])


def images(count: int, size: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.rand(count, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_the_generated_lora_has_one_factor_pair_per_target_layer(setup):
    config, backbone, hypernetwork = setup
    factors = hypernetwork(images(3), images(3, seed=1))
    layers = dict(backbone.denoiser.named_modules())
    expected = [name for name, module in layers.items() if isinstance(module, torch.nn.Linear)
                and name.rsplit(".", 2)[-2:] in (["attn1", "to_q"], ["attn1", "to_k"], ["attn1", "to_v"])
                or name.endswith("attn1.to_out.0")]
    assert sorted(factors) == sorted(expected) and len(expected) == 16  # 4 attention blocks × 4 projections
    for name, (down, up) in factors.items():  # antisymmetric: two rank-r halves
        assert down.shape == (3, 2 * config.rank, layers[name].in_features)
        assert up.shape == (3, layers[name].out_features, 2 * config.rank)
    plain = build_hypernetwork(dataclasses.replace(config, antisymmetric=False), backbone.denoiser)
    for name, (down, up) in plain(images(3), images(3, seed=1)).items():
        assert down.shape == (3, config.rank, layers[name].in_features)
        assert up.shape == (3, layers[name].out_features, config.rank)


def test_the_reversed_pair_gives_the_negated_update_and_no_change_gives_none(setup):
    _, _, hypernetwork = setup
    before, after = images(2), images(2, seed=1)
    update = lambda factors: {name: up @ down for name, (down, up) in factors.items()}  # noqa: E731  (N, out, in)
    forward, backward, still = (update(hypernetwork(*images_)) for images_ in
                                ((before, after), (after, before), (before, before)))
    for name, delta in forward.items():
        assert delta.abs().max() > 1e-4
        torch.testing.assert_close(backward[name], -delta)
        torch.testing.assert_close(still[name], torch.zeros_like(delta))


def test_a_fresh_hypernetwork_changes_nothing(ip2p):
    config, backbone = ip2p
    factors = build_hypernetwork(config, backbone.denoiser)(images(1), images(1, seed=1))
    assert all(torch.count_nonzero(up) == 0 for _, up in factors.values())  # zero up-heads: ΔW = 0


def test_plus_then_minus_delta_restores_the_base_output_without_touching_its_weights(setup):
    _, backbone, hypernetwork = setup
    weights = {name: value.clone() for name, value in backbone.denoiser.state_dict().items()}
    factors = hypernetwork(images(2), images(2, seed=1))
    noised, query = torch.randn(2, 4, 16, 16), torch.randn(2, 4, 16, 16)
    level, condition = backbone.levels(10)[3], backbone.condition("")
    with torch.no_grad():
        base = backbone.predict(noised, level, condition, image_latent=query)
        with generated_lora(backbone.denoiser, factors, sign=1.0, scale=2.0):
            edited = backbone.predict(noised, level, condition, image_latent=query)
            with generated_lora(backbone.denoiser, factors, sign=-1.0, scale=2.0):
                restored = backbone.predict(noised, level, condition, image_latent=query)
        after = backbone.predict(noised, level, condition, image_latent=query)
    assert (edited - base).abs().max() > 1e-3
    torch.testing.assert_close(restored, base, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(after, base, atol=0, rtol=0)  # the hooks are gone
    for name, value in backbone.denoiser.state_dict().items():
        assert torch.equal(value, weights[name]), name
    assert not any(parameter.requires_grad for parameter in backbone.denoiser.parameters())


def test_each_sample_of_a_batch_gets_its_own_lora(setup):
    _, backbone, hypernetwork = setup
    factors = hypernetwork(images(2), images(2, seed=1))
    first = {name: (down[:1], up[:1]) for name, (down, up) in factors.items()}
    noised, query = torch.randn(2, 4, 16, 16), torch.randn(2, 4, 16, 16)
    level, condition = backbone.levels(10)[3], backbone.condition("")
    with torch.no_grad():
        with generated_lora(backbone.denoiser, factors):
            both = backbone.predict(noised, level, condition, image_latent=query)
        with generated_lora(backbone.denoiser, first):
            alone = backbone.predict(noised[:1], level, condition, image_latent=query[:1])
    torch.testing.assert_close(both[:1], alone, atol=1e-5, rtol=1e-5)


def test_both_reverse_terms_train_the_hypernetwork_and_nothing_else(setup):
    config, backbone, hypernetwork = setup
    task = ReverseTask(config, backbone, hypernetwork, FixedQuads(config.resolution))
    batch = task.batch(np.random.default_rng(0))
    for term in task.reverse_loss(batch, hypernetwork):
        gradients = torch.autograd.grad(term, list(hypernetwork.parameters()), allow_unused=True, retain_graph=True)
        assert sum(float(g.abs().sum()) for g in gradients if g is not None) > 0
    assert all(parameter.grad is None and not parameter.requires_grad
               for part in (backbone.denoiser, backbone.pipeline.vae) for parameter in part.parameters())


def test_one_training_step_changes_the_hypernetwork_only(setup):
    config, backbone, hypernetwork = setup
    frozen = {f"{part}.{name}": value.clone() for part in ("unet", "vae", "text_encoder")
              for name, value in getattr(backbone.pipeline, part).state_dict().items()}
    before = {name: value.clone() for name, value in hypernetwork.state_dict().items()}
    task = ReverseTask(config, backbone, hypernetwork, FixedQuads(config.resolution))
    run_training(task, LoopSettings(steps=1, progress=False))
    changed = [name for name, value in task.modules["hypernetwork"].state_dict().items()
               if not torch.equal(value, before[name])]
    assert any(name.startswith("encoder.") for name in changed) and any(".up_heads." in name for name in changed)
    for key, value in frozen.items():
        part, name = key.split(".", 1)
        assert torch.equal(getattr(backbone.pipeline, part).state_dict()[name], value), key


def test_random_exchange_reverses_the_whole_quad(setup):
    config, backbone, hypernetwork = setup
    source = FixedQuads(config.resolution)
    kept = ReverseTask(dataclasses.replace(config, exchange_probability=0.0), backbone, hypernetwork, source)
    swapped = ReverseTask(dataclasses.replace(config, exchange_probability=1.0), backbone, hypernetwork, source)
    plain, reversed_ = kept.batch(np.random.default_rng(0)), swapped.batch(np.random.default_rng(0))
    for name, partner in (("before", "after"), ("after", "before"), ("query", "target"), ("target", "query")):
        assert torch.equal(reversed_[name], plain[partner])


def test_with_the_antisymmetric_hypernetwork_the_exchange_changes_no_loss(setup):
    config, backbone, hypernetwork = setup
    source = FixedQuads(config.resolution)
    plain = ReverseTask(dataclasses.replace(config, exchange_probability=0.0), backbone, hypernetwork, source)
    swapped = ReverseTask(dataclasses.replace(config, exchange_probability=1.0), backbone, hypernetwork, source)
    with torch.no_grad():
        edit, undo = plain.reverse_loss(plain.batch(np.random.default_rng(0)), hypernetwork)
        edit_reversed, undo_reversed = swapped.reverse_loss(swapped.batch(np.random.default_rng(0)), hypernetwork)
    torch.testing.assert_close((edit_reversed, undo_reversed), (undo, edit))  # the two terms trade places


def test_several_pairs_give_the_exact_mean_of_their_updates():
    generator = torch.Generator().manual_seed(0)
    loras = [{"layer": (torch.randn(1, 2, 5, generator=generator), torch.randn(1, 3, 2, generator=generator))}
             for _ in range(3)]
    down, up = mean_lora(loras)["layer"]
    assert down.shape == (1, 6, 5) and up.shape == (1, 3, 6)
    expected = sum(u[0] @ d[0] for d, u in (lora["layer"] for lora in loras)) / 3
    torch.testing.assert_close(up[0] @ down[0], expected)


def test_learn_is_one_forward_and_the_edit_file_round_trips(trained, tmp_path):
    method = get_method("loc")
    config = method.make_config("tiny", hypernetwork=str(trained))
    edit = method.learn(pairs(2), config, progress=False)
    assert edit.provenance.steps == 0
    trained_config, hypernetwork, _ = load_hypernetwork(trained, {})
    started = time.perf_counter()
    generate_lora(hypernetwork, pairs(2), trained_config)
    assert time.perf_counter() - started < 1.0  # generous: milliseconds in the benchmark
    path = save_edit(edit, tmp_path / "change.edit")
    loaded = load_edit(path)
    assert isinstance(loaded, LocEdit) and loaded.config == edit.config
    assert set(loaded.state_dict()) == set(edit.state_dict())
    assert all(torch.equal(loaded.state_dict()[key], value) for key, value in edit.state_dict().items())
    # Two pairs, each antisymmetric (2 × rank 2), stacked.
    assert all(value.shape[0] == 8 for key, value in edit.state_dict().items() if key.endswith("lora_A.weight"))
    photo = random_image(40, 24, seed=5)
    result = loaded.apply(photo, seed=3)
    assert result.shape == photo.shape and result.dtype == np.float32
    np.testing.assert_array_equal(result, edit.apply(photo, seed=3))


def test_a_partial_start_begins_from_the_photo(ip2p):
    """start_strength 0.25 of 4 steps: one denoising step, from the photo's latent at the last level."""
    config, backbone = ip2p
    query = backbone.query_latent(random_image(32, 32), 32, 32)
    partial = dataclasses.replace(config, start_strength=0.25)
    latent = sample(backbone, query, {}, partial, seed=0)
    level = backbone.levels(config.sample_steps)[-1]
    noised = level.signal * query * backbone.pipeline.vae.config.scaling_factor + level.noise * torch.randn(
        query.shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        output = backbone.predict(noised, level, backbone.condition(""), image_latent=query)
    torch.testing.assert_close(latent, backbone.estimates(noised, output, level)[0])
    with pytest.raises(AnalogizeError):
        dataclasses.replace(config, start_strength=0.1)  # 0.1 × 4 steps rounds to none


def test_train_learn_apply_and_export_from_the_command_line(trained, tmp_path, capsys):
    folder = make_pair_folder(tmp_path / "pairs", {"a": (random_image(32, 32), warm_edit(random_image(32, 32)))})
    edit = tmp_path / "change.edit"
    assert main(["learn", str(folder), "--method", "loc", "--preset", "tiny", "--hypernetwork", str(trained),
                 "-o", str(edit), "--quiet"]) == 0
    assert main(["apply", str(edit), str(folder / "before"), "-o", str(tmp_path / "out"), "--quiet"]) == 0
    assert (tmp_path / "out" / "a.png").is_file()
    capsys.readouterr()
    assert main(["export", str(edit), "-o", str(tmp_path / "export")]) == 0
    assert sorted(path.name for path in (tmp_path / "export").iterdir()) == ["loc.safetensors", "loc_kohya.safetensors"]
    from diffusers import DiffusionPipeline

    pipeline = DiffusionPipeline.from_pretrained(str(trained / "base"), local_files_only=True)
    pipeline.load_lora_weights(str(tmp_path / "export"), weight_name="loc.safetensors", adapter_name="loc")
    assert "loc" in pipeline.unet.peft_config  # its effect: tests/test_exports.py


def test_the_hypernetwork_folder_is_self_contained(trained, tmp_path):
    moved = tmp_path / "moved"

    shutil.copytree(trained, moved)
    settings = json.loads((moved / "loc.json").read_text())
    assert settings["base_model"] == "base"  # relative, so the folder can move
    config, _, backbone = load_hypernetwork(moved, {})
    assert config.base_model == str((moved / "base").resolve()) and backbone.family == "ip2p"


def test_learn_without_a_hypernetwork_says_how_to_make_one(tmp_path, capsys):
    folder = make_pair_folder(tmp_path / "pairs", {"a": (random_image(), warm_edit(random_image()))})
    assert main(["learn", str(folder), "--method", "loc", "-o", str(tmp_path / "e.edit")]) == 2
    assert "train-loc" in capsys.readouterr().err
    with pytest.raises(AnalogizeError) as error:
        load_hypernetwork(tmp_path / "nowhere", {})
    assert_clear_error(error.value, tmp_path / "nowhere", "train-loc")


def test_training_on_a_given_base_model_from_a_pairs_folder(tiny_backbones, tmp_path, capsys):
    """The gpu presets' path (a downloaded InstructPix2Pix, a dataset of pairs), at tiny size."""
    folder = make_pair_folder(tmp_path / "pairs", {"a": (random_image(32, 32), warm_edit(random_image(32, 32)))})
    assert main(["train-loc", "--preset", "gpu", "-o", str(tmp_path / "h")]) == 2
    assert "--base-model" in capsys.readouterr().err
    config = get_method("loc").make_config("tiny", base_model=str(tiny_backbones["ip2p"]), data=str(folder))
    trained = train_loc(config, tmp_path / "h", progress=False)
    assert not (trained / "base").exists()
    assert json.loads((trained / "loc.json").read_text())["base_model"] == str(tiny_backbones["ip2p"])
    edit = get_method("loc").learn(pairs(), get_method("loc").make_config("tiny", hypernetwork=str(trained)))
    assert edit.config.base_model == str(tiny_backbones["ip2p"])


def test_pairs_folders_magicbrush_and_manifests_become_reverse_quads(tmp_path, write_image):
    before, after = random_image(20, 30, seed=1), random_image(20, 30, seed=2)
    folder = make_pair_folder(tmp_path / "pairs", {"x": (before, after)})
    brush = tmp_path / "magicbrush"
    write_image(before, brush / "images" / "242679" / "242679-input.png")
    write_image(after, brush / "images" / "242679" / "242679-output1.png")
    (brush / "edit_sessions.json").write_text(json.dumps({"242679": [
        {"input": "242679-input.png", "mask": "242679-mask1.png", "output": "242679-output1.png",
         "instruction": "x"}]}))
    manifest = tmp_path / "seed" / "part.jsonl"
    write_image(before, tmp_path / "seed" / "src" / "1.png")
    write_image(after, tmp_path / "seed" / "tgt" / "1.png")
    record = {"source_image": "src/1.png", "target_image": "tgt/1.png", "instruction": "x"}
    manifest.write_text(json.dumps(record) + "\n")
    for spec in (str(folder), f"magicbrush:{brush}", f"seed:{manifest}"):
        quad = quad_source(spec, 16, train_edits=[]).quad(np.random.default_rng(0))
        assert all(image.shape == (16, 16, 3) for image in quad)
        np.testing.assert_array_equal(quad[2], quad[0][:, ::-1])  # B = flip(A)
        np.testing.assert_array_equal(quad[3], quad[1][:, ::-1])  # B′ = flip(A′)
        assert not np.array_equal(quad[0], quad[1])
    assert len(folder_pairs(folder)) == len(magicbrush_pairs(brush)) == len(manifest_pairs(manifest)) == 1


def test_bad_datasets_are_named_with_the_fix(tmp_path):
    manifest = tmp_path / "bad.jsonl"
    manifest.write_text(json.dumps({"before": "a.png"}) + "\n")
    with pytest.raises(AnalogizeError) as error:
        manifest_pairs(manifest)
    assert_clear_error(error.value, manifest, "source_image")
    manifest.write_text(json.dumps({"source_img": "a.png", "target_img": "b.png"}) + "\n")
    with pytest.raises(AnalogizeError) as error:
        manifest_pairs(manifest)
    assert_clear_error(error.value, tmp_path / "a.png", "does not exist")
    with pytest.raises(AnalogizeError) as error:
        magicbrush_pairs(tmp_path)
    assert_clear_error(error.value, tmp_path / "edit_sessions.json", "cannot be read")
    with pytest.raises(AnalogizeError) as error:
        quad_source(str(tmp_path / "missing"), 16, train_edits=[])
    assert_clear_error(error.value, tmp_path / "missing", "magicbrush:DIR")
    with pytest.raises(AnalogizeError) as error:
        PairQuads([], 16, "empty")
    assert_clear_error(error.value, "empty", "no pairs")


def test_procedural_quads_apply_one_edit_to_two_photos():
    source = quad_source("procedural", 24, train_edits=["blur"], crop_pool=4, seed=0)
    before, after, query, target = source.quad(np.random.default_rng(1))
    assert not np.array_equal(before, query)
    # A′ − A and B′ − B come from the same blur at the same strength: both smooth their image.
    for image, edited in ((before, after), (query, target)):
        assert np.abs(np.diff(edited, axis=1)).mean() < np.abs(np.diff(image, axis=1)).mean()
    with pytest.raises(AnalogizeError) as error:
        train_loc(get_method("loc").make_config("tiny", hold_out=("nonsense",)), "/unused")
    assert "nonsense" in str(error.value)


def test_an_ip2p_backbone_needs_the_query_latent(ip2p):
    backbone = ip2p[1]
    assert backbone.family == "ip2p" and backbone.prediction == "epsilon"
    photo = random_image(32, 32)
    query = backbone.query_latent(photo, 32, 32)
    scaled = query * backbone.pipeline.vae.config.scaling_factor
    torch.testing.assert_close(scaled, backbone.encode_image(photo, 32, 32))
    with pytest.raises(ValueError):
        backbone.predict(torch.randn_like(query), backbone.levels(4)[0], backbone.condition(""))
