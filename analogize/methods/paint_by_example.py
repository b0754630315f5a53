"""paint-by-example: Paint by Example (Yang et al., CVPR 2023) — exemplar-guided inpainting.

The user gives a photo, a mask (white = repaint) and an exemplar image; the masked region is
repainted with something like the exemplar, fitted into the scene. The model is Stable
Diffusion v1's UNet with 9 input channels,

    [ z_t (4) | VAE latent of the photo with the masked region blanked (4) | keep mask (1) ]

where the keep mask is 1 on the pixels to keep (the official code's and checkpoint's convention:
the user's mask inverted), and one cross-attention token as its only condition: the exemplar's CLIP
class token through a trainable mapper (the information bottleneck: a single token cannot carry
the exemplar's pixels, so the model cannot copy-paste them). A learned null token stands in for
"no exemplar"; sampling uses classifier-free guidance ε = ε(null) + s·(ε(exemplar) − ε(null)).

Why our own small pipeline and not diffusers' PaintByExamplePipeline: diffusers has moved that
pipeline (and its image encoder) to `deprecated` — frozen, to be removed. We build on the parts
that stay (UNet2DConditionModel, AutoencoderKL, the schedulers, transformers' CLIP vision model,
diffusers' transformer block for the mapper), sample with the project's shared sampler
(samplers.py) and keep the official checkpoint's folder layout and weight names, so the official
weights load here and the models trained here load into diffusers.

Photos of any size: the model works on a square-ish context crop around the mask at `resolution`
(the official 512 px); the generated crop is pasted back through the mask, so every pixel outside
the mask is the photo's own, exactly.

Training (`analogize train-pbe`, the paper's self-supervised recipe) is in the second half.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from diffusers.models.attention import BasicTransformerBlock
from torch import nn
from transformers import CLIPPreTrainedModel, CLIPVisionConfig, CLIPVisionModel

from ..backbones import DTYPES, Backbone, Level, quiet_loading
from ..devices import resolve_device
from ..errors import AnalogizeError
from ..images import load_image, resize
from ..pretrained import NO_REMOTE_CODE, SAFE_LOADING, check_loadable, library_message, model_folder
from ..samplers import StepProgress, classifier_free, deterministic_sample, step_progress
from ..training import run_training
from .base import TrainableConfig, resolve_config

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
"""CLIP's pixel statistics: the exemplar is normalised with them (as the official code does)."""
LATENT_CHANNELS_AND_EXTRAS = 9
"""z_t (4) + masked-photo latent (4) + keep mask (1)."""


# --- the exemplar encoder: CLIP class token -> mapper -> one token ------------------------------


class Mapper(nn.Module):
    """Transformer blocks over the single class token, width of the CLIP model."""

    def __init__(self, width: int, layers: int):
        super().__init__()
        self.blocks = nn.ModuleList([
            BasicTransformerBlock(width, 1, width, activation_fn="gelu", attention_bias=True) for _ in range(layers)
        ])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (N, 1, W) -> (N, 1, W)
        for block in self.blocks:
            tokens = block(tokens)
        return tokens


