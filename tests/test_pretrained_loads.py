"""Pretrained loads cannot run code: hostile copies of the tiny model folders — pickled weights
whose unpickling would create a marker file, custom pipeline and component modules whose import
would — are refused with one line naming the file and the fix, and the marker never appears.
Plus: a broken pipeline folder says its load failed and why, and the layouts analogize must read
(Paint by Example's own, Stable Diffusion 1.x's safety checker) pass."""

from __future__ import annotations

import json
import pathlib
import shutil
from pathlib import Path

import pytest
import torch

from analogize.backbones import BackboneConfig, load_backbone
from analogize.cli import main
from analogize.errors import AnalogizeError
from analogize.methods.paint_by_example import PaintByExampleModel, starting_model, training_config
from analogize.pretrained import check_loadable, model_folder
from analogize.tiny_backbones import write_tiny_backbone, write_tiny_clip_vision, write_tiny_paint_by_example

from conftest import random_image, write_image


class TouchOnUnpickle:
    """Unpickled, this creates `marker`: what a hostile `.bin` would do with something worse."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    folders = {family: write_tiny_backbone(family, root / family) for family in ("sd", "kandinsky", "kandinsky-prior")}
    folders["pbe"] = write_tiny_paint_by_example(root / "pbe")
    folders["clip"] = write_tiny_clip_vision(root / "clip")
    return folders


def copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


PICKLED_NAMES = {"model.safetensors": "pytorch_model.bin",
                 "diffusion_pytorch_model.safetensors": "diffusion_pytorch_model.bin"}
"""The pickled weights' names transformers and diffusers look for in place of their safetensors."""


def pickle_instead_of_safetensors(weights: Path, marker: Path) -> Path:
    """Replace `weights` (a .safetensors file) by the torch pickle its library would read
    instead, one that creates `marker` when loaded with weights_only=False."""
    weights.unlink()
    pickled = weights.with_name(PICKLED_NAMES[weights.name])
    torch.save({"weight": TouchOnUnpickle(marker)}, pickled)
    return pickled


def rewrite_index(folder: Path, **entries) -> None:
    index_file = folder / "model_index.json"
    index_file.write_text(json.dumps({**json.loads(index_file.read_text()), **entries}))


def write_safetensors(path: Path) -> Path:
    from safetensors.torch import save_file

    save_file({"weight": torch.zeros(1)}, path)
    return path


def test_the_hostile_pickle_is_hostile(tmp_path):
    """The tests below mean something: unpickling the .bin they plant does run its code."""
    pickled = pickle_instead_of_safetensors(write_safetensors(tmp_path / "model.safetensors"), tmp_path / "ran")
    torch.load(pickled, weights_only=False)
    assert (tmp_path / "ran").exists()


def test_a_pipeline_with_pickled_weights_is_refused_unread(tiny, tmp_path, assert_clear_error):
    hostile = copy(tiny["sd"], tmp_path / "sd")
    pickled = pickle_instead_of_safetensors(hostile / "unet" / "diffusion_pytorch_model.safetensors", tmp_path / "ran")
    with pytest.raises(AnalogizeError) as error:
        load_backbone(BackboneConfig(base_model=str(hostile)))
    assert_clear_error(error.value, pickled, "safetensors", "safe_serialization=True", "--base-model")
    assert not (tmp_path / "ran").exists()


def test_a_kandinsky_prior_with_pickled_weights_is_refused_unread(tiny, tmp_path, assert_clear_error):
    hostile = copy(tiny["kandinsky-prior"], tmp_path / "prior")
    pickled = pickle_instead_of_safetensors(hostile / "prior" / "diffusion_pytorch_model.safetensors",
                                            tmp_path / "ran")
    with pytest.raises(AnalogizeError) as error:
        load_backbone(BackboneConfig(base_model=str(tiny["kandinsky"])), prior=str(hostile))
    assert_clear_error(error.value, pickled, "safetensors", "--prior")
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("part", ["unet/diffusion_pytorch_model", "image_encoder/model"])
def test_a_paint_by_example_folder_with_pickled_weights_is_refused_unread(tiny, tmp_path, part, assert_clear_error):
    hostile = copy(tiny["pbe"], tmp_path / "pbe")
    pickled = pickle_instead_of_safetensors(hostile / f"{part}.safetensors", tmp_path / "ran")
    with pytest.raises(AnalogizeError) as error:
        PaintByExampleModel.from_pretrained(hostile)
    assert_clear_error(error.value, pickled, "safetensors")
    assert not (tmp_path / "ran").exists()


