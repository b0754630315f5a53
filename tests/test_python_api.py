"""The Python API as a notebook uses it: docs/python.md runs, `Edit.apply` gives back the kind of
image it was given, `Edit.save` and `apply_folder` match the CLI's files."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import analogize
from analogize.errors import AnalogizeError
from analogize.images import load_image
from analogize.methods.base import Method
from analogize.pairs import PairSet
from analogize.settings import parse_setting

DOCS = Path(__file__).resolve().parent.parent / "docs" / "python.md"


@pytest.fixture
def edit(pair_folder):
    return analogize.learn(PairSet.from_folder(pair_folder), method="colormap", progress=False)


def test_the_python_doc_runs_as_written(tmp_path, monkeypatch):
    blocks = re.findall(r"^```python\n(.*?)^```", DOCS.read_text(), flags=re.S | re.M)
    assert len(blocks) >= 3, "docs/python.md lost its examples"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(DOCS), "exec"), namespace)  # noqa: S102 - our own documentation
    assert (tmp_path / "warm.edit").is_file() and (tmp_path / "out" / "analogize-apply.json").is_file()


def test_learn_shows_progress_by_default_like_method_learn():
    python_default = inspect.signature(analogize.learn).parameters["progress"].default
    assert python_default is True
    assert python_default == inspect.signature(Method.learn).parameters["progress"].default


def test_apply_returns_the_kind_of_image_it_was_given(edit, image):
    as_float = edit.apply(image)
    assert as_float.dtype == np.float32 and as_float.shape == image.shape
    as_uint8 = edit.apply((image * 255).round().astype(np.uint8))
    assert as_uint8.dtype == np.uint8 and as_uint8.shape == image.shape
    as_pil = edit.apply(Image.fromarray(as_uint8))
    assert isinstance(as_pil, Image.Image) and as_pil.mode == "RGB" and as_pil.size == image.shape[1::-1]
    expected = (np.clip(as_float, 0, 1) * 255 + 0.5).astype(np.uint8)
    assert np.abs(as_uint8.astype(int) - expected).max() <= 1
    assert edit.apply(image.astype(np.float64)).dtype == np.float64


def test_pil_images_of_any_mode_convert_as_files_load(edit, tmp_path, image):
    """Transparency goes onto white and grey becomes RGB, exactly as load_image reads the file."""
    rgba = np.dstack([(image * 255).round().astype(np.uint8), np.linspace(0, 255, image.shape[1], dtype=np.uint8)
                      [None, :].repeat(image.shape[0], 0)])
    for picture in (Image.fromarray(rgba, "RGBA"), Image.fromarray(rgba[..., 0], "L")):
        path = tmp_path / f"{picture.mode}.png"
        picture.save(path)
        unchanged = edit.apply(Image.open(path), strength=0.0)
        assert np.array_equal(np.asarray(unchanged), (load_image(path) * 255).round().astype(np.uint8))


def test_maps_may_be_pil_or_uint8_too(edit, image):
    half = np.full(image.shape[:2], 128, dtype=np.uint8)
    from_uint8 = edit.apply(image, strength_map=half, mask=Image.new("L", (4, 4), 255))
    assert np.allclose(from_uint8, edit.apply(image, strength_map=half.astype(np.float32) / 255.0), atol=1e-6)


@pytest.mark.parametrize("wrong", [np.zeros((4, 4)), np.zeros((4, 4, 3), dtype=np.int32), [[0, 0, 0]]])
def test_apply_refuses_what_is_not_an_image_in_one_line(edit, wrong):
    with pytest.raises(AnalogizeError) as error:
        edit.apply(wrong)
    assert "\n" not in str(error.value) and "apply expects" in str(error.value)


def test_save_writes_the_edit_file_load_edit_reads(edit, tmp_path, image):
    path = edit.save(tmp_path / "warm.edit")
    assert path == tmp_path / "warm.edit"
    assert np.array_equal(analogize.load_edit(path).apply(image), edit.apply(image))


def test_a_dtype_is_refused_for_an_edit_without_a_diffusion_backbone(edit):
    with pytest.raises(AnalogizeError, match="colormap edit computes in fp32"):
        edit.to("cpu", "bf16")
    assert edit.to("cpu") is edit


@pytest.mark.parametrize("method", ["pairedit", "loc"])
def test_a_diffusion_edit_loads_its_backbone_on_the_device_and_dtype_it_is_moved_to(method):
    """Its backbone loads on first use (edit files hold LoRAs only), from the config `to` sets."""
    chosen = analogize.methods()[method]
    config = chosen.make_config()
    edit = chosen.edit_class(config, {}, {}) if method == "pairedit" else chosen.edit_class(config, {})
    edit.to("cpu", "bf16")
    assert (edit.config.device, edit.config.dtype) == ("cpu", "bf16") and config.device == "auto"
    assert edit.to("cpu").config.dtype == "bf16"  # no dtype given: the one it has stays


def test_apply_folder_is_the_cli_batch(edit, tmp_path, image):
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a", "b"):
        Image.fromarray((image * 255).round().astype(np.uint8)).save(photos / f"{name}.png")
    summary = analogize.apply_folder(edit, photos, tmp_path / "out", progress=False)
    assert (summary.done, summary.skipped, summary.failed) == (2, 0, [])
    assert np.array_equal(load_image(tmp_path / "out" / "a.png"), load_image(tmp_path / "out" / "b.png"))
    again = analogize.apply_folder(edit.save(tmp_path / "warm.edit"), [photos / "a.png"], tmp_path / "out",
                                   progress=False)
    assert (again.done, again.skipped) == (0, 1)


def test_settings_are_json_or_bare_words():
    assert parse_setting("steps=3", "--set") == ("steps", 3)
    assert parse_setting("cpu_offload=true", "--set") == ("cpu_offload", True)
    assert parse_setting("base_model=org/model", "--set") == ("base_model", "org/model")
    assert parse_setting("targets=[\"a\", \"b\"]", "--set") == ("targets", ["a", "b"])
    with pytest.raises(AnalogizeError, match="--set: 'steps' is not key=value"):
        parse_setting("steps", "--set")
