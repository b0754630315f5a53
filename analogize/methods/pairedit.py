"""pairedit: PairEdit (Mao et al., NeurIPS 2025) — an edit learned as two LoRAs on a pretrained
diffusion model, from one or a few (A, B) pairs and no text.

Training (one pair per step, as the original): a noise level t from the backbone's 28-level grid,
one ε shared by both images, and the content-preserving noised input (docs/methods/pairedit.md
derives the ε- and v-prediction forms from the flow-matching one):

    flow matching (FLUX):  x_t = x_0^A + σ_t·β·ε
    ε / v (SD 1.x, 2.x):   x_t = √ᾱ_t·x_0^A + √(1 − ᾱ_t)·β·ε

Two LoRAs on every attention projection of the frozen denoiser, trained jointly, each by its own
loss. Each target is the model output whose clean-image estimate x̂_0 is
- content  (θ + θc; only θc learns): x̂_0 = x_0^A — reproduce A;
- semantic (θ + θc + θs; only θs learns): x̂_0 = x_0^A − σ_t·η·(x_0^A − x_0^B) — a step of size
  σ_t·η from A towards B (σ_t: the flow σ of the level's signal-to-noise ratio),
expressed in the model's parametrisation by `Backbone.output_for`. For flow matching this is the
paper's v_c = β·ε and v_s = β·ε + η·(x_0^A − x_0^B).

Applying to a photo (the original's real-image editing): fit an "inversion" LoRA to the photo,
then sample from noise with it on; from step `skip` on, the velocity is
v_content + guidance·(v_semantic − v_content), guidance = semantic_cfg × strength. A strength map
or mask is applied through PIXELS' per-pixel surgery (see PairEditEdit.apply).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch import nn

from ..backbones import Backbone, BackboneConfig, Level, load_backbone
from ..errors import AnalogizeError
from ..pairs import PairSet
from ..samplers import StepProgress, classifier_free, deterministic_sample, step_progress
from ..training import run_training
from .base import (Edit, Method, MethodConfig, TrainableConfig, blend, check_apply_inputs, edit_at_scale,
                   strength_weight)
from .pixels import Exemplar, pixels_edit

ATTENTION_PROJECTIONS = ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"]
"""Every Linear of every attention module (FLUX's joint attention has the add_* ones; SD's not)."""
CONTENT, SEMANTIC, INVERSION = "content", "semantic", "inversion"
PIXELS_ONLY_FAMILIES = {
    "sdxl-refiner": "the SDXL refiner was trained on the low-noise end of the grid only",
    "kandinsky": "the Kandinsky 2.2 decoder takes its condition from a separate prior",
}
"""Backbones PIXELS edits with but PairEdit cannot learn on, with the reason."""

PRESETS: dict[str, dict[str, Any]] = {
    # Tests and CPU checks on a tiny random backbone (tiny_backbones.py): seconds.
    "tiny": dict(resolution=32, steps=30, rank=4, inversion_steps=20, sample_steps=6, skip=3, checkpoint_every=0),
    # The original on one GPU: FLUX.1-dev in bf16 at 512 px.
    "gpu": dict(dtype="bf16", resolution=512, checkpoint_every=100),
}


@dataclass
class PairEditConfig(TrainableConfig, BackboneConfig):
    """Defaults are the original's (xudonmao/PairEdit, config/train_image.yaml)."""

    steps: int = 500
    """Training iterations, one pair each."""
    checkpoint_every: int = 100
    learning_rate: float = 2e-3
    """AdamW learning rate of both LoRAs, constant."""
    rank: int = 16
    """Rank of every LoRA."""
    alpha: float = 1.0
    """LoRA alpha: the update is scaled by alpha / rank (Concept Sliders' convention)."""
    eta: float = 4.0
    """η, the guidance-direction strength: how far the semantic target moves x̂_0 towards B."""
    noise_scale: float = 1.0
    """β of the content-preserving noise (the original's README example uses 3)."""
    grid_steps: int = 28
    """Levels of the backbone's noise grid training draws from (the original's num_inference_steps)."""
    first_level: int = 0
    """Lowest grid index trained on (0 = the noisiest level)."""
    last_level: int = 27
    """Highest grid index trained on."""
    inversion_steps: int = 1500
    """Iterations of the inversion LoRA fitted to each photo when applying."""
    inversion_rank: int = 16
    sample_steps: int = 28
    """Sampler steps when applying (Euler for flow matching, DDIM otherwise)."""
    skip: int = 14
    """Steps taken with the content LoRAs only, so the layout comes from the photo."""
    semantic_cfg: float = 0.75
    """Guidance of the semantic LoRA at strength 1 (the original's semantic_cfg_scale)."""

    resumable_changes: ClassVar[tuple[str, ...]] = TrainableConfig.resumable_changes + (
        "inversion_steps", "inversion_rank", "sample_steps", "skip", "semantic_cfg", "device", "cpu_offload")

    def __post_init__(self) -> None:
        if not 0 <= self.first_level <= self.last_level < self.grid_steps:
            raise AnalogizeError(f"pairedit: levels {self.first_level}..{self.last_level} are not inside the "
                                 f"{self.grid_steps}-level grid; give 0 <= first_level <= last_level < grid_steps")
        if not 0 <= self.skip < self.sample_steps:
            raise AnalogizeError(f"pairedit: skip {self.skip} must lie in [0, sample_steps = {self.sample_steps})")
        if min(self.rank, self.inversion_rank, self.steps) < 1:
            raise AnalogizeError("pairedit: rank, inversion_rank and steps must be at least 1")


