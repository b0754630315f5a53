"""Pretrained diffusion backbones, for the methods that build on one (pairedit, pixels).

A `Backbone` wraps a diffusers pipeline and gives every method the same small surface, whatever
the family:

    backbone = load_backbone(BackboneConfig(base_model="black-forest-labs/FLUX.1-dev", dtype="bf16"))
    latents = backbone.encode(images)               # (N, 3, H, W) in [-1, 1] -> (N, c, H/8, W/8)
    condition = backbone.condition("")              # the text conditioning, computed once
    negative = backbone.unconditional()             # classifier-free guidance's other branch
    levels = backbone.levels(28)                    # the sampling grid, noisiest first
    output = backbone.predict(noised, levels[i], condition)   # in the model's own parametrisation
    images = backbone.decode(latents)

Every grid level says how a noised latent is made, x_t = signal·x_0 + noise·ε (`Level.noised`), and which
`prediction` the model makes there:
- "flow"  (FLUX.1, flow matching): x_t = (1 − σ)·x_0 + σ·ε; the model predicts v = ε − x_0.
- "epsilon" / "v_prediction" (Stable Diffusion 1.x / 2.x / XL and its refiner, Kandinsky 2.2):
  x_t = √ᾱ·x_0 + √(1 − ᾱ)·ε; the model predicts ε, or v = √ᾱ·ε − √(1 − ᾱ)·x_0.
`estimates` turns any model output back into (x̂_0, ε̂), so samplers and losses are written once.

The Kandinsky 2.2 decoder has no text encoder: it is conditioned on a CLIP image embedding, which
its prior pipeline (a second folder, `load_backbone(config, prior=...)`) draws for a prompt.

InstructPix2Pix pipelines ("ip2p") are Stable Diffusion UNets that also see the query image:
`predict(..., image_latent=backbone.query_latent(image, h, w))` puts its latent beside the noised one.

Loading never touches the network (`local_files_only`): a hub id must already be in the local
Hugging Face cache, or the base model a downloaded folder; otherwise one line says how to get it.
Nor does it run code from the folder: weights are read from safetensors only (never unpickled),
and a folder with only pickled weights, a `.py` file or a custom pipeline or component class is
refused before loading (pretrained.py, `check_loadable`).
Tiny random backbones for tests are in tiny_backbones.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import torch

from .devices import resolve_device
from .errors import AnalogizeError
from .pretrained import NO_REMOTE_CODE, check_loadable, library_message, model_folder

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
PREDICTIONS = ("flow", "epsilon", "v_prediction")
REFINER_AESTHETIC_SCORE, REFINER_NEGATIVE_AESTHETIC_SCORE = 6.0, 2.5
"""The SDXL refiner's conditioning on image quality, its pipeline's defaults for the conditional
and the unconditional branch of classifier-free guidance."""
PRIOR_SEED = 0
"""Kandinsky's prior draws its image embeddings from noise; a fixed seed makes a prompt's condition
the same in every run."""


@dataclass
class BackboneConfig:
    """Which pretrained model to build on, and how to run it."""

    base_model: str = ""
    """A folder holding a diffusers pipeline (model_index.json), or a hub id already in the local
    Hugging Face cache. FLUX.1, Stable Diffusion 1.x / 2.x / XL (base or refiner), InstructPix2Pix
    and Kandinsky 2.2 decoder pipelines are supported."""
    dtype: str = "fp32"
    """Weights and activations: "fp32", "bf16" or "fp16" (fp16 on GPUs only)."""
    device: str = "auto"
    """"auto" (accelerate's choice: this process's GPU, else MPS, else the CPU), "cpu", "cuda",
    "cuda:N" or "mps" (devices.py)."""
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

    def noised(self, clean: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = signal·x_0 + noise·ε: `clean` taken to this level with `noise` (same shape)."""
        return self.signal * clean + self.noise * noise


