"""Training for LoRA of Change (`analogize train-loc`), all through the shared loop (training.py).

1. The base model. The gpu presets build on a real InstructPix2Pix pipeline (--base-model). The
   tiny/cpu presets have none to download, so they train a small one first: a random
   InstructPix2Pix pipeline (random_pipelines.build_ip2p_pipeline) whose VAE learns to reconstruct
   photo crops (`AutoencoderTask`), then whose UNet learns to denoise an edited crop given the
   crop (`DenoiserTask`; half the time the crop itself, so with the empty prompt it stays close
   to the query like a real InstructPix2Pix does). It is saved as a diffusers pipeline folder.
2. The hypernetwork, with the base frozen (`ReverseTask`), by LoRA Reverse:

       Δ = H(A, A′)
       L = ‖ε − ε_{θ+Δ}(z_t(B′); B)‖² + ‖ε − ε_{θ−Δ}(z_t(B); B′)‖²

   The +Δ term edits B into B′; the −Δ term must undo the edit, turning B′ back into B, which a
   LoRA that merely copied A′ could not do. With probability exchange_probability the quad is
   reversed (⟨A′, A⟩ with B and B′ swapped), teaching H(A′, A) ≈ −H(A, A′). The ε-targets are
   written through `Backbone.output_for`, so v-prediction models train the same way.

The result is a folder: loc.json (the LocConfig, base_model relative to the folder when it lies
inside), hypernetwork.safetensors, base/ (the trained base model, tiny/cpu presets) and the
run folders with checkpoints and losses.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from safetensors.torch import load_file, save_file
from torch import nn

from ...atomic import write_text_atomic
from ...backbones import Backbone, Level, load_backbone, quiet_loading
from ...data.edits import EDIT_SETS, EDITS
from ...devices import resolve_device
from ...distributed import process_state
from ...errors import AnalogizeError
from ...training import LoopSettings, run_training
from .config import LocConfig
from .data import QuadSource, quad_source
from .hypernetwork import LoraHypernetwork
from .lora import find_targets, generated_lora

CONFIG_FILE, WEIGHTS_FILE, BASE_FOLDER = "loc.json", "hypernetwork.safetensors", "base"
IDENTITY_PROBABILITY = 0.5
"""How often the small base model learns to return the query itself: with the empty prompt a real
InstructPix2Pix stays close to its input, and the LoRA should bring the change."""


def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    """(S, S, 3) images in [0, 1] -> (N, 3, S, S) in [-1, 1]."""
    return torch.from_numpy(np.stack(images).transpose(0, 3, 1, 2).copy()) * 2.0 - 1.0


def noise_batch(rng: np.random.Generator, count: int, shape: tuple[int, ...], levels: int) -> dict[str, Any]:
    return {"noise": torch.from_numpy(rng.standard_normal((count, *shape)).astype(np.float32)),
            "level": int(rng.integers(levels))}


def training_levels(backbone: Backbone) -> list[Level]:
    """Every timestep the InstructPix2Pix scheduler was trained on (0 … 999), as noise levels."""
    return [backbone.level_at(t) for t in range(len(backbone.pipeline.scheduler.alphas_cumprod))]


# --- 1. the small base model (tiny/cpu presets) ------------------------------------------------------


class AutoencoderTask:
    """The VAE reconstructs photo crops from its latent mean (what Backbone.encode uses). No KL
    term: the latent scale is set afterwards (`calibrate_latent_scale`)."""

    def __init__(self, backbone: Backbone, source: QuadSource, config: LocConfig):
        self.source, self.config = source, config
        vae = backbone.pipeline.vae.requires_grad_(True)
        self.modules: dict[str, nn.Module] = {"vae": vae}
        self.optimizers = {"vae": torch.optim.AdamW(vae.parameters(), lr=config.base_learning_rate)}
        self.fingerprint = {"stage": "autoencoder", **config.training_fingerprint(source.description)}

    def batch(self, rng: np.random.Generator) -> torch.Tensor:
        return to_tensor([self.source.quad(rng)[int(rng.integers(2))] for _ in range(self.config.batch_size)])

    def training_step(self, images: torch.Tensor, accelerator: Accelerator) -> dict[str, float]:
        loss = F.mse_loss(self.modules["vae"](images).sample, images)  # decodes the latent mean
        accelerator.backward(loss)
        self.optimizers["vae"].step()
        return {"reconstruction": loss.item()}


class DenoiserTask:
    """The UNet predicts ε for an edited crop A′ noised, given A as the query image and the empty
    prompt (A itself as the target half the time)."""

    def __init__(self, backbone: Backbone, source: QuadSource, config: LocConfig):
        self.backbone, self.source, self.config = backbone, source, config
        unet = backbone.denoiser.requires_grad_(True)
        self.modules: dict[str, nn.Module] = {"unet": unet}
        self.optimizers = {"unet": torch.optim.AdamW(unet.parameters(), lr=config.base_learning_rate)}
        self.fingerprint = {"stage": "denoiser", **config.training_fingerprint(source.description)}
        self.levels = training_levels(backbone)
        self.condition = backbone.condition("")

    def batch(self, rng: np.random.Generator) -> dict[str, Any]:
        queries, targets = [], []
        for _ in range(self.config.batch_size):
            before, after, _, _ = self.source.quad(rng)
            queries.append(before)
            targets.append(before if rng.random() < IDENTITY_PROBABILITY else after)
        side = self.backbone.latent_side
        return {"query": to_tensor(queries), "target": to_tensor(targets),
                **noise_batch(rng, len(queries), (self.backbone.pipeline.vae.config.latent_channels, side, side),
                              len(self.levels))}

    def training_step(self, batch: dict[str, Any], accelerator: Accelerator) -> dict[str, float]:
        backbone, level = self.backbone, self.levels[batch["level"]]
        clean = backbone.encode(batch["target"])
        query = backbone.encode(batch["query"]) / backbone.pipeline.vae.config.scaling_factor
        loss = backbone.denoising_loss(clean, batch["noise"], level, self.condition, self.modules["unet"],
                                       image_latent=query)
        accelerator.backward(loss)
        self.optimizers["unet"].step()
        return {"denoising": loss.item()}


def train_base_model(config: LocConfig, source: QuadSource, folder: Path, *, resume: bool, progress: bool) -> Path:
    """Train a small InstructPix2Pix pipeline and save it to folder/base (kept if already there)."""
    from ...random_pipelines import IP2P_SIZES, build_ip2p_pipeline

    target = folder / BASE_FOLDER
    if (target / "model_index.json").is_file():
        return target
    quiet_loading()  # save_pretrained's shard bar; ours shows training
    if config.base_size not in IP2P_SIZES:
        raise AnalogizeError(f"loc: base_size {config.base_size!r} is unknown; choose one of {', '.join(IP2P_SIZES)}")
    pipeline = build_ip2p_pipeline(IP2P_SIZES[config.base_size], config.seed)
    device = resolve_device(config.device)
    backbone = Backbone(pipeline.to(device), "ip2p", pipeline.scheduler.config.prediction_type, device,
                        torch.float32, config.resolution)
    pipeline.text_encoder.requires_grad_(False)
    stages = ((AutoencoderTask, config.autoencoder_steps, "run-autoencoder"),
              (DenoiserTask, config.denoiser_steps, "run-denoiser"))
    for task_class, steps, run_name in stages:
        task = task_class(backbone, source, config)
        settings = LoopSettings(steps=steps, seed=config.seed, checkpoint_every=config.checkpoint_every,
                                log_with=config.log_with, progress=progress)
        run_training(task, settings, run_dir=folder / run_name, resume=resume)
        next(iter(task.modules.values())).requires_grad_(False)
        if task_class is AutoencoderTask:
            calibrate_latent_scale(backbone, source, config)
    state = process_state()
    if state.is_main_process:  # every process trained the same weights; one writes them
        pipeline.save_pretrained(target, safe_serialization=True)
    state.wait_for_everyone()
    return target


@torch.no_grad()
def calibrate_latent_scale(backbone: Backbone, source: QuadSource, config: LocConfig) -> None:
    """Set the VAE's scaling factor so latents have unit standard deviation, as Stable Diffusion's
    0.18215 does for its VAE: the noise schedule assumes unit-scale data."""
    vae = backbone.pipeline.vae
    rng = np.random.default_rng(config.seed)
    images = to_tensor([source.quad(rng)[0] for _ in range(32)]).to(backbone.device)
    latents = vae.encode(images).latent_dist.mean
    vae.register_to_config(scaling_factor=float(1.0 / latents.std()))


# --- 2. the hypernetwork by LoRA Reverse ------------------------------------------------------------


def build_hypernetwork(config: LocConfig, denoiser: nn.Module) -> LoraHypernetwork:
    try:
        targets = find_targets(denoiser, config.targets)
    except ValueError as error:
        raise AnalogizeError(f"{config.base_model}: {error}; change the targets setting") from None
    return LoraHypernetwork(targets, rank=config.rank, image_size=config.image_size, patch_size=config.patch_size,
                            width=config.width, encoder_depth=config.encoder_depth, decoder_depth=config.decoder_depth,
                            heads=config.heads, antisymmetric=config.antisymmetric)


def lora_scale(config: LocConfig) -> float:
    return config.alpha / config.rank


class ReverseTask:
    """LoRA Reverse on quads: one AdamW over the hypernetwork; the base model stays frozen."""

    def __init__(self, config: LocConfig, backbone: Backbone, hypernetwork: LoraHypernetwork, source: QuadSource):
        self.config, self.backbone, self.source = config, backbone, source
        self.modules: dict[str, nn.Module] = {"hypernetwork": hypernetwork}
        self.optimizers = {"hypernetwork": torch.optim.AdamW(hypernetwork.parameters(), lr=config.learning_rate)}
        self.fingerprint = config.training_fingerprint(source.description)
        self.levels = training_levels(backbone)
        self.condition = backbone.condition("")

    def batch(self, rng: np.random.Generator) -> dict[str, Any]:
        quads = []
        for _ in range(self.config.batch_size):
            before, after, query, target = self.source.quad(rng)
            if rng.random() < self.config.exchange_probability:  # ⟨A, A′⟩ -> ⟨A′, A⟩, so B′ -> B
                before, after, query, target = after, before, target, query
            quads.append((before, after, query, target))
        side = self.backbone.latent_side
        channels = self.backbone.pipeline.vae.config.latent_channels
        return {**{name: to_tensor([quad[index] for quad in quads])
                   for index, name in enumerate(("before", "after", "query", "target"))},
                **noise_batch(rng, len(quads), (channels, side, side), len(self.levels))}

    def reverse_loss(self, batch: dict[str, Any], hypernetwork: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """The two terms of L: (B -> B′ with +Δ, B′ -> B with −Δ)."""
        backbone, level, noise = self.backbone, self.levels[batch["level"]], batch["noise"]
        factors = hypernetwork(*(hypernetwork_input(batch[name], self.config) for name in ("before", "after")))
        latents = {name: backbone.encode(batch[name]) for name in ("query", "target")}
        scale = backbone.pipeline.vae.config.scaling_factor
        terms = []
        for sign, clean, condition in ((1.0, latents["target"], latents["query"]),  # B -> B′ with +Δ
                                       (-1.0, latents["query"], latents["target"])):  # B′ -> B with −Δ
            with generated_lora(backbone.denoiser, factors, sign=sign, scale=lora_scale(self.config)):
                terms.append(backbone.denoising_loss(clean, noise, level, self.condition,
                                                     image_latent=condition / scale))
        return terms[0], terms[1]

    def training_step(self, batch: dict[str, Any], accelerator: Accelerator) -> dict[str, float]:
        forward, backward = self.reverse_loss(batch, self.modules["hypernetwork"])
        accelerator.backward(forward + backward)
        self.optimizers["hypernetwork"].step()
        return {"edit": forward.item(), "undo": backward.item()}


def hypernetwork_input(images: torch.Tensor, config: LocConfig) -> torch.Tensor:
    """(N, 3, H, W) in [-1, 1] at the hypernetwork's image_size."""
    if images.shape[-1] == config.image_size and images.shape[-2] == config.image_size:
        return images
    return F.interpolate(images, size=(config.image_size, config.image_size), mode="bilinear", antialias=True,
                         align_corners=False)