class ExemplarEncoder(CLIPPreTrainedModel):
    """(N, 3, S, S) CLIP-normalised exemplars -> (N, 1, D) cross-attention tokens.

    Attribute names are the official checkpoint's (`image_encoder/` of its diffusers layout), so
    its weights load as they are. The mapper depth follows that checkpoint's rule, (CLIP layers + 1)
    // 5: 5 blocks on CLIP ViT-L/14's 24 layers."""

    config_class = CLIPVisionConfig
    main_input_name = "pixel_values"

    def __init__(self, config: CLIPVisionConfig):
        super().__init__(config)
        width = config.hidden_size
        self.model = CLIPVisionModel(config)  # frozen: the paper trains only what follows
        self.mapper = Mapper(width, (config.num_hidden_layers + 1) // 5)
        self.final_layer_norm = nn.LayerNorm(width)
        self.proj_out = nn.Linear(width, config.projection_dim)
        self.uncond_vector = nn.Parameter(torch.randn(1, 1, config.projection_dim))  # the learned null token
        self.post_init()

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        class_token = self.model(pixel_values=pixel_values).pooler_output[:, None]  # (N, 1, W)
        return self.proj_out(self.final_layer_norm(self.mapper(class_token)))  # (N, 1, D)

    def trainable(self) -> list[nn.Parameter]:
        """Everything but CLIP: mapper, final norm, projection and the null token."""
        return [parameter for name, parameter in self.named_parameters() if not name.startswith("model.")]


# --- the model on disk: the official checkpoint's diffusers layout -------------------------------


@dataclass
class PaintByExampleModel:
    """The checkpoint's parts. `Backbone` drives vae, unet and scheduler (it duck-types a diffusers
    pipeline); the encoder and the exemplar statistics are Paint by Example's own."""

    vae: AutoencoderKL
    unet: UNet2DConditionModel
    scheduler: Any
    """Any of SD's schedulers: only its noise schedule (alphas_cumprod, timesteps) is used."""
    image_encoder: ExemplarEncoder
    image_mean: tuple[float, float, float] = CLIP_MEAN
    image_std: tuple[float, float, float] = CLIP_STD

    @property
    def exemplar_size(self) -> int:
        return self.image_encoder.config.image_size

    @property
    def resolution(self) -> int:
        """The side of the images the UNet was trained on (512 for the official model)."""
        return self.unet.config.sample_size * 2 ** (len(self.vae.config.block_out_channels) - 1)

    @classmethod
    def from_pretrained(cls, folder: str | Path, dtype: str = "fp32") -> "PaintByExampleModel":
        """Load a Paint-by-Example folder (Fantasy-Studio/Paint-by-Example, downloaded) from local files,
        once `check_loadable` passes it (safetensors only, no custom code)."""
        folder = model_folder(folder, "--base-model")
        check_loadable(folder, "--base-model")
        if not (folder / "image_encoder").is_dir():
            raise AnalogizeError(f"{folder}: no image_encoder/ folder, so not a Paint-by-Example checkpoint; give the "
                                 "downloaded Fantasy-Studio/Paint-by-Example folder, or train one with `analogize train-pbe`")
        torch_dtype = DTYPES[dtype]
        quiet_loading()
        try:
            model = cls(
                vae=AutoencoderKL.from_pretrained(folder, subfolder="vae", torch_dtype=torch_dtype, **SAFE_LOADING),
                unet=UNet2DConditionModel.from_pretrained(folder, subfolder="unet", torch_dtype=torch_dtype,
                                                          **SAFE_LOADING),
                # Any of SD's schedulers' configs gives the noise schedule; our sampler walks it DDIM-style.
                scheduler=DDIMScheduler.from_pretrained(folder, subfolder="scheduler", local_files_only=True),
                image_encoder=ExemplarEncoder.from_pretrained(folder / "image_encoder", dtype=torch_dtype,
                                                              **NO_REMOTE_CODE),
                **exemplar_statistics(folder / "feature_extractor"),
            )
        except Exception as error:  # noqa: BLE001 - a missing part, bad JSON, a truncated file: all a broken folder
            raise AnalogizeError(f"{folder}: a part of the Paint-by-Example checkpoint is missing or broken "
                                 f"({library_message(error)}); download the whole folder again") from None
        if model.unet.config.in_channels != LATENT_CHANNELS_AND_EXTRAS:
            raise AnalogizeError(f"{folder}: its UNet takes {model.unet.config.in_channels} input channels, Paint by "
                                 f"Example's takes {LATENT_CHANNELS_AND_EXTRAS}; give a Paint-by-Example checkpoint")
        for part in (model.vae, model.unet, model.image_encoder):
            part.requires_grad_(False)
        return model

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write the official checkpoint's layout, model_index.json included, so whatever reads that
        checkpoint reads this folder (diffusers 0.42 no longer resolves its image encoder by that
        name; `from_pretrained` here does)."""
        folder = Path(folder)
        self.vae.save_pretrained(folder / "vae")
        self.unet.save_pretrained(folder / "unet")
        self.scheduler.save_pretrained(folder / "scheduler")
        self.image_encoder.save_pretrained(folder / "image_encoder")
        size = self.exemplar_size
        (folder / "feature_extractor").mkdir(parents=True, exist_ok=True)
        (folder / "feature_extractor" / "preprocessor_config.json").write_text(json.dumps({
            "image_processor_type": "CLIPImageProcessor", "do_resize": True, "size": {"shortest_edge": size},
            "do_center_crop": True, "crop_size": {"height": size, "width": size}, "do_normalize": True,
            "image_mean": list(self.image_mean), "image_std": list(self.image_std), "do_convert_rgb": True,
        }, indent=2))
        (folder / "model_index.json").write_text(json.dumps({
            "_class_name": "PaintByExamplePipeline", "_diffusers_version": "0.42.1",
            "vae": ["diffusers", "AutoencoderKL"], "unet": ["diffusers", "UNet2DConditionModel"],
            "scheduler": ["diffusers", type(self.scheduler).__name__],
            "image_encoder": ["paint_by_example", "PaintByExampleImageEncoder"],
            "feature_extractor": ["transformers", "CLIPImageProcessor"],
            "safety_checker": [None, None], "requires_safety_checker": False,
        }, indent=2))
        return folder

    def to(self, device: torch.device) -> "PaintByExampleModel":
        for part in (self.vae, self.unet, self.image_encoder):
            part.to(device)
        return self

    def backbone(self, device: torch.device, resolution: int | None = None) -> Backbone:
        """`Backbone`'s encode/decode/levels/predict over these parts, working at `resolution`
        (default: the model's own)."""
        return Backbone(self, "sd", self.scheduler.config.prediction_type, device, self.unet.dtype,
                        resolution or self.resolution)


def exemplar_statistics(folder: Path) -> dict[str, tuple[float, ...]]:
    """The mean and std the checkpoint's feature extractor normalises with (CLIP's if it has none)."""
    config = folder / "preprocessor_config.json"
    if not config.is_file():
        return {}
    values = json.loads(config.read_text())
    return {"image_mean": tuple(values.get("image_mean", CLIP_MEAN)), "image_std": tuple(values.get("image_std", CLIP_STD))}


# --- inference ----------------------------------------------------------------------------------


def exemplar_pixels(model: PaintByExampleModel, exemplar: np.ndarray, exemplar_mask: np.ndarray | None = None) -> torch.Tensor:
    """(H, W, 3) in [0, 1] -> (1, 3, S, S) normalised for CLIP. The whole exemplar is resized to the
    encoder's square input, as in the paper's training (no centre crop that could cut the object
    off). With `exemplar_mask` (white = the object) it is first cut to the object's box and the
    background made white, so the class token describes the object only."""
    if exemplar_mask is not None:
        grey = exemplar_mask.mean(axis=2) if exemplar_mask.ndim == 3 else exemplar_mask
        grey = resize(grey[..., None].astype(np.float32), (exemplar.shape[1], exemplar.shape[0]))[..., 0]
        rows, columns = np.nonzero(grey >= 0.5)
        if not len(rows):
            raise AnalogizeError("the exemplar mask is black everywhere; paint the object white")
        exemplar = np.where(grey[..., None] >= 0.5, exemplar, 1.0).astype(np.float32)
        exemplar = exemplar[rows.min():rows.max() + 1, columns.min():columns.max() + 1]
    size = model.exemplar_size
    pixels = torch.from_numpy(resize(exemplar, (size, size)).transpose(2, 0, 1).copy())
    mean, std = torch.tensor(model.image_mean)[:, None, None], torch.tensor(model.image_std)[:, None, None]
    return ((pixels - mean) / std)[None]


def context_box(repaint: np.ndarray, scale: float) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of a square of side `scale` × the mask's larger extent, centred on
    the mask and moved (then cut) to lie inside the image: what the model sees of the photo."""
    height, width = repaint.shape
    rows, columns = np.nonzero(repaint)
    side = max(rows.max() - rows.min() + 1, columns.max() - columns.min() + 1)
    side = min(max(height, width), max(8, math.ceil(side * scale)))
    centre_y, centre_x = (rows.min() + rows.max() + 1) / 2, (columns.min() + columns.max() + 1) / 2
    top = int(np.clip(round(centre_y - side / 2), 0, max(0, height - side)))
    left = int(np.clip(round(centre_x - side / 2), 0, max(0, width - side)))
    return top, left, min(height, top + side), min(width, left + side)


def inpainting_inputs(backbone: Backbone, photo: np.ndarray, repaint: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The UNet's extra channels for a photo (h, w, 3) at working size and its repaint mask (h, w):
    (latent of the photo with the masked region grey (1, 4, h/8, w/8), keep mask (1, 1, h/8, w/8))."""
    height, width = photo.shape[:2]
    keep = (~repaint)[..., None].astype(np.float32)
    masked = backbone.encode_image(photo * keep + 0.5 * (1.0 - keep), height, width)  # grey = 0 in [-1, 1]
    keep_latent = F.interpolate(torch.from_numpy(keep[..., 0])[None, None], size=masked.shape[-2:])  # nearest, as official
    return masked, keep_latent.to(backbone.device)


def repaint_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Any-size greyscale mask (white = repaint) -> boolean (H, W) at the photo's size."""
    grey = mask.mean(axis=2) if mask.ndim == 3 else mask
    return resize(grey[..., None].astype(np.float32), (size[1], size[0]))[..., 0] >= 0.5


@torch.no_grad()
def paint(model: PaintByExampleModel, backbone: Backbone, photo: np.ndarray, mask: np.ndarray,
          exemplar: np.ndarray, *, exemplar_mask: np.ndarray | None = None, steps: int = 50,
          guidance: float = 5.0, seed: int = 0, context: float = 2.0,
          progress: bool | StepProgress = False) -> np.ndarray:
    """Repaint the white part of `mask` in `photo` (H, W, 3 in [0, 1]) after `exemplar`; returns
    the photo with only that part changed. `context`: the side of the crop the model sees, in
    multiples of the mask's extent. `progress`: True draws a bar of the denoising steps on
    stderr, a function hears of each step as (done, total) (the web page's bar)."""
    if steps < 1 or context < 1.0:
        raise AnalogizeError(f"steps {steps} must be at least 1 and context {context} at least 1 (the crop must "
                             "hold the whole mask)")
    repaint = repaint_mask(mask, photo.shape[:2])
    if not repaint.any():
        raise AnalogizeError("the mask is black everywhere, so nothing would change; paint white where "
                             "the exemplar should go")
    top, left, bottom, right = context_box(repaint, context)
    crop, crop_repaint = photo[top:bottom, left:right], repaint[top:bottom, left:right]
    height, width = backbone.working_size(*crop.shape[:2])
    work_repaint = repaint_mask(crop_repaint.astype(np.float32), (height, width))
    masked, keep = inpainting_inputs(backbone, resize(crop, (width, height)), work_repaint)
    tokens = model.image_encoder(exemplar_pixels(model, exemplar, exemplar_mask).to(backbone.device, backbone.dtype))
    null = model.image_encoder.uncond_vector.expand_as(tokens)

    both = {"encoder_hidden_states": torch.cat([tokens, null])}  # (2, 1, D): one UNet pass for both branches

    def model_output(latent: torch.Tensor, index: int, level: Level) -> torch.Tensor:
        inputs = torch.cat([latent, masked, keep], dim=1)  # (1, 9, h, w)
        if guidance == 1.0:
            return backbone.predict(inputs, level, {"encoder_hidden_states": tokens})
        conditional, unconditional = backbone.predict(inputs.expand(2, -1, -1, -1), level, both).chunk(2)
        return classifier_free(conditional, unconditional, guidance)

    generator = torch.Generator().manual_seed(seed)
    start = torch.randn(masked.shape, generator=generator).to(backbone.device)  # pure noise, as the official sampler
    with step_progress(progress, "Paint by Example") as report:
        latent = deterministic_sample(backbone, start, backbone.levels(steps), model_output, progress=report)
    generated = backbone.decode_image(latent, bottom - top, right - left)
    result = photo.copy()
    result[top:bottom, left:right] = np.where(crop_repaint[..., None], generated, crop)
    return result


# --- training: the paper's self-supervised recipe ------------------------------------------------


@dataclass
class BoxedImages:
    """Training images with object boxes: a folder of images and `boxes.json` in it, mapping each
    file name to its boxes in pixels, `{"photo.jpg": [[x0, y0, x1, y1], ...], ...}`."""

    paths: list[Path]
    boxes: list[list[tuple[int, int, int, int]]]

    BOXES_FILE: ClassVar[str] = "boxes.json"

    @classmethod
    def from_folder(cls, folder: Path) -> "BoxedImages":
        listing = Path(folder) / cls.BOXES_FILE
        if not listing.is_file():
            raise AnalogizeError(f"{listing}: missing; write the object boxes as JSON, "
                                 '{"photo.jpg": [[x0, y0, x1, y1], ...]}, next to the images')
        try:
            entries = json.loads(listing.read_text())
        except json.JSONDecodeError as error:
            raise AnalogizeError(f"{listing}: not valid JSON ({error.msg}, line {error.lineno}); fix the file") from None
        if not isinstance(entries, dict) or not entries:
            raise AnalogizeError(f'{listing}: expected {{"photo.jpg": [[x0, y0, x1, y1], ...]}} with at least one image')
        paths, boxes = [], []
        for name, given in sorted(entries.items()):
            path = Path(folder) / name
            if not path.is_file():
                raise AnalogizeError(f"{listing}: names {name}, which is not in {folder}; remove the entry or add the image")
            if (not isinstance(given, list) or not given
                    or not all(isinstance(box, list) and len(box) == 4 and box[0] < box[2] and box[1] < box[3]
                               for box in given)):
                raise AnalogizeError(f"{listing}: {name}'s boxes must be a list of [x0, y0, x1, y1] with x0 < x1, y0 < y1")
            paths.append(path)
            boxes.append([tuple(int(value) for value in box) for box in given])
        return cls(paths, boxes)


def grown_box(box: tuple[int, int, int, int], size: tuple[int, int], rng: np.random.Generator,
              growth: float) -> tuple[int, int, int, int]:
    """The box pushed out on each side by a random share (up to `growth`) of the free space there."""
    height, width = size
    x0, y0, x1, y1 = box
    return (x0 - int(rng.integers(0, int(growth * x0) + 1)), y0 - int(rng.integers(0, int(growth * y0) + 1)),
            x1 + int(rng.integers(0, int(growth * (width - x1)) + 1)),
            y1 + int(rng.integers(0, int(growth * (height - y1)) + 1)))


def bezier_mask(box: tuple[int, int, int, int], grown: tuple[int, int, int, int], size: tuple[int, int],
                rng: np.random.Generator, points_per_side: int = 18, jitter: float = 0.05) -> np.ndarray:
    """An irregular mask (H, W) bool: each side of `box` bulges out towards `grown` along a
    quadratic Bézier curve (ends at the box's corners, control at the middle of grown's side),
    sampled at `points_per_side` points each nudged by up to `jitter` × the box's side; the closed
    outline is filled. The outline winds once around the box's centre, so the mask is one piece."""
    x0, y0, x1, y1 = box
    gx0, gy0, gx1, gy1 = grown
    middle_x, middle_y = (x0 + x1) / 2, (y0 + y1) / 2
    sides = [((x0, y0), (middle_x, gy0), (x1, y0)), ((x1, y0), (gx1, middle_y), (x1, y1)),
             ((x1, y1), (middle_x, gy1), (x0, y1)), ((x0, y1), (gx0, middle_y), (x0, y0))]
    t = np.linspace(0.0, 1.0, points_per_side, endpoint=False)[:, None]
    outline = np.concatenate([(1 - t) ** 2 * np.array(start) + 2 * (1 - t) * t * np.array(control) + t ** 2 * np.array(end)
                              for start, control, end in sides])
    reach = jitter * max(x1 - x0, y1 - y0)
    outline += rng.uniform(-reach, reach, size=outline.shape)
    height, width = size
    outline = np.clip(outline, 0, [width - 1, height - 1])
    mask = np.zeros(size, dtype=np.uint8)
    cv2.fillPoly(mask, [np.round(outline).astype(np.int32)], 1)
    return mask.astype(bool)


def augment_exemplar(crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The paper's exemplar augmentations (its code's probabilities): flip (0.5), rotation within
    ±20° (0.5), blur (0.3), elastic distortion (0.3). (h, w, 3) float32 -> same shape."""
    height, width = crop.shape[:2]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if rng.random() < 0.5:
        turn = cv2.getRotationMatrix2D((width / 2, height / 2), float(rng.uniform(-20, 20)), 1.0)
        crop = cv2.warpAffine(np.ascontiguousarray(crop), turn, (width, height), borderMode=cv2.BORDER_REFLECT101)
    if rng.random() < 0.3:
        side = int(rng.choice([3, 5, 7]))
        crop = cv2.blur(np.ascontiguousarray(crop), (side, side))
    if rng.random() < 0.3:
        smooth = max(1.0, 0.05 * max(height, width))
        shift = [cv2.GaussianBlur(rng.uniform(-1, 1, (height, width)).astype(np.float32), (0, 0), smooth)
                 * 2.0 * smooth for _ in range(2)]
        grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
        crop = cv2.remap(np.ascontiguousarray(crop), grid_x + shift[0], grid_y + shift[1], cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT101)
    return np.ascontiguousarray(crop, dtype=np.float32)


def square_crop_around(box: tuple[int, int, int, int], size: tuple[int, int], rng: np.random.Generator) -> tuple[int, int, int]:
    """(top, left, side) of a random square holding `box` (or as much of it as fits): the paper
    trains on square crops, so the photo's aspect ratio is kept."""
    height, width = size
    side = min(height, width)
    x0, y0, x1, y1 = box
    lowest_top, highest_top = max(0, y1 - side), min(y0, height - side)
    lowest_left, highest_left = max(0, x1 - side), min(x0, width - side)
    top = int(rng.integers(lowest_top, highest_top + 1)) if highest_top >= lowest_top else (height - side) // 2
    left = int(rng.integers(lowest_left, highest_left + 1)) if highest_left >= lowest_left else (width - side) // 2
    return top, left, side


PRESETS: dict[str, dict[str, Any]] = {
    # Tests: tiny random components (tiny_backbones.py), 32 px, seconds.
    "tiny": dict(resolution=32, steps=4, learning_rate=1e-3, checkpoint_every=0),
    # One GPU: SD 1.x at 512 px, bf16 autocast, UNet activations recomputed to fit 24 GB.
    "gpu": dict(resolution=512, batch_size=4, gradient_accumulation_steps=4, mixed_precision="bf16",
                gradient_checkpointing=True, checkpoint_every=1000),
}


@dataclass
class PaintByExampleTrainingConfig(TrainableConfig):
    """Defaults are the paper's (lr 1e-5, 20% null condition, half the masks irregular)."""

    base_model: str = ""
    """Where the weights start: a Paint-by-Example folder (training continues), or a plain Stable
    Diffusion 1.x text-to-image folder, whose UNet gets 5 new input channels set to zero."""
    clip_model: str = ""
    """A CLIP vision model folder (openai/clip-vit-large-patch14) when base_model is plain SD."""
    steps: int = 40000
    checkpoint_every: int = 1000
    resolution: int = 512
    """Side of the square training crops."""
    batch_size: int = 1
    learning_rate: float = 1e-5
    """AdamW learning rate of the UNet and the mapper, constant (the paper's)."""
    null_probability: float = 0.2
    """Share of samples whose condition is the learned null token (for classifier-free guidance)."""
    bezier_probability: float = 0.5
    """Share of masks that are irregular Bézier shapes instead of the grown box."""
    box_growth: float = 0.4
    """The mask's box grows on each side by up to this share of the free space there."""
    exemplar_padding: int = 10
    """Pixels of context around the box in the exemplar crop."""
    gradient_checkpointing: bool = False
    """Recompute the UNet's activations in the backward pass: less memory, slower."""
    dtype: str = "fp32"
    device: str = "auto"

    resumable_changes: ClassVar[tuple[str, ...]] = TrainableConfig.resumable_changes + ("device",)


def training_config(preset: str | None = None, **overrides: Any) -> PaintByExampleTrainingConfig:
    """Defaults, then the preset, then the overrides that are not None (CLI flags)."""
    return resolve_config(PaintByExampleTrainingConfig, PRESETS, preset, overrides, source="train-pbe")


def starting_model(config: PaintByExampleTrainingConfig) -> PaintByExampleModel:
    """A Paint-by-Example checkpoint as it is, or one assembled from plain SD 1.x and a CLIP vision
    model: the UNet's first convolution widened to 9 inputs (the 5 new ones zero, so it starts out
    as the text-to-image model), a fresh mapper, projection and null token."""
    if not config.base_model:
        raise AnalogizeError("give --base-model: a Paint-by-Example folder, or a Stable Diffusion 1.x folder "
                             "together with --clip-model")
    folder = model_folder(config.base_model, "--base-model")
    if (folder / "image_encoder").is_dir():
        return PaintByExampleModel.from_pretrained(folder, config.dtype)
    if not (folder / "unet").is_dir() or not (folder / "vae").is_dir():
        raise AnalogizeError(f"{folder}: neither a Paint-by-Example nor a Stable Diffusion folder (no unet/ and vae/)")
    if not config.clip_model:
        raise AnalogizeError(f"{folder} is plain Stable Diffusion: give --clip-model, the CLIP vision model "
                             "the exemplars go through (openai/clip-vit-large-patch14)")
    clip_folder = model_folder(config.clip_model, "--clip-model")
    check_loadable(folder, "--base-model")  # both, before anything is read
    check_loadable(clip_folder, "--clip-model")
    torch_dtype = DTYPES[config.dtype]
    quiet_loading()
    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", torch_dtype=torch_dtype, **SAFE_LOADING)
    if unet.config.in_channels != 4:
        raise AnalogizeError(f"{folder}: its UNet already takes {unet.config.in_channels} channels; start from a "
                             "text-to-image SD 1.x model (4 channels)")
    widened = nn.Conv2d(LATENT_CHANNELS_AND_EXTRAS, unet.conv_in.out_channels, unet.conv_in.kernel_size,
                        padding=unet.conv_in.padding, dtype=torch_dtype)
    with torch.no_grad():
        widened.weight.zero_()
        widened.weight[:, :4] = unet.conv_in.weight
        widened.bias.copy_(unet.conv_in.bias)
    unet.conv_in = widened
    unet.register_to_config(in_channels=LATENT_CHANNELS_AND_EXTRAS)
    vision = CLIPVisionModel.from_pretrained(clip_folder, dtype=torch_dtype, **NO_REMOTE_CODE)
    encoder = ExemplarEncoder(vision.config).to(torch_dtype)
    encoder.model.load_state_dict(vision.state_dict())
    if encoder.proj_out.out_features != unet.config.cross_attention_dim:
        raise AnalogizeError(f"{clip_folder}: projects to {encoder.proj_out.out_features} but the UNet attends to "
                             f"{unet.config.cross_attention_dim}; pair SD 1.x (768) with CLIP ViT-L/14")
    return PaintByExampleModel(
        vae=AutoencoderKL.from_pretrained(folder, subfolder="vae", torch_dtype=torch_dtype, **SAFE_LOADING),
        unet=unet, scheduler=DDIMScheduler.from_pretrained(folder, subfolder="scheduler", local_files_only=True),
        image_encoder=encoder,
        **exemplar_statistics(clip_folder),
    )


class PaintByExampleTask:
    """UNet and the encoder's trainable part under one AdamW; VAE and CLIP frozen."""

    def __init__(self, images: BoxedImages, config: PaintByExampleTrainingConfig, model: PaintByExampleModel,
                 device: torch.device):
        self.config, self.images, self.model = config, images, model
        self.backbone = model.backbone(device, config.resolution)
        model.unet.requires_grad_(True)
        for parameter in model.image_encoder.trainable():
            parameter.requires_grad_(True)
        if config.gradient_checkpointing:
            model.unet.enable_gradient_checkpointing()
        self.modules: dict[str, nn.Module] = {"unet": model.unet, "image_encoder": model.image_encoder}
        parameters = list(model.unet.parameters()) + model.image_encoder.trainable()
        self.optimizers = {"model": torch.optim.AdamW(parameters, lr=config.learning_rate)}
        self.fingerprint = {**config.fingerprint_settings(), "images": [path.name for path in images.paths],
                            "boxes": images.boxes}

    def batch(self, rng: np.random.Generator) -> dict[str, Any]:
        samples = [self.sample(rng) for _ in range(self.config.batch_size)]
        stacked: dict[str, Any] = {name: torch.stack([sample[name] for sample in samples]) for name in samples[0]}
        # One noise level per batch: `Backbone.predict` takes one level (batches differ step to step).
        stacked["timestep"] = int(rng.integers(self.model.scheduler.config.num_train_timesteps))
        return stacked

    def sample(self, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """One self-supervised example: a photo, an object box in it, the object's augmented crop as
        the exemplar and a mask over (more than) the object; the model must restore the photo."""
        config, model = self.config, self.model
        index = int(rng.integers(len(self.images.paths)))
        photo = load_image(self.images.paths[index])
        height, width = photo.shape[:2]
        x0, y0, x1, y1 = (int(value) for value in self.images.boxes[index][int(rng.integers(len(self.images.boxes[index])))])
        box = (max(0, x0), max(0, y0), min(width, x1), min(height, y1))
        pad = config.exemplar_padding
        crop = photo[max(0, box[1] - pad):min(height, box[3] + pad), max(0, box[0] - pad):min(width, box[2] + pad)]
        exemplar = exemplar_pixels(model, augment_exemplar(crop, rng))[0]
        grown = grown_box(box, (height, width), rng, config.box_growth)
        if rng.random() < config.bezier_probability:
            repaint = bezier_mask(box, grown, (height, width), rng)
        else:
            repaint = np.zeros((height, width), dtype=bool)
            repaint[grown[1]:grown[3], grown[0]:grown[2]] = True
        top, left, side = square_crop_around(grown, (height, width), rng)
        size = (config.resolution, config.resolution)
        square = resize(photo[top:top + side, left:left + side], size)
        square_repaint = repaint_mask(repaint[top:top + side, left:left + side].astype(np.float32), size)
        keep = (~square_repaint)[None].astype(np.float32)
        return {
            "photo": torch.from_numpy(square.transpose(2, 0, 1).copy()),  # (3, S, S) in [0, 1]
            "keep": torch.from_numpy(keep),  # (1, S, S)
            "exemplar": exemplar,  # (3, E, E) CLIP-normalised
            "null": torch.tensor(rng.random() < config.null_probability),
            "noise": torch.from_numpy(rng.standard_normal((model.vae.config.latent_channels, self.backbone.latent_side,
                                                            self.backbone.latent_side)).astype(np.float32)),
        }

    def training_step(self, batch: dict[str, torch.Tensor], accelerator: Accelerator) -> dict[str, float]:
        backbone = self.backbone
        photo, keep = batch["photo"] * 2.0 - 1.0, batch["keep"]
        clean = backbone.encode(photo)
        masked = backbone.encode(photo * keep)  # the masked region becomes 0 (grey) in [-1, 1]
        keep_latent = F.interpolate(keep, size=clean.shape[-2:])
        encoder = self.modules["image_encoder"]
        tokens = encoder(batch["exemplar"].to(backbone.dtype))  # (N, 1, D)
        null = self.model.image_encoder.uncond_vector.expand_as(tokens)
        tokens = torch.where(batch["null"][:, None, None], null, tokens)
        loss = backbone.denoising_loss(clean, batch["noise"], backbone.level_at(batch["timestep"]),
                                       {"encoder_hidden_states": tokens}, self.modules["unet"],
                                       extra_channels=torch.cat([masked, keep_latent], dim=1))
        accelerator.backward(loss)
        for optimizer in self.optimizers.values():
            optimizer.step()
        return {"loss": loss.item()}


def train_paint_by_example(images: BoxedImages, config: PaintByExampleTrainingConfig, output: Path, *,
                           resume: bool = False, progress: bool = True) -> PaintByExampleModel:
    """Train from `config.base_model` on the boxed images; checkpoints in OUTPUT.run/, the finished
    model in OUTPUT (the official layout). Returns the trained model."""
    model = starting_model(config)
    device = resolve_device(config.device)
    model.to(device)
    torch.manual_seed(config.seed)  # a fresh mapper's initial weights
    task = PaintByExampleTask(images, config, model, device)
    result = run_training(task, config.loop_settings(ema_module="unet", progress=progress),
                          run_dir=output.with_name(output.name + ".run"), resume=resume)
    model.unet = result.ema.get("unet", task.modules["unet"])
    model.image_encoder = task.modules["image_encoder"]
    model.unet.requires_grad_(False)
    model.image_encoder.requires_grad_(False)
    return model