# --- the formulas ---------------------------------------------------------------------------------


def content_preserving_noised(clean: torch.Tensor, noise: torch.Tensor, level: Level, beta: float,
                              prediction: str) -> torch.Tensor:
    """x_t with the noise scaled by β and the clean latent kept at full strength (flow) or at the
    level's own signal: the noising of a level with that signal and noise."""
    if prediction == "flow":
        return Level(level.timestep, 1.0, level.sigma * beta).noised(clean, noise)
    return Level(level.timestep, level.signal, level.noise * beta).noised(clean, noise)


def pairedit_targets(backbone: Backbone, source: torch.Tensor, target: torch.Tensor, noise: torch.Tensor,
                     level: Level, beta: float, eta: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_t, content target, semantic target) for latents of A (`source`) and B (`target`)."""
    noised = content_preserving_noised(source, noise, level, beta, backbone.prediction)
    goals = (source, source - level.sigma * eta * (source - target))  # the x̂_0 each LoRA should give
    # The ε̂ that goes with each goal is fixed by x_t = signal·x̂_0 + noise·ε̂.
    outputs = [backbone.output_for(goal, (noised - level.signal * goal) / level.noise, level) for goal in goals]
    return noised, outputs[0], outputs[1]


# --- LoRAs on the denoiser ------------------------------------------------------------------------


def add_lora(denoiser: nn.Module, name: str, rank: int, alpha: float) -> list[nn.Parameter]:
    """A LoRA adapter `name` on every attention projection; returns its parameters."""
    from peft import LoraConfig

    present = {module_name.rsplit(".", 1)[-1] for module_name, _ in denoiser.named_modules()}
    targets = [target for target in ATTENTION_PROJECTIONS if target.rsplit(".", 1)[-1] in present]
    with warnings.catch_warnings():  # peft warns on every adapter after the first; several are the point here
        warnings.filterwarnings("ignore", message="Already found a `peft_config`")
        denoiser.add_adapter(LoraConfig(r=rank, lora_alpha=alpha, init_lora_weights="gaussian",
                                        target_modules=targets), adapter_name=name)
    found = [parameter for parameter_name, parameter in denoiser.named_parameters() if f".{name}." in parameter_name]
    lora_registry(denoiser)[name] = found
    return list(found)


def lora_registry(denoiser: nn.Module) -> dict[str, list[nn.Parameter]]:
    """Each adapter's parameters, listed once: switching adapters happens several times a step."""
    if not hasattr(denoiser, "_analogize_loras"):
        denoiser._analogize_loras = {}
    return denoiser._analogize_loras


def lora_parameters(denoiser: nn.Module, name: str) -> list[nn.Parameter]:
    return list(lora_registry(denoiser).get(name, []))