def train_loc(config: LocConfig, folder: Path, *, resume: bool = False, progress: bool = True) -> Path:
    """`analogize train-loc`: the base model if the preset trains one, then the hypernetwork."""
    folder = Path(folder)
    held_out = [name for name in config.hold_out if name not in EDITS]
    if held_out:
        raise AnalogizeError(f"--hold-out: {', '.join(held_out)} are not benchmark edits; "
                             f"choose from {', '.join(EDITS)}")
    if not config.base_model and not config.base_size:
        raise AnalogizeError("train-loc: this preset builds on a real InstructPix2Pix; give --base-model DIR (a "
                             "download of timbrooks/instruct-pix2pix), or use the tiny or cpu preset, "
                             "which train their own")
    # The classic set only: the whole-frame filter needs large pairs, which loc's quads are not.
    train_edits = [name for name in EDIT_SETS["classic"] if name not in config.hold_out]
    source = quad_source(config.data, config.resolution, train_edits=train_edits, crop_pool=config.crop_pool,
                         seed=config.seed)
    if not config.base_model:
        base = train_base_model(config, source, folder, resume=resume, progress=progress)
        config = dataclasses.replace(config, base_model=str(base))
    backbone = load_backbone(config)
    torch.manual_seed(config.seed)  # the hypernetwork's initial weights
    hypernetwork = build_hypernetwork(config, backbone.denoiser)
    task = ReverseTask(config, backbone, hypernetwork, source)
    result = run_training(task, config.loop_settings(ema_module="hypernetwork", progress=progress),
                          run_dir=folder / "run", resume=resume)
    trained = result.ema.get("hypernetwork", task.modules["hypernetwork"])
    if process_state().is_main_process:
        save_hypernetwork(trained, config, folder)
    return folder


