"""The SDXL refiner and Kandinsky 2.2 decoder backbones, on tiny random pipelines: they (and SDXL
base) sample as diffusers' own img2img pipelines do, classifier-free guidance included; Kandinsky's
condition is what PIXELS' Kandinsky script asks its prior for; the user errors are one line."""

from __future__ import annotations

import json

import pytest
import torch

from analogize.backbones import PRIOR_SEED, BackboneConfig, load_backbone
from analogize.cli import main
from analogize.errors import AnalogizeError
from analogize.methods import get_method
from analogize.methods.pixels import img2img
from analogize.pairs import Pair, PairSet
from conftest import assert_clear_error, random_image, warm_edit, write_image

STEPS, STRENGTH, GUIDANCE, SEED, PROMPT = 8, 0.75, 4.0, 3, "a photo"


def load(tiny_backbones, family):
    prior = str(tiny_backbones["kandinsky-prior"]) if family == "kandinsky" else ""
    return load_backbone(BackboneConfig(base_model=str(tiny_backbones[family]), resolution=32), prior=prior)


def diffusers_img2img(backbone, family, pixels):
    """diffusers' own img2img pipeline over the backbone's components, its scheduler made DDIM with
    η = 0 and a last step to ᾱ = 1: the update rule of analogize's sampler. Returns the latent."""
    from diffusers import DDIMScheduler, KandinskyV22Img2ImgPipeline, StableDiffusionXLImg2ImgPipeline

    components = dict(backbone.pipeline.components, scheduler=DDIMScheduler.from_config(
        backbone.pipeline.scheduler.config, set_alpha_to_one=True))
    common = dict(num_inference_steps=STEPS, strength=STRENGTH, guidance_scale=GUIDANCE, output_type="latent",
                  generator=torch.Generator().manual_seed(SEED))
    if family == "kandinsky":
        pipeline = KandinskyV22Img2ImgPipeline(**components)
        pipeline.set_progress_bar_config(disable=True)
        return pipeline(image=(pixels + 1) / 2, image_embeds=backbone.condition(PROMPT)["image_embeds"],
                        negative_image_embeds=backbone.unconditional()["image_embeds"], height=32, width=32,
                        **common).images
    # Its own negative prompt (zeros for SDXL base) and, for the refiner, aesthetic scores.
    flags = {name: backbone.pipeline.config.get(name, False)
             for name in ("requires_aesthetics_score", "force_zeros_for_empty_prompt")}
    pipeline = StableDiffusionXLImg2ImgPipeline(**components, **flags)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline(prompt=PROMPT, image=backbone.encode(pixels), **common).images


@pytest.mark.parametrize("family", ["sdxl", "sdxl-refiner", "kandinsky"])
def test_guided_img2img_matches_the_diffusers_pipeline(tiny_backbones, family):
    backbone = load(tiny_backbones, family)
    pixels = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    reference = diffusers_img2img(backbone, family, pixels)
    start = backbone.encode(pixels).float()
    noise = torch.randn(start.shape, generator=torch.Generator().manual_seed(SEED))  # the pipeline's first draw
    ours = img2img(backbone, start, noise, steps=STEPS, strength=STRENGTH, condition=backbone.condition(PROMPT),
                   uncondition=backbone.unconditional(), guidance=GUIDANCE)
    torch.testing.assert_close(ours, reference.float(), atol=1e-4, rtol=1e-4)


def test_kandinskys_conditions_are_the_priors_draws_for_the_prompt_and_the_empty_negative(tiny_backbones):
    from diffusers import KandinskyV22PriorPipeline

    backbone = load(tiny_backbones, "kandinsky")
    prior = KandinskyV22PriorPipeline.from_pretrained(str(tiny_backbones["kandinsky-prior"]))
    for prompt in ("", "a photo"):
        positive, negative = prior(prompt, negative_prompt="", generator=torch.Generator().manual_seed(PRIOR_SEED),
                                   return_dict=False)
        torch.testing.assert_close(backbone.condition(prompt)["image_embeds"], positive)
        torch.testing.assert_close(backbone.unconditional()["image_embeds"], negative)
    # Two draws, so guidance has something to push against.
    assert not torch.allclose(backbone.condition("")["image_embeds"], backbone.unconditional()["image_embeds"])


def test_the_refiners_unconditional_branch_has_the_low_aesthetic_score(tiny_backbones):
    backbone = load(tiny_backbones, "sdxl-refiner")
    assert backbone.condition("")["time_ids"].tolist() == [[32, 32, 0, 0, 6.0]]
    assert backbone.unconditional()["time_ids"].tolist() == [[32, 32, 0, 0, 2.5]]


def test_a_kandinsky_edit_from_the_command_line_and_its_one_line_errors(tiny_backbones, tmp_path, capsys):
    decoder, prior, sd = (str(tiny_backbones[name]) for name in ("kandinsky", "kandinsky-prior", "sd"))
    source = write_image(random_image(24, 32, seed=0), tmp_path / "photo.png")
    exemplar = write_image(random_image(24, 32, seed=1), tmp_path / "exemplar.png")
    edit = ["edit", str(source), "--exemplar", str(exemplar), "-o", str(tmp_path / "out.png"), "--steps", "2",
            "--resolution", "32", "--quiet"]
    assert main([*edit, "--base-model", decoder, "--prior", prior, "--guidance", "4"]) == 0
    assert json.loads((tmp_path / "out.png.history.json").read_text())[0]["prior"] == prior

    wrong = {  # arguments -> (what the message names, the words of the fix)
        ("--base-model", decoder): (decoder, "--prior DIR"),
        ("--base-model", sd, "--prior", prior): (prior, "leave --prior out"),
        ("--base-model", prior): (prior, "--prior", "--base-model"),
        ("--base-model", decoder, "--prior", sd): (sd, "kandinsky-2-2-prior"),
    }
    for arguments, (names, *fix) in wrong.items():
        assert main([*edit, *arguments]) != 0
        assert_clear_error(capsys.readouterr().err.strip(), names, *fix)


@pytest.mark.parametrize("family", ["sdxl-refiner", "kandinsky"])
def test_pairedit_refuses_the_pixels_only_backbones(tiny_backbones, family):
    image = random_image(32, 32, seed=0)
    method = get_method("pairedit")
    with pytest.raises(AnalogizeError) as error:
        method.learn(PairSet([Pair("p", image, warm_edit(image))]),
                     method.make_config("tiny", base_model=str(tiny_backbones[family])), progress=False)
    assert_clear_error(error.value, tiny_backbones[family], "pairedit learns on", "analogize edit")