def use_loras(denoiser: nn.Module, weights: dict[str, float], trained: str | None) -> None:
    """Switch on the adapters in `weights` at those scales; only `trained` gets gradients."""
    denoiser.set_adapters(list(weights), list(weights.values()))
    for name in (CONTENT, SEMANTIC, INVERSION):
        for parameter in lora_parameters(denoiser, name):
            parameter.requires_grad_(name == trained)


def lora_state(denoiser: nn.Module, name: str) -> dict[str, torch.Tensor]:
    """The adapter's weights under diffusers/peft names without the adapter name (what
    `load_lora_weights` reads)."""
    from peft.utils import get_peft_model_state_dict

    return {key: value.detach().float().cpu().contiguous()
            for key, value in get_peft_model_state_dict(denoiser, adapter_name=name).items()}


def load_lora(denoiser: nn.Module, name: str, tensors: dict[str, torch.Tensor], rank: int, alpha: float) -> None:
    from peft.utils import set_peft_model_state_dict

    add_lora(denoiser, name, rank, alpha)
    set_peft_model_state_dict(denoiser, tensors, adapter_name=name)


# --- training -------------------------------------------------------------------------------------


class PairEditTask:
    """Both LoRAs in the backbone's denoiser, one AdamW over them, the pairs' latents cached."""

    def __init__(self, pairs: PairSet, config: PairEditConfig, backbone: Backbone):
        self.config, self.backbone = config, backbone
        denoiser = backbone.denoiser
        parameters = add_lora(denoiser, CONTENT, config.rank, config.alpha)
        parameters += add_lora(denoiser, SEMANTIC, config.rank, config.alpha)
        for parameter in parameters:  # LoRAs train in fp32 even on a bf16 backbone
            parameter.data = parameter.data.float()
            # Trainable when the loop wraps the denoiser, so distributed training syncs them all;
            # each loss then switches off the LoRA it must not train.
            parameter.requires_grad_(True)
        self.modules: dict[str, nn.Module] = {"denoiser": denoiser}
        self.optimizers = {"loras": torch.optim.AdamW(parameters, lr=config.learning_rate)}
        self.fingerprint = config.fingerprint(pairs)
        side = config.resolution
        self.sources = torch.cat([backbone.encode_image(pair.before, side, side) for pair in pairs])
        self.targets = torch.cat([backbone.encode_image(pair.after, side, side) for pair in pairs])
        self.levels = backbone.levels(config.grid_steps)
        self.condition = backbone.condition("")

    find_unused_parameters = True
    """Each of the step's two passes trains one LoRA: distributed training must expect weights
    without gradients."""

    def batch(self, rng: np.random.Generator) -> dict[str, Any]:
        index = int(rng.integers(len(self.sources)))
        return {  # the tensor first: the loop reads the batch size from it
            "noise": torch.from_numpy(rng.standard_normal(self.sources.shape[1:]).astype(np.float32))[None],
            "pair": index,
            "level": int(rng.integers(self.config.first_level, self.config.last_level + 1)),
        }

    def training_step(self, batch: dict[str, Any], accelerator: Accelerator) -> dict[str, float]:
        config, backbone = self.config, self.backbone
        level = self.levels[batch["level"]]
        source, target = self.sources[batch["pair"]][None], self.targets[batch["pair"]][None]
        noised, content_target, semantic_target = pairedit_targets(
            backbone, source, target, batch["noise"].to(source.device), level, config.noise_scale, config.eta)
        denoiser, network = backbone.denoiser, self.modules["denoiser"]  # network: as prepared by the loop
        use_loras(denoiser, {CONTENT: 1.0}, trained=CONTENT)
        content_loss = F.mse_loss(backbone.predict(noised, level, self.condition, network), content_target)
        accelerator.backward(content_loss)
        use_loras(denoiser, {CONTENT: 1.0, SEMANTIC: 1.0}, trained=SEMANTIC)
        semantic_loss = F.mse_loss(backbone.predict(noised, level, self.condition, network), semantic_target)
        accelerator.backward(semantic_loss)
        for optimizer in self.optimizers.values():
            optimizer.step()
        return {"content": content_loss.item(), "semantic": semantic_loss.item()}


# --- applying -------------------------------------------------------------------------------------