def test_a_clip_model_with_pickled_weights_is_refused_before_any_load(tiny, tmp_path, assert_clear_error):
    hostile = copy(tiny["clip"], tmp_path / "clip")
    pickled = pickle_instead_of_safetensors(hostile / "model.safetensors", tmp_path / "ran")
    with pytest.raises(AnalogizeError) as error:
        starting_model(training_config("tiny", base_model=str(tiny["sd"]), clip_model=str(hostile)))
    assert_clear_error(error.value, pickled, "safetensors", "--clip-model")
    assert not (tmp_path / "ran").exists()


def test_pickles_beside_safetensors_are_left_unread(tiny, tmp_path):
    """Hub repos often hold both formats; with safetensors present, those are what is loaded."""
    folder = copy(tiny["sd"], tmp_path / "sd")
    torch.save({"weight": TouchOnUnpickle(tmp_path / "ran")}, folder / "unet" / "diffusion_pytorch_model.bin")
    assert load_backbone(BackboneConfig(base_model=str(folder))).family == "sd"
    assert not (tmp_path / "ran").exists()


def marker_code(marker: Path, class_name: str) -> str:
    return f"import pathlib\npathlib.Path({str(marker)!r}).touch()\nclass {class_name}:\n    pass\n"


def test_a_custom_pipeline_class_is_refused_unimported(tiny, tmp_path, assert_clear_error):
    hostile = copy(tiny["sd"], tmp_path / "sd")
    (hostile / "pipeline.py").write_text(marker_code(tmp_path / "ran", "MyPipeline"))
    rewrite_index(hostile, _class_name=["pipeline", "MyPipeline"])
    with pytest.raises(AnalogizeError) as error:
        load_backbone(BackboneConfig(base_model=str(hostile)))
    assert_clear_error(error.value, hostile, "custom code", "pipeline/MyPipeline", "--base-model")
    assert not (tmp_path / "ran").exists()


def test_a_custom_component_module_is_refused_unimported(tiny, tmp_path, assert_clear_error):
    hostile = copy(tiny["sd"], tmp_path / "sd")
    (hostile / "unet" / "my_unet.py").write_text(marker_code(tmp_path / "ran", "MyUNet"))
    rewrite_index(hostile, unet=["my_unet", "MyUNet"])
    with pytest.raises(AnalogizeError) as error:
        load_backbone(BackboneConfig(base_model=str(hostile)))
    assert_clear_error(error.value, hostile, "custom code", "my_unet/MyUNet")
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize("hostility, named", [
    ({"custom_pipeline": "lpw_stable_diffusion"}, "custom_pipeline lpw_stable_diffusion"),
    ({"_class_name": "MyPipeline"}, "MyPipeline"),
    ({"text_encoder": ["my_encoders", "MyTextModel"]}, "my_encoders/MyTextModel"),
    ({"scheduler": ["onnxruntime.training", "ORTModule"]}, "onnxruntime.training/ORTModule"),
])
def test_a_model_index_naming_classes_outside_diffusers_and_transformers_is_refused(tiny, tmp_path, hostility,
                                                                                     named, assert_clear_error):
    hostile = copy(tiny["sd"], tmp_path / "sd")
    rewrite_index(hostile, **hostility)
    with pytest.raises(AnalogizeError) as error:
        check_loadable(hostile, "--base-model")
    assert_clear_error(error.value, hostile, named, "diffusers' and transformers' own classes")


def test_any_python_file_in_the_folder_is_refused(tiny, tmp_path, assert_clear_error):
    hostile = copy(tiny["pbe"], tmp_path / "pbe")
    (hostile / "feature_extractor" / "helpers.py").write_text(marker_code(tmp_path / "ran", "Helpers"))
    with pytest.raises(AnalogizeError) as error:
        PaintByExampleModel.from_pretrained(hostile)
    assert_clear_error(error.value, hostile, "custom code", "feature_extractor/helpers.py")
    assert not (tmp_path / "ran").exists()