@dataclass
class Backbone:
    pipeline: Any
    family: str
    """"flux", "sd" (1.x / 2.x), "sdxl", "sdxl-refiner", "ip2p" (InstructPix2Pix) or "kandinsky" (the 2.2 decoder)."""
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
    prior: Any = None
    """Kandinsky's KandinskyV22PriorPipeline (prompt -> CLIP image embedding); None for the others."""
    _conditions: dict[str | None, dict[str, torch.Tensor]] = field(default_factory=dict)

    @cached_property
    def denoiser(self) -> torch.nn.Module:
        """The network LoRAs go into: FLUX's transformer or SD's UNet."""
        return self.pipeline.transformer if self.family == "flux" else self.pipeline.unet

    @property
    def autoencoder(self) -> torch.nn.Module:
        """The image <-> latent model: a KL VAE, or Kandinsky's MoVQ (a VQ autoencoder)."""
        return self.pipeline.movq if self.family == "kandinsky" else self.pipeline.vae

    @property
    def vae_scale(self) -> int:
        return 2 ** (len(self.autoencoder.config.block_out_channels) - 1)

    @property
    def size_multiple(self) -> int:
        """What image sides are rounded to: the autoencoder's scale; twice that for FLUX, which packs
        2×2 latent patches; its square for Kandinsky, whose pipeline keeps latent sides multiples of
        the scale."""
        return {"flux": 2 * self.vae_scale, "kandinsky": self.vae_scale ** 2}.get(self.family, self.vae_scale)

    def working_size(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) an image of that size is worked on at: the longer side at the
        backbone's resolution, both sides multiples of `size_multiple`, the aspect ratio kept."""
        scale, multiple = self.resolution / max(height, width), self.size_multiple
        return (max(multiple, round(height * scale / multiple) * multiple),
                max(multiple, round(width * scale / multiple) * multiple))

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [-1, 1] -> normalised latents (N, c, H/s, W/s), the VAE's mean."""
        images = images.to(self.device, self.dtype)
        if self.family == "kandinsky":  # MoVQ latents are used as they leave the encoder, unscaled
            return self.autoencoder.encode(images).latents
        vae = self.autoencoder
        latents = vae.encode(images).latent_dist.mean
        shift = vae.config.shift_factor or 0.0
        return (latents - shift) * vae.config.scaling_factor

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalised latents -> (N, 3, H, W) images, roughly in [-1, 1]."""
        latents = latents.to(self.dtype)
        if self.family == "kandinsky":  # Kandinsky's pipelines decode without snapping to the codebook
            return self.autoencoder.decode(latents, force_not_quantize=True).sample.float()
        vae = self.autoencoder
        shift = vae.config.shift_factor or 0.0
        return vae.decode(latents / vae.config.scaling_factor + shift).sample.float()

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

    def condition(self, prompt: str = "") -> dict[str, torch.Tensor]:
        """The conditioning of `prompt`, cached: its text embeddings (plus SDXL's size or quality
        numbers), or for Kandinsky the CLIP image embedding its prior draws for the prompt."""
        return self._cached(prompt, lambda: self._encode_prompt(prompt))

    def unconditional(self) -> dict[str, torch.Tensor]:
        """The conditioning of classifier-free guidance's unconditional branch, as the family's own
        pipeline makes it when no negative prompt is given: the empty prompt, zeroed where the
        pipeline's config says so (SDXL base), with the refiner's low aesthetic score. Kandinsky:
        the prior's draw for the negative prompt "", which PIXELS' Kandinsky script passes."""
        return self._cached(None, self._encode_unconditional)

    @torch.no_grad()
    def _cached(self, key: str | None, encode) -> dict[str, torch.Tensor]:
        """`encode()`, once per key. On a GPU the text encoders (FLUX's T5-XXL is 9.5 GiB) and
        Kandinsky's prior wait in CPU memory between prompts: methods without prompts need them once."""
        if key not in self._conditions:
            encoders = [] if self.offloaded else self._encoders()
            for encoder in encoders:
                encoder.to(self.device)
            self._conditions[key] = encode()
            if self.device.type != "cpu":
                for encoder in encoders:
                    encoder.to("cpu")
        return self._conditions[key]

    def _encoders(self) -> list[Any]:
        texts = [self.pipeline.components[name] for name in ("text_encoder", "text_encoder_2")
                 if self.pipeline.components.get(name) is not None]
        return texts + ([self.prior] if self.prior is not None else [])

    def _encode_prompt(self, prompt: str) -> dict[str, torch.Tensor]:
        if self.family == "flux":
            embeds, pooled, text_ids = self.pipeline.encode_prompt(
                prompt, prompt_2=prompt, device=self.device, max_sequence_length=self._max_text_length())
            return {"encoder_hidden_states": embeds, "pooled_projections": pooled, "txt_ids": text_ids}
        if self.family == "kandinsky":
            return {"image_embeds": self._prior_embeddings(prompt)[0]}
        if self.family in ("sdxl", "sdxl-refiner"):
            embeds, _, pooled, _ = self.pipeline.encode_prompt(prompt, device=self.device,
                                                                do_classifier_free_guidance=False)
            return {"encoder_hidden_states": embeds, "text_embeds": pooled,
                    "time_ids": self._time_ids(embeds.dtype)}
        if self.family == "ip2p":  # its pipeline has only the older, single-tensor prompt encoder
            return {"encoder_hidden_states": self.pipeline._encode_prompt(prompt, self.device, 1,
                                                                          do_classifier_free_guidance=False)}
        embeds, _ = self.pipeline.encode_prompt(prompt, self.device, 1, do_classifier_free_guidance=False)
        return {"encoder_hidden_states": embeds}

    def _encode_unconditional(self) -> dict[str, torch.Tensor]:
        if self.family == "kandinsky":
            return {"image_embeds": self._prior_embeddings("")[1]}
        condition = self._encode_prompt("")
        if self.pipeline.config.get("force_zeros_for_empty_prompt"):
            condition.update(encoder_hidden_states=torch.zeros_like(condition["encoder_hidden_states"]),
                             text_embeds=torch.zeros_like(condition["text_embeds"]))
        if self.family == "sdxl-refiner":
            condition["time_ids"] = self._time_ids(condition["time_ids"].dtype, REFINER_NEGATIVE_AESTHETIC_SCORE)
        return condition

    def _time_ids(self, dtype: torch.dtype, aesthetic_score: float = REFINER_AESTHETIC_SCORE) -> torch.Tensor:
        """SDXL's micro-conditioning: original size and crop corner (none), then the target size
        (base) or an aesthetic score (refiner)."""
        side = self.resolution
        last = [aesthetic_score] if self.family == "sdxl-refiner" else [side, side]
        return torch.tensor([[side, side, 0, 0, *last]], device=self.device, dtype=dtype)

    def _prior_embeddings(self, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(image embedding of `prompt`, of the negative prompt ""): the prior pipeline's two draws,
        as PIXELS' Kandinsky script asks for them."""
        if self.prior is None:  # checked here, not at loading, so methods that cannot use one refuse first
            raise AnalogizeError(f"{self.pipeline.name_or_path}: a Kandinsky 2.2 decoder is conditioned on image "
                                 "embeddings from its prior; give --prior DIR (kandinsky-2-2-prior)")
        generator = torch.Generator().manual_seed(PRIOR_SEED)
        return self.prior(prompt, negative_prompt="", generator=generator, return_dict=False)

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
        return [self.level_at(int(t)) for t in scheduler.timesteps]

    def level_at(self, timestep: int) -> Level:
        """The level of one of the scheduler's training timesteps (ε- and v-prediction families)."""
        alpha = self.pipeline.scheduler.alphas_cumprod[timestep]
        return Level(float(timestep), float(alpha.sqrt()), float((1 - alpha).sqrt()))

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
        if image_latent is not None:
            noised = torch.cat([noised, image_latent.to(self.dtype)], dim=1)
        # Kandinsky's UNet has no text to attend to: it projects its image embedding itself.
        states = expand.pop("encoder_hidden_states", None)
        added = {name: value.expand(n, -1) for name, value in expand.items()} or None  # SDXL, Kandinsky
        output = network(noised, timestep, encoder_hidden_states=states, added_cond_kwargs=added).sample
        # Kandinsky's UNet also predicts a variance, in channels c..2c; the samplers need ε only.
        return output[:, :channels].float()

    def estimates(self, noised: torch.Tensor, output: torch.Tensor, level: Level) -> tuple[torch.Tensor, torch.Tensor]:
        """(x̂_0, ε̂) from a model output at `level`, for every parametrisation."""
        a, b = level.signal, level.noise
        if self.prediction == "flow":  # v = ε − x_0 with a = 1 − σ, b = σ
            return noised - b * output, noised + a * output
        if self.prediction == "epsilon":
            return (noised - b * output) / a, output
        return a * noised - b * output, b * noised + a * output  # v-prediction, a² + b² = 1

    def denoising_loss(self, clean: torch.Tensor, noise: torch.Tensor, level: Level, condition: dict[str, torch.Tensor],
                       network: torch.nn.Module | None = None, *, extra_channels: torch.Tensor | None = None,
                       image_latent: torch.Tensor | None = None) -> torch.Tensor:
        """The standard denoising loss, written once for the methods that train on a backbone: the
        MSE between the model's output for `clean` (N, c, h, w) noised with `noise` at `level` and
        the output that would recover exactly them (`output_for`), so it holds in every parametrisation.
        `extra_channels` (N, k, h, w) go in beside the noised latent (Paint by Example's masked
        photo and mask); `network` and `image_latent` as in `predict`."""
        noised = level.noised(clean, noise)
        if extra_channels is not None:
            noised = torch.cat([noised, extra_channels], dim=1)  # (N, c + k, h, w)
        output = self.predict(noised, level, condition, network, image_latent=image_latent)
        return torch.nn.functional.mse_loss(output, self.output_for(clean, noise, level))

    def output_for(self, clean: torch.Tensor, noise: torch.Tensor, level: Level) -> torch.Tensor:
        """The model output that would give exactly (x̂_0, ε̂) = (clean, noise): the inverse of
        `estimates`, used to state training targets in any parametrisation."""
        a, b = level.signal, level.noise
        if self.prediction == "flow":
            return noise - clean
        if self.prediction == "epsilon":
            return noise
        return a * noise - b * clean


def quiet_loading() -> None:
    """No loading bars from diffusers and transformers: they are noise; our own progress shows the work."""
    import diffusers
    import transformers

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()


def load_backbone(config: BackboneConfig, prior: str = "") -> Backbone:
    """Load the pipeline named by `config.base_model` from local files only; `prior` names the
    Kandinsky 2.2 prior pipeline a Kandinsky decoder needs (folder or cached hub id)."""
    try:
        import peft  # noqa: F401  (the LoRAs)
        import transformers  # noqa: F401  (the text encoders)
        from diffusers import (
            FluxPipeline,
            KandinskyV22Img2ImgPipeline,
            KandinskyV22Pipeline,
            KandinskyV22PriorPipeline,
            StableDiffusionInstructPix2PixPipeline,
            StableDiffusionPipeline,
            StableDiffusionXLImg2ImgPipeline,
            StableDiffusionXLPipeline,
        )
    except ImportError as error:
        raise AnalogizeError(f"pretrained backbones need {error.name}; pip install 'analogize[diffusion]'") from None

    if not config.base_model:
        raise AnalogizeError("this method builds on a pretrained diffusion model; give --base-model "
                             "(a downloaded diffusers folder, or a hub id in the local cache)")
    if config.dtype not in DTYPES:
        raise AnalogizeError(f"dtype {config.dtype!r} is unknown; choose one of {', '.join(DTYPES)}")
    device = resolve_device(config.device)
    if device.type == "cpu" and (config.dtype == "fp16" or config.cpu_offload):
        raise AnalogizeError("fp16 and cpu_offload need a GPU; use dtype fp32 or bf16 on the CPU")
    quiet_loading()
    pipeline = _load_local_pipeline(config.base_model, "--base-model", DTYPES[config.dtype])
    kind = type(pipeline)
    if isinstance(pipeline, FluxPipeline):
        family = "flux"
    elif kind is StableDiffusionPipeline:
        family = "sd"
    elif kind is StableDiffusionInstructPix2PixPipeline:
        family = "ip2p"
    elif kind in (StableDiffusionXLPipeline, StableDiffusionXLImg2ImgPipeline):
        # The refiner's UNet takes an aesthetic score where the base takes the target size.
        family = "sdxl-refiner" if pipeline.config.get("requires_aesthetics_score") else "sdxl"
    elif kind in (KandinskyV22Pipeline, KandinskyV22Img2ImgPipeline):
        family = "kandinsky"
    elif kind is KandinskyV22PriorPipeline:
        raise AnalogizeError(f"{config.base_model}: a Kandinsky 2.2 prior; give it as --prior and the decoder "
                             "(kandinsky-2-2-decoder) as --base-model")
    else:
        raise AnalogizeError(f"{config.base_model}: a {kind.__name__}; supported are FluxPipeline (FLUX.1), "
                             "StableDiffusionPipeline (SD 1.x / 2.x), StableDiffusionXL(Img2Img)Pipeline (SDXL "
                             "base, refiner), StableDiffusionInstructPix2PixPipeline and KandinskyV22Pipeline "
                             "(Kandinsky 2.2 decoder)")
    prediction = "flow" if family == "flux" else pipeline.scheduler.config.prediction_type
    if prediction not in PREDICTIONS:
        raise AnalogizeError(f"{config.base_model}: prediction type {prediction!r} is not supported")
    if prior and family != "kandinsky":
        raise AnalogizeError(f"--prior {prior}: only a Kandinsky 2.2 decoder takes a prior, and {config.base_model} "
                             f"is {family}; leave --prior out")
    prior_pipeline = _load_local_pipeline(prior, "--prior", DTYPES[config.dtype]) if prior else None
    if prior_pipeline is not None and not isinstance(prior_pipeline, KandinskyV22PriorPipeline):
        raise AnalogizeError(f"--prior {prior}: a {type(prior_pipeline).__name__}, not a KandinskyV22PriorPipeline; "
                             "give the folder of kandinsky-community/kandinsky-2-2-prior")
    for part in (pipeline, prior_pipeline):
        if part is None:
            continue
        part.set_progress_bar_config(disable=True)
        for module in part.components.values():
            if isinstance(module, torch.nn.Module):
                module.requires_grad_(False)
    if config.cpu_offload:
        pipeline.enable_model_cpu_offload(device=device)
        if prior_pipeline is not None:
            prior_pipeline.enable_model_cpu_offload(device=device)
    else:
        pipeline.to(device)  # the prior, like the text encoders, comes to the device only to encode a prompt
    backbone = Backbone(pipeline, family, prediction, device, DTYPES[config.dtype], config.resolution,
                        config.guidance, config.cpu_offload, prior_pipeline)
    if config.gradient_checkpointing:
        backbone.denoiser.enable_gradient_checkpointing()
    return backbone


def _load_local_pipeline(name: str, option: str, dtype: torch.dtype) -> Any:
    """The diffusers pipeline in folder or cached hub id `name`, once `check_loadable` passes it."""
    from diffusers import DiffusionPipeline

    folder = model_folder(name, option)
    if not (folder / "model_index.json").is_file():
        raise AnalogizeError(f"{name}: no model_index.json, so not a diffusers pipeline; give {option} the folder "
                             "of one, whole, as `hf download` writes it")
    check_loadable(folder, option)
    try:
        return DiffusionPipeline.from_pretrained(folder, dtype=dtype, **NO_REMOTE_CODE)
    except Exception as error:  # noqa: BLE001 - a missing part, bad JSON, a truncated file: all a broken folder
        raise AnalogizeError(f"{name}: loading its diffusers pipeline failed ({library_message(error)}); download "
                             f"the folder again, whole, or give {option} another") from None
