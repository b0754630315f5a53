"""`analogize export`: every file it writes loads in the tool it is for and does what the edit does.

LoRA files are loaded with diffusers' `load_lora_weights` into a fresh pipeline from the same tiny
folder, and the denoiser's output on a fixed input is compared with the edit's own networks.
The .cube LUT is read back by an independent reader written here (no .cube library is installed).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from analogize.backbones import load_backbone
from analogize.cli import main
from analogize.cli.common import EXIT_USER_ERROR
from analogize.editfile import load_edit
from analogize.methods import get_method
from analogize.methods.loc import LocEdit
from analogize.methods.loc.lora import generated_lora
from analogize.methods.lora_files import export_loras
from analogize.methods.pairedit import SEMANTIC, PairEditEdit, use_loras
from analogize.pairs import Pair, PairSet
from conftest import random_image, warm_edit

SIDE = 8  # latent side of the fixed input (even: FLUX packs 2×2 patches)
FILES = ("pairedit_semantic.safetensors", "pairedit_semantic_kohya.safetensors")


def one_pair(seed: int = 0) -> PairSet:
    image = random_image(32, 32, seed=seed)
    return PairSet([Pair("p", image, warm_edit(image))])


def denoiser_output(backbone, image_latent: torch.Tensor | None = None) -> torch.Tensor:
    """The denoiser's output on one fixed noised latent, mid-schedule, empty prompt."""
    channels = backbone.pipeline.vae.config.latent_channels
    noised = torch.randn(1, channels, SIDE, SIDE, generator=torch.Generator().manual_seed(1))
    level = backbone.levels(10, latent_side=SIDE)[4]
    with torch.no_grad():
        return backbone.predict(noised, level, backbone.condition(""), image_latent=image_latent)


def loaded_output(config, export: str, weight_name: str, image_latent: torch.Tensor | None = None) -> torch.Tensor:
    """The output of a fresh pipeline of the edit's base model, configured as the edit is (SDXL's
    condition holds the resolution), with the exported file loaded by diffusers."""
    backbone = load_backbone(config)
    backbone.pipeline.load_lora_weights(export, weight_name=weight_name)
    denoiser = backbone.denoiser
    assert len(denoiser.peft_config) == 1, "diffusers loaded no LoRA (or more than one)"
    return denoiser_output(backbone, image_latent)


@pytest.mark.parametrize("family", ["flux", "sd", "sd-v", "sdxl"])
def test_pairedit_exports_load_in_diffusers_and_change_the_output_as_the_edit_does(tiny_backbones, tmp_path, family):
    folder = str(tiny_backbones[family])
    method = get_method("pairedit")
    config = method.make_config("tiny", base_model=folder, steps=3, learning_rate=5e-2, alpha=8.0)
    learned = method.learn(one_pair(), config, progress=False)
    written = export_loras(learned, tmp_path / "export")
    assert sorted(path.name for path in written) == sorted(FILES + ("pairedit_content.safetensors",
                                                                    "pairedit_content_kohya.safetensors"))

    edit = PairEditEdit(config, learned.content, learned.semantic)  # the LoRAs on a fresh base model
    denoiser = edit.backbone.denoiser
    denoiser.disable_adapters()
    base = denoiser_output(edit.backbone)
    denoiser.enable_adapters()
    use_loras(denoiser, {SEMANTIC: 1.0}, trained=None)
    ours = denoiser_output(edit.backbone)
    assert (ours - base).abs().max() > 1e-4, "the learned LoRA is too faint to tell loaders apart"
    for weight_name in FILES:
        theirs = loaded_output(config, str(tmp_path / "export"), weight_name)
        torch.testing.assert_close(theirs, ours, atol=1e-6, rtol=1e-5, msg=weight_name)


def test_kohya_keys_follow_the_loaders_conventions(tiny_backbones, tmp_path):
    from safetensors.torch import load_file

    for family, prefix in (("flux", "lora_transformer_"), ("sd", "lora_unet_")):
        method = get_method("pairedit")
        edit = method.learn(one_pair(), method.make_config("tiny", base_model=str(tiny_backbones[family]), steps=1),
                            progress=False)
        export_loras(edit, tmp_path / family)
        kohya = load_file(tmp_path / family / "pairedit_semantic_kohya.safetensors")
        downs = [key for key in kohya if key.endswith(".lora_down.weight")]
        assert downs and all(key.startswith(prefix) for key in kohya)
        for down in downs:  # each layer: down, up and alpha = rank (the scale is folded into up)
            stem = down.removesuffix(".lora_down.weight")
            assert {f"{stem}.lora_up.weight", f"{stem}.alpha"} <= kohya.keys()
            assert kohya[f"{stem}.alpha"].item() == kohya[down].shape[0]


