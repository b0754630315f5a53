"""Pretrained diffusion backbones, for the methods that build on one (pairedit first).

A `Backbone` wraps a diffusers pipeline and gives every method the same small surface, whatever
the family:

    backbone = load_backbone(BackboneConfig(base_model="black-forest-labs/FLUX.1-dev", dtype="bf16"))
    latents = backbone.encode(images)               # (N, 3, H, W) in [-1, 1] -> (N, c, H/8, W/8)
    condition = backbone.condition("")              # the text conditioning, computed once
    levels = backbone.levels(28)                    # the sampling grid, noisiest first
    output = backbone.predict(noised, levels[i], condition)   # in the model's own parametrisation
    images = backbone.decode(latents)

Every grid level says how a noised latent is made, x_t = signal·x_0 + noise·ε, and which
`prediction` the model makes there:
- "flow"  (FLUX.1, flow matching): x_t = (1 − σ)·x_0 + σ·ε; the model predicts v = ε − x_0.
- "epsilon" / "v_prediction" (Stable Diffusion 1.x / 2.x / XL): x_t = √ᾱ·x_0 + √(1 − ᾱ)·ε; the model
  predicts ε, or v = √ᾱ·ε − √(1 − ᾱ)·x_0.
`estimates` turns any model output back into (x̂_0, ε̂), so samplers and losses are written once.

InstructPix2Pix pipelines ("ip2p") are Stable Diffusion UNets that also see the query image:
`predict(..., image_latent=backbone.query_latent(image, h, w))` puts its latent beside the noised one.

Loading never touches the network (`local_files_only`): a hub id must already be in the local
Hugging Face cache, or the base model a downloaded folder; otherwise one line says how to get it.
Tiny random backbones for tests are in tiny_backbones.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import AnalogizeError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
PREDICTIONS = ("flow", "epsilon", "v_prediction")


@dataclass
class BackboneConfig:
    """Which pretrained model to build on, and how to run it."""

    base_model: str = ""
    """A folder holding a diffusers pipeline (model_index.json), or a hub id already in the local
    Hugging Face cache. FLUX.1, Stable Diffusion 1.x / 2.x / XL and InstructPix2Pix pipelines are
    supported."""
    dtype: str = "fp32"
    """Weights and activations: "fp32", "bf16" or "fp16" (fp16 on GPUs only)."""
    device: str = "auto"
    """"auto" (the GPU when there is one), "cpu", "cuda" or "cuda:N"."""
    cpu_offload: bool = False
    """Keep each sub-model on the CPU until it runs (diffusers' model CPU offload; GPU only)."""
    gradient_checkpointing: bool = False
    """Recompute the denoiser's activations in the backward pass: less memory, slower training."""
    resolution: int = 512
    """Side of the square images the backbone works at (PairEdit: 512)."""
    guidance: float = 3.5
    """FLUX.1-dev's distilled guidance embedding (PairEdit trains and samples at 3.5)."""


@dataclass(frozen=True)
class Level:
    """One point of the noise grid: x_t = signal·x_0 + noise·ε, fed to the model as `timestep`."""

    timestep: float
    signal: float
    noise: float

    @property
    def sigma(self) -> float:
        """The flow-matching σ with the same signal-to-noise ratio: noise / (signal + noise)."""
        return self.noise / (self.signal + self.noise)


@dataclass
class Backbone:
    pipeline: Any
    family: str
    """"flux", "sd" (1.x / 2.x), "sdxl" or "ip2p" (InstructPix2Pix)."""
    prediction: str
    """What the denoiser predicts: one of PREDICTIONS."""
    device: torch.device
    dtype: torch.dtype
    resolution: int = 512
    """Side of the images it works at; sets FLUX's grid shift."""
    guidance: float = 3.5
    """FLUX's guidance embedding value (models without one ignore it)."""
    offloaded: bool = False
    """diffusers' CPU offload moves the sub-models itself."""
    _conditions: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)

    @cached_property
    def denoiser(self) -> torch.nn.Module:
        """The network LoRAs go into: FLUX's transformer or SD's UNet."""
        return self.pipeline.transformer if self.family == "flux" else self.pipeline.unet

    @property
    def vae_scale(self) -> int:
        return 2 ** (len(self.pipeline.vae.config.block_out_channels) - 1)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [-1, 1] -> normalised latents (N, c, H/s, W/s), the VAE's mean."""
        vae = self.pipeline.vae
        latents = vae.encode(images.to(self.device, self.dtype)).latent_dist.mean
        shift = vae.config.shift_factor or 0.0
        return (latents - shift) * vae.config.scaling_factor

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents -> (N, 3, H, W) images, roughly in [-1, 1]."""
        vae = self.pipeline.vae
        shift = vae.config.shift_factor or 0.0
        return vae.decode(latents.to(self.dtype) / vae.config.scaling_factor + shift).sample.float()

    def encode_image(self, image: np.ndarray, height: int, width: int) -> torch.Tensor:
        """An (H, W, 3) image in [0, 1], resized to height × width -> float32 latent (1, c, h, w)."""
        from .images import resize

        pixels = torch.from_numpy(resize(image, (width, height)).transpose(2, 0, 1).copy())[None] * 2.0 - 1.0
        return self.encode(pixels).float()

    def query_latent(self, image: np.ndarray, height: int, width: int) -> torch.Tensor:
        """The query image as InstructPix2Pix concatenates it to the noised latent: the VAE's mean
        without the latent scaling factor (the pipeline's `prepare_image_latents`)."""
        return self.encode_image(image, height, width) / self.pipeline.vae.config.scaling_factor

    def decode_image(self, latent: torch.Tensor, height: int, width: int) -> np.ndarray:
        """A latent (1, c, h, w) -> float32 (height, width, 3) image in [0, 1]."""
        from .images import resize

        picture = ((self.decode(latent)[0].permute(1, 2, 0).cpu().numpy() + 1.0) / 2.0).clip(0.0, 1.0)
        return resize(picture.astype(np.float32), (width, height))

    @torch.no_grad()
    def condition(self, prompt: str = "") -> dict[str, torch.Tensor]:
        """The text conditioning of `prompt`, cached. On a GPU the text encoders (FLUX's T5-XXL is
        9.5 GiB) wait in CPU memory between prompts: methods without prompts need them once."""
        if prompt not in self._conditions:
            encoders = [] if self.offloaded else [self.pipeline.components[name] for name in
                                                  ("text_encoder", "text_encoder_2")
                                                  if self.pipeline.components.get(name) is not None]
            for encoder in encoders:
                encoder.to(self.device)
            if self.family == "flux":
                embeds, pooled, text_ids = self.pipeline.encode_prompt(
                    prompt, prompt_2=prompt, device=self.device, max_sequence_length=self._max_text_length())
                self._conditions[prompt] = {"encoder_hidden_states": embeds, "pooled_projections": pooled,
                                            "txt_ids": text_ids}
            elif self.family == "sdxl":
                embeds, _, pooled, _ = self.pipeline.encode_prompt(prompt, device=self.device,
                                                                    do_classifier_free_guidance=False)
                # SDXL's size conditioning: original size, crop corner, target size (no crop).
                sizes = torch.tensor([[self.resolution, self.resolution, 0, 0, self.resolution, self.resolution]],
                                     device=self.device, dtype=embeds.dtype)
                self._conditions[prompt] = {"encoder_hidden_states": embeds, "text_embeds": pooled, "time_ids": sizes}
            elif self.family == "ip2p":
                embeds = self.pipeline._encode_prompt(prompt, self.device, 1, do_classifier_free_guidance=False)
                self._conditions[prompt] = {"encoder_hidden_states": embeds}
            else:
                embeds, _ = self.pipeline.encode_prompt(prompt, self.device, 1, do_classifier_free_guidance=False)
                self._conditions[prompt] = {"encoder_hidden_states": embeds}
            if self.device.type != "cpu":
                for encoder in encoders:
                    encoder.to("cpu")
        return self._conditions[prompt]

    def _max_text_length(self) -> int:
        return min(512, self.pipeline.tokenizer_2.model_max_length)

    def levels(self, steps: int, latent_side: int | None = None) -> list[Level]:
        """The scheduler's sampling grid of `steps` levels, noisiest first. FLUX's grid is shifted
        by image size, as its pipeline does (`latent_side` defaults to the configured resolution)."""
        scheduler = self.pipeline.scheduler
        if self.family == "flux":
            from diffusers.pipelines.flux.pipeline_flux import calculate_shift

            side = latent_side or self.latent_side
            tokens = (side // 2) ** 2
            config = scheduler.config
            mu = calculate_shift(tokens, config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096),
                                 config.get("base_shift", 0.5), config.get("max_shift", 1.15))
            scheduler.set_timesteps(sigmas=np.linspace(1.0, 1.0 / steps, steps).tolist(), mu=mu)
            return [Level(float(sigma) * 1000.0, 1.0 - float(sigma), float(sigma)) for sigma in scheduler.sigmas[:steps]]
        scheduler.set_timesteps(steps)
        alphas = scheduler.alphas_cumprod
        return [Level(float(t), float(alphas[int(t)].sqrt()), float((1 - alphas[int(t)]).sqrt()))
                for t in scheduler.timesteps]

    @property
    def latent_side(self) -> int:
        return self.resolution // self.vae_scale

    def predict(self, noised: torch.Tensor, level: Level, condition: dict[str, torch.Tensor],
                network: torch.nn.Module | None = None, image_latent: torch.Tensor | None = None) -> torch.Tensor:
        """The denoiser's output for latents (N, c, h, w) at `level`, in its own parametrisation.
        `network` is the denoiser as wrapped for training (distributed, mixed precision), if it is;
        `image_latent` (N, c, h, w) is the query image of an InstructPix2Pix model (`query_latent`)."""
        network = network or self.denoiser
        if (image_latent is None) != (self.family != "ip2p"):
            raise ValueError("an InstructPix2Pix denoiser needs image_latent, and only it takes one")
        n, channels, height, width = noised.shape
        noised = noised.to(self.dtype)
        expand = {name: value.expand(n, *value.shape[1:]) if value.dim() > 2 else value
                  for name, value in condition.items()}
        if self.family == "flux":
            from diffusers import FluxPipeline

            packed = FluxPipeline._pack_latents(noised, n, channels, height, width)  # (N, hw/4, 4c)
            image_ids = FluxPipeline._prepare_latent_image_ids(n, height // 2, width // 2, self.device, self.dtype)
            guidance = (torch.full((n,), self.guidance, device=self.device)
                        if self.denoiser.config.guidance_embeds else None)
            output = network(
                hidden_states=packed, timestep=torch.full((n,), level.timestep / 1000.0, device=self.device),
                guidance=guidance, img_ids=image_ids, return_dict=False, **expand,
            )[0]
            return FluxPipeline._unpack_latents(output, height * self.vae_scale, width * self.vae_scale,
                                                self.vae_scale).float()
        timestep = torch.full((n,), level.timestep, device=self.device)
        added = ({"text_embeds": expand["text_embeds"].expand(n, -1), "time_ids": expand["time_ids"].expand(n, -1)}
                 if self.family == "sdxl" else None)
        if image_latent is not None:
            noised = torch.cat([noised, image_latent.to(self.dtype)], dim=1)
        return network(noised, timestep, encoder_hidden_states=expand["encoder_hidden_states"],
                             added_cond_kwargs=added).sample.float()

    def estimates(self, noised: torch.Tensor, output: torch.Tensor, level: Level) -> tuple[torch.Tensor, torch.Tensor]:
        """(x̂_0, ε̂) from a model output at `level`, for every parametrisation."""
        a, b = level.signal, level.noise
        if self.prediction == "flow":  # v = ε − x_0 with a = 1 − σ, b = σ
            return noised - b * output, noised + a * output
        if self.prediction == "epsilon":
            return (noised - b * output) / a, output
        return a * noised - b * output, b * noised + a * output  # v-prediction, a² + b² = 1

    def output_for(self, clean: torch.Tensor, noise: torch.Tensor, level: Level) -> torch.Tensor:
        """The model output that would give exactly (x̂_0, ε̂) = (clean, noise): the inverse of
        `estimates`, used to state training targets in any parametrisation."""
        a, b = level.signal, level.noise
        if self.prediction == "flow":
            return noise - clean
        if self.prediction == "epsilon":
            return noise
        return a * noise - b * clean


def load_backbone(config: BackboneConfig) -> Backbone:
    """Load the pipeline named by `config.base_model` from local files only."""
    try:
        import diffusers
        import peft  # noqa: F401  (the LoRAs)
        import transformers
        from diffusers import (
            DiffusionPipeline,
            FluxPipeline,
            StableDiffusionInstructPix2PixPipeline,
            StableDiffusionPipeline,
            StableDiffusionXLPipeline,
        )
    except ImportError as error:
        raise AnalogizeError(f"pretrained backbones need {error.name}; pip install 'analogize[diffusion]'") from None

    if not config.base_model:
        raise AnalogizeError("this method builds on a pretrained diffusion model; give --base-model "
                             "(a downloaded diffusers folder, or a hub id in the local cache)")
    if config.dtype not in DTYPES:
        raise AnalogizeError(f"dtype {config.dtype!r} is unknown; choose one of {', '.join(DTYPES)}")
    device = torch.device("cuda" if config.device == "auto" and torch.cuda.is_available()
                          else "cpu" if config.device == "auto" else config.device)
    if device.type == "cpu" and (config.dtype == "fp16" or config.cpu_offload):
        raise AnalogizeError("fp16 and cpu_offload need a GPU; use dtype fp32 or bf16 on the CPU")
    diffusers.utils.logging.disable_progress_bar()  # loading bars are noise; our own progress shows training
    transformers.utils.logging.disable_progress_bar()
    try:
        pipeline = DiffusionPipeline.from_pretrained(config.base_model, dtype=DTYPES[config.dtype],
                                                     local_files_only=True)
    except (OSError, ValueError, EnvironmentError) as error:
        hint = ("it has no model_index.json: give the folder of a diffusers pipeline"
                if Path(config.base_model).is_dir() else
                f"download it where there is internet (`hf download {config.base_model} --local-dir DIR`), "
                "copy DIR here and pass --base-model DIR")
        raise AnalogizeError(f"{config.base_model}: no diffusers pipeline on this machine ({type(error).__name__}); "
                             f"{hint}") from None
    if isinstance(pipeline, FluxPipeline):
        family, prediction = "flux", "flow"
    elif type(pipeline) in (StableDiffusionPipeline, StableDiffusionXLPipeline, StableDiffusionInstructPix2PixPipeline):
        family = {StableDiffusionXLPipeline: "sdxl", StableDiffusionInstructPix2PixPipeline: "ip2p"}.get(
            type(pipeline), "sd")
        prediction = pipeline.scheduler.config.prediction_type
    else:
        raise AnalogizeError(f"{config.base_model}: a {type(pipeline).__name__}; supported are FluxPipeline "
                             "(FLUX.1), StableDiffusionPipeline (SD 1.x / 2.x), StableDiffusionXLPipeline and "
                             "StableDiffusionInstructPix2PixPipeline")
    if prediction not in PREDICTIONS:
        raise AnalogizeError(f"{config.base_model}: prediction type {prediction!r} is not supported")
    pipeline.set_progress_bar_config(disable=True)
    for part in pipeline.components.values():
        if isinstance(part, torch.nn.Module):
            part.requires_grad_(False)
    if config.cpu_offload:
        pipeline.enable_model_cpu_offload(device=device)
    else:
        pipeline.to(device)
    backbone = Backbone(pipeline, family, prediction, device, DTYPES[config.dtype], config.resolution,
                        config.guidance, config.cpu_offload)
    if config.gradient_checkpointing:
        backbone.denoiser.enable_gradient_checkpointing()
    return backbone