def fit_inversion(backbone: Backbone, latent: torch.Tensor, config: PairEditConfig, seed: int,
                  progress: StepProgress | None = None) -> None:
    """Fit the inversion LoRA to one photo's latent with the backbone's standard training loss,
    so sampling with it on reproduces the photo. `progress` hears of each iteration: there are
    `inversion_steps` (1500 by default), most of a photo's time."""
    denoiser = backbone.denoiser
    if INVERSION in getattr(denoiser, "peft_config", {}):
        denoiser.delete_adapters(INVERSION)
        lora_registry(denoiser).pop(INVERSION)
    with torch.random.fork_rng(devices=[]):  # the LoRA's random start comes from `seed`, not the caller's state
        torch.manual_seed(seed)
        parameters = add_lora(denoiser, INVERSION, config.inversion_rank, config.alpha)
    for parameter in parameters:
        parameter.data = parameter.data.float()
    use_loras(denoiser, {INVERSION: 1.0}, trained=INVERSION)
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate)
    levels, condition = backbone.levels(config.grid_steps), backbone.condition("")
    generator = torch.Generator().manual_seed(seed)
    for step in range(config.inversion_steps):
        level = levels[int(torch.randint(len(levels), (1,), generator=generator))]
        noise = torch.randn(latent.shape, generator=generator).to(latent.device)
        loss = backbone.denoising_loss(latent, noise, level, condition)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if progress is not None:
            progress(step + 1, config.inversion_steps)
    for parameter in parameters:
        parameter.requires_grad_(False)


def sample(backbone: Backbone, latent_shape: tuple[int, ...], config: PairEditConfig, guidance: float,
           base_loras: dict[str, float], seed: int, progress: StepProgress | None = None) -> torch.Tensor:
    """From noise to a latent over the backbone's grid with the shared deterministic sampler. The
    first `skip` steps use `base_loras` only; later ones add `guidance`·(semantic − content).
    `progress` hears of each step."""
    denoiser, condition = backbone.denoiser, backbone.condition("")

    def model_output(latent: torch.Tensor, index: int, level: Level) -> torch.Tensor:
        use_loras(denoiser, base_loras, trained=None)
        content = backbone.predict(latent, level, condition)
        if index < config.skip or not guidance:
            return content
        use_loras(denoiser, {**base_loras, SEMANTIC: 1.0}, trained=None)
        return classifier_free(backbone.predict(latent, level, condition), content, guidance)

    generator = torch.Generator().manual_seed(seed)
    start = torch.randn(latent_shape, generator=generator).to(backbone.device)  # the grid starts at (almost) pure noise
    return deterministic_sample(backbone, start, backbone.levels(config.sample_steps), model_output,
                                progress=progress)