def test_symbolic_links_are_followed_once(tiny, tmp_path, assert_clear_error):
    """A component linked in from elsewhere is checked like one copied in; a link back up the
    tree is walked once, not forever."""
    folder = copy(tiny["sd"], tmp_path / "sd")
    (folder / "loop").symlink_to(folder, target_is_directory=True)
    check_loadable(folder, "--base-model")
    elsewhere = copy(tiny["sd"] / "unet", tmp_path / "shared-unet")
    pickled = pickle_instead_of_safetensors(elsewhere / "diffusion_pytorch_model.safetensors", tmp_path / "ran")
    shutil.rmtree(folder / "unet")
    (folder / "unet").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(AnalogizeError) as error:
        check_loadable(folder, "--base-model")
    assert_clear_error(error.value, folder / "unet" / pickled.name, "safetensors")


def test_the_layouts_analogize_reads_pass(tiny, tmp_path):
    """Paint by Example's image encoder (["paint_by_example", ...], read by our own loader) and
    Stable Diffusion 1.x's safety checker (["stable_diffusion", ...], a diffusers package)."""
    check_loadable(tiny["pbe"], "--base-model")
    sd15 = copy(tiny["sd"], tmp_path / "sd15")
    rewrite_index(sd15, safety_checker=["stable_diffusion", "StableDiffusionSafetyChecker"])
    check_loadable(sd15, "--base-model")


def test_a_broken_pipeline_says_its_load_failed_and_why(tiny, tmp_path, assert_clear_error):
    broken = copy(tiny["sd"], tmp_path / "sd")
    (broken / "unet" / "config.json").unlink()
    with pytest.raises(AnalogizeError) as error:
        load_backbone(BackboneConfig(base_model=str(broken)))
    message = assert_clear_error(error.value, broken, "failed (OSError", "config.json", "download the folder again")
    assert "no model_index.json" not in message


@pytest.mark.parametrize("part", ["unet", "tokenizer"])
def test_a_part_the_model_index_names_but_the_folder_lacks_is_refused_before_loading(tiny, tmp_path, part,
                                                                                     assert_clear_error):
    """Without tokenizer/ diffusers loaded the pipeline anyway, and the first prompt died deep
    inside with an OverflowError; any missing part is named at once instead."""
    broken = copy(tiny["sd"], tmp_path / "sd")
    shutil.rmtree(broken / part)
    with pytest.raises(AnalogizeError) as error:
        load_backbone(BackboneConfig(base_model=str(broken)))
    assert_clear_error(error.value, broken, f"has no {part}/ folder", "download the folder again")


def test_a_folder_without_model_index_or_a_hub_id_not_cached_says_so(tmp_path, monkeypatch, assert_clear_error):
    with pytest.raises(AnalogizeError) as empty:
        load_backbone(BackboneConfig(base_model=str(tmp_path)))
    assert_clear_error(empty.value, tmp_path, "no model_index.json", "--base-model")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(AnalogizeError) as absent:
        model_folder("someone/some-model", "--clip-model")
    assert_clear_error(absent.value, "someone/some-model", "hf download someone/some-model --local-dir DIR",
                       "--clip-model DIR")


def test_the_commands_refuse_hostile_folders_in_one_line(tiny, tmp_path, capsys):
    photo = write_image(random_image(32, 32, seed=0), tmp_path / "photo.png")
    exemplar = write_image(random_image(12, 12, seed=1), tmp_path / "hat.png")
    sd = copy(tiny["sd"], tmp_path / "sd")
    pickle_instead_of_safetensors(sd / "vae" / "diffusion_pytorch_model.safetensors", tmp_path / "ran")
    assert main(["edit", str(photo), "--exemplar", str(exemplar), "--base-model", str(sd), "-o",
                 str(tmp_path / "out.png"), "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "diffusion_pytorch_model.bin" in error and "safetensors" in error
    pbe = copy(tiny["pbe"], tmp_path / "pbe")
    (pbe / "unet" / "my_unet.py").write_text(marker_code(tmp_path / "ran", "MyUNet"))
    assert main(["paint", str(photo), "--box", "4,4,20,20", "--exemplar", str(exemplar), "--base-model", str(pbe),
                 "-o", str(tmp_path / "painted"), "-q"]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "unet/my_unet.py" in error
    assert not (tmp_path / "ran").exists()