def save_hypernetwork(hypernetwork: nn.Module, config: LocConfig, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    save_file({name: value.detach().float().cpu().contiguous() for name, value in hypernetwork.state_dict().items()},
              folder / WEIGHTS_FILE)
    base = Path(config.base_model)
    if base.is_dir() and base.resolve().is_relative_to(folder.resolve()):  # the folder moves as a whole
        config = dataclasses.replace(config, base_model=str(base.resolve().relative_to(folder.resolve())))
    write_text_atomic(folder / CONFIG_FILE, json.dumps(dataclasses.asdict(config), indent=2))


def load_hypernetwork(folder: Path, overrides: dict[str, Any]) -> tuple[LocConfig, LoraHypernetwork, Backbone]:
    """A trained hypernetwork, its settings (with `overrides`: the sampling settings a user may
    choose) and its base model, loaded from local files."""
    from ..base import config_from_dict

    folder = Path(folder)
    if not (folder / CONFIG_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise AnalogizeError(f"{folder}: no trained LoRA of Change hypernetwork ({CONFIG_FILE} and "
                             f"{WEIGHTS_FILE}); train one with `analogize train-loc --preset cpu -o {folder}`")
    values = json.loads((folder / CONFIG_FILE).read_text())
    if values.get("base_model") and (folder / values["base_model"]).exists():
        values["base_model"] = str((folder / values["base_model"]).resolve())
    values.update(overrides, hypernetwork=str(folder.resolve()))
    config = config_from_dict(LocConfig, values, source=str(folder / CONFIG_FILE))
    backbone = load_backbone(config)
    hypernetwork = build_hypernetwork(config, backbone.denoiser)
    hypernetwork.load_state_dict(load_file(folder / WEIGHTS_FILE))
    return config, hypernetwork.to(backbone.device).eval().requires_grad_(False), backbone