class PairEditEdit(Edit):
    method = "pairedit"

    def __init__(self, config: PairEditConfig, content: dict[str, torch.Tensor], semantic: dict[str, torch.Tensor],
                 backbone: Backbone | None = None):
        super().__init__(config)
        self.content, self.semantic = content, semantic
        self._backbone = backbone

    @property
    def backbone(self) -> Backbone:
        """The base model with this edit's LoRAs, loaded on first use (edit files hold the LoRAs only)."""
        if self._backbone is None:
            self._backbone = load_backbone(self.config)
        denoiser = self._backbone.denoiser
        if CONTENT not in getattr(denoiser, "peft_config", {}):
            load_lora(denoiser, CONTENT, self.content, self.config.rank, self.config.alpha)
            load_lora(denoiser, SEMANTIC, self.semantic, self.config.rank, self.config.alpha)
        return self._backbone

    def apply(self, image: np.ndarray, *, strength: float = 1.0, strength_map: np.ndarray | None = None,
              mask: np.ndarray | None = None, seed: int = 0, scale: float = 1.0,
              progress: bool = False) -> np.ndarray:
        """Strength sets the semantic guidance (semantic_cfg × strength) inside the sampler. A
        strength map or mask goes through PIXELS (pixels.py): the base model, LoRAs off, denoises
        the edited photo while holding each pixel to the original for (1 − weight)·N steps, so the
        transition is the model's own; pixels of weight 0 are then restored exactly. `scale` as
        in `Edit.apply`. `progress`: bars on stderr for the photo's inversion, its sampling and
        any PIXELS pass (a photo takes minutes on a GPU)."""
        check_apply_inputs(image, strength, scale)
        weight = strength_weight(image.shape[:2], 1.0, strength_map, mask)
        if not weight.any():
            return image.copy()
        edited = edit_at_scale(lambda scaled: self.edit(scaled, seed=seed, strength=strength, progress=progress),
                               image, scale)
        if weight.min() < 1.0:
            denoiser = self.backbone.denoiser
            denoiser.disable_adapters()
            try:
                edited = pixels_edit(self.backbone, image, [Exemplar(edited, 1.0 - weight[..., 0])],
                                     steps=self.config.sample_steps, seed=seed, progress=progress)
            finally:
                denoiser.enable_adapters()
        return blend(image, edited, weight)

    def edit(self, image: np.ndarray, *, seed: int, strength: float = 1.0, progress: bool = False) -> np.ndarray:
        backbone, config = self.backbone, self.config
        latent = backbone.encode_image(image, config.resolution, config.resolution)
        with step_progress(progress, "inversion") as report:
            fit_inversion(backbone, latent, config, seed, report)
        with step_progress(progress, "sampling") as report:
            edited = sample(backbone, tuple(latent.shape), config, config.semantic_cfg * strength,
                            {INVERSION: 1.0, CONTENT: 1.0}, seed, report)
        return backbone.decode_image(edited, *image.shape[:2])

    def generate(self, *, scale: float = 1.0, seed: int = 0) -> np.ndarray:
        """An image of the base model's own (empty prompt), with the semantic LoRA at slider
        `scale` after `skip` steps: the original's generation with sliders."""
        backbone, config = self.backbone, self.config
        side = backbone.latent_side
        channels = backbone.pipeline.vae.config.latent_channels
        latent = sample(backbone, (1, channels, side, side), config, scale, {CONTENT: 1.0}, seed)
        return backbone.decode_image(latent, side * backbone.vae_scale, side * backbone.vae_scale)

    def loras(self) -> dict[str, dict[str, torch.Tensor]]:
        """Both LoRAs with the alpha / rank scale folded into the up-projection."""
        scale = self.config.alpha / self.config.rank
        return {f"pairedit_{name}": {key: value * scale if ".lora_B." in key else value for key, value in tensors.items()}
                for name, tensors in ((CONTENT, self.content), (SEMANTIC, self.semantic))}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {**{f"content.{k}": v for k, v in self.content.items()},
                **{f"semantic.{k}": v for k, v in self.semantic.items()}}

    @classmethod
    def from_state_dict(cls, tensors: dict[str, torch.Tensor], config: MethodConfig) -> "PairEditEdit":
        part = lambda prefix: {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}  # noqa: E731
        return cls(config, part("content."), part("semantic."))


def merge_edits(edits: list[PairEditEdit], weights: list[float]) -> PairEditEdit:
    """One edit doing several: each semantic LoRA at its weight, the content LoRAs averaged.

    Exact, not approximate: LoRAs add as ΔW = Σ w_i·s_i·B_i·A_i, which is one LoRA whose A is the
    A_i stacked and whose B is the w_i·s_i·B_i side by side (rank Σ r_i, scale 1)."""
    if len(edits) != len(weights) or len(edits) < 2:
        raise AnalogizeError(f"merge needs two or more pairedit edits and one weight each; got {len(edits)} "
                             f"edit(s) and {len(weights)} weight(s)")
    models = {edit.config.base_model for edit in edits}
    if len(models) > 1:
        raise AnalogizeError(f"these edits were learned on different base models ({', '.join(sorted(models))}); "
                             "merge edits of one base model")

    def stack(loras: list[dict[str, torch.Tensor]], factors: list[float]) -> dict[str, torch.Tensor]:
        merged = {}
        for key in loras[0]:
            if ".lora_A." in key:
                merged[key] = torch.cat([lora[key] for lora in loras], dim=0)
            else:
                merged[key] = torch.cat([factor * lora[key] for lora, factor in zip(loras, factors)], dim=1)
        return merged

    scales = [edit.config.alpha / edit.config.rank for edit in edits]
    rank = sum(edit.config.rank for edit in edits)
    config = dataclasses.replace(edits[0].config, rank=rank, alpha=float(rank))
    content = stack([edit.content for edit in edits], [scale / len(edits) for scale in scales])
    semantic = stack([edit.semantic for edit in edits], [weight * scale for weight, scale in zip(weights, scales)])
    return PairEditEdit(config, content, semantic)