def test_loc_exports_load_in_diffusers_and_are_the_generated_lora(tiny_hypernetwork, tmp_path):
    """InstructPix2Pix (an SD UNet with an 8-channel input): what loc produces."""
    loc = get_method("loc")
    pairs = PairSet([Pair(f"p{seed}", random_image(32, 32, seed=seed), warm_edit(random_image(32, 32, seed=seed)))
                     for seed in range(2)])
    edit = loc.learn(pairs, loc.make_config("tiny", hypernetwork=str(tiny_hypernetwork)))
    # A two-step hypernetwork's LoRA is faint: enlarge it so that it clearly changes the output.
    edit = LocEdit(edit.config, {key: value * 100 if key.endswith("lora_B.weight") else value
                                 for key, value in edit.lora.items()})
    export_loras(edit, tmp_path / "export")
    backbone = edit.backbone
    query = torch.randn(1, 4, SIDE, SIDE, generator=torch.Generator().manual_seed(2))
    base = denoiser_output(backbone, query)
    with generated_lora(backbone.denoiser, edit.factors()):
        ours = denoiser_output(backbone, query)
    assert (ours - base).abs().max() > 1e-3
    for weight_name in ("loc.safetensors", "loc_kohya.safetensors"):
        theirs = loaded_output(edit.config, str(tmp_path / "export"), weight_name, query)
        torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=1e-4, msg=weight_name)


# --- colormap: a .cube 3-D LUT -----------------------------------------------------------------


def read_cube(path) -> tuple[np.ndarray, str]:
    """An independent .cube reader: (table indexed [red, green, blue], title). Checks the header
    the Adobe / Resolve format requires and that the N³ rows list red fastest."""
    title, size, domain, rows = None, None, {}, []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        keyword = line.split()[0]
        if keyword == "TITLE":
            title = re.fullmatch(r'TITLE "(.*)"', line).group(1)
        elif keyword == "LUT_3D_SIZE":
            size = int(line.split()[1])
        elif keyword in ("DOMAIN_MIN", "DOMAIN_MAX"):
            domain[keyword] = [float(value) for value in line.split()[1:]]
        else:
            rows.append([float(value) for value in line.split()])
    assert domain == {"DOMAIN_MIN": [0, 0, 0], "DOMAIN_MAX": [1, 1, 1]}
    assert len(rows) == size**3 and all(len(row) == 3 for row in rows)
    return np.asarray(rows).reshape(size, size, size, 3).transpose(2, 1, 0, 3), title  # rows: [b][g][r]


def trilinear(table: np.ndarray, colors: np.ndarray) -> np.ndarray:
    """Trilinear interpolation of table (N, N, N, 3) at colours (P, 3) in [0, 1], written from
    the definition: the 8 corners of each colour's cell, weighted by the opposite volumes."""
    size = table.shape[0]
    scaled = colors * (size - 1)
    low = np.minimum(np.floor(scaled).astype(int), size - 2)
    frac = scaled - low
    result = np.zeros_like(colors, dtype=np.float64)
    for corner in np.ndindex(2, 2, 2):
        offset = np.array(corner)
        weight = np.prod(np.where(offset == 1, frac, 1 - frac), axis=1)
        index = low + offset
        result += weight[:, None] * table[index[:, 0], index[:, 1], index[:, 2]]
    return result


def test_a_colormap_edit_exports_a_cube_lut_that_reproduces_it(pair_folder, tmp_path, capsys):
    edit_path = tmp_path / "warm.edit"
    assert main(["learn", str(pair_folder), "-o", str(edit_path), "--method", "colormap", "--preset", "tiny",
                 "--quiet"]) == 0
    capsys.readouterr()
    assert main(["export", str(edit_path), "-o", str(tmp_path / "warm.cube")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "warm.cube")

    table, title = read_cube(tmp_path / "warm.cube")
    edit = load_edit(edit_path)
    assert title == "warm" and table.shape == edit.lut.shape  # the export grid is the LUT's own
    colors = np.random.default_rng(0).random((5000, 3)).astype(np.float32)
    colors[:8] = np.array(list(np.ndindex(2, 2, 2)), dtype=np.float32)  # the cube's corners too
    ours = edit.apply(colors.reshape(50, 100, 3)).reshape(-1, 3)
    # 6 printed decimals: each node within 5e-7, so any trilinear mix of them too; float32 adds ~1e-7.
    np.testing.assert_allclose(trilinear(table, colors), ours, atol=2e-6, rtol=0)
    assert np.abs(ours - colors).max() > 0.05  # the edit does change colours


def test_exports_name_what_each_method_exports(pair_folder, tmp_path, capsys, assert_clear_error):
    identity = tmp_path / "same.edit"
    assert main(["learn", str(pair_folder), "-o", str(identity), "--method", "identity", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["export", str(identity), "-o", str(tmp_path / "out")]) == EXIT_USER_ERROR
    assert_clear_error(capsys.readouterr().err.strip(), identity, "pairedit", "loc", "colormap", ".cube")
    colormap = tmp_path / "grade.edit"
    assert main(["learn", str(pair_folder), "-o", str(colormap), "--method", "colormap", "--preset", "tiny",
                 "--quiet"]) == 0
    capsys.readouterr()
    assert main(["export", str(colormap), "-o", str(tmp_path / "out")]) == EXIT_USER_ERROR
    assert_clear_error(capsys.readouterr().err.strip(), colormap, "NAME.cube")
    assert not (tmp_path / "out").exists()