ORIGINAL_KEYS = {  # the original's config/train_image*.yaml -> PairEditConfig
    "pretrained_model_name_or_path": "base_model", "cfg_eta": "eta", "noise_scales": "noise_scale",
    "num_inference_steps": "grid_steps", "start_step": "first_level", "end_step": "last_level",
    "guidance_scale": "guidance", "train_iteration": "steps", "save_per_steps": "checkpoint_every",
    "skips": "skip", "semantic_cfg_scale": "semantic_cfg",
}
ORIGINAL_KEYS_WITHOUT_MEANING_HERE = {  # paths, GPU ids and the original scripts' own bookkeeping
    "device", "python_name", "datasets_folder", "datasets", "source_folder", "target_folder", "config_name",
    "train_start", "train_count", "train_method", "output_folder", "use_trained_lora_path", "trained_lora_path",
    "use_prompts_file", "prompts_file", "use_random_seed", "output_folder_gen", "prompt", "start_seed_gen",
    "scales", "count_gen", "image_ids", "semantic_lora_path",
}


def translate_original_settings(values: dict[str, Any], source: str) -> dict[str, Any]:
    """The original's YAML keys as our settings. Lists (noise_scales, skips) give their first entry;
    in a real-image config (it names image_ids) train_iteration is the inversion LoRA's."""
    unknown = sorted(set(values) - set(ORIGINAL_KEYS) - ORIGINAL_KEYS_WITHOUT_MEANING_HERE
                     - {field.name for field in dataclasses.fields(PairEditConfig)})
    if unknown:
        raise AnalogizeError(f"{source}: unknown setting(s) {', '.join(unknown)}; use the original's "
                             "train_image*.yaml keys or pairedit's own (see docs/methods/pairedit.md)")
    settings = {}
    for key, value in values.items():
        if key in ORIGINAL_KEYS_WITHOUT_MEANING_HERE:
            continue
        name = ORIGINAL_KEYS.get(key, key)
        if name == "steps" and "image_ids" in values:
            name = "inversion_steps"
        settings[name] = value[0] if isinstance(value, list) else value
    if "grid_steps" in settings:
        settings.setdefault("sample_steps", settings["grid_steps"])
    return settings


class PairEdit(Method):
    name = "pairedit"
    summary = "PairEdit (NeurIPS 2025): content and semantic LoRAs on a pretrained diffusion model (FLUX.1, SD)"
    needs = "a pretrained FLUX.1 or Stable Diffusion pipeline on disk (--base-model); a GPU for real sizes"
    pretrained_setting = "base_model"
    config_class = PairEditConfig
    edit_class = PairEditEdit
    presets = PRESETS
    default_preset = None

    def settings_from_file(self, values: dict[str, Any], source: str) -> dict[str, Any]:
        return translate_original_settings(values, source)

    def fit(self, pairs: PairSet, config: MethodConfig, *, run_dir: Path | None, resume: bool,
            progress: bool) -> tuple[Edit, int]:
        backbone = load_backbone(config)
        if backbone.family in PIXELS_ONLY_FAMILIES:
            raise AnalogizeError(f"{config.base_model}: pairedit learns on FLUX.1, SD 1.x / 2.x and SDXL base, and "
                                 f"{PIXELS_ONLY_FAMILIES[backbone.family]}; give one of those as --base-model "
                                 "(this one works with analogize edit)")
        torch.manual_seed(config.seed)  # the LoRAs' initial weights
        task = PairEditTask(pairs, config, backbone)
        result = run_training(task, config.loop_settings(ema_module="denoiser", progress=progress),
                              run_dir=run_dir, resume=resume)
        denoiser = backbone.denoiser
        return PairEditEdit(config, lora_state(denoiser, CONTENT), lora_state(denoiser, SEMANTIC), backbone), result.steps
