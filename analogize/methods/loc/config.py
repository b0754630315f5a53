"""LocConfig: the hypernetwork, the base model it edits with, its training and its sampler."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ...backbones import BackboneConfig
from ...errors import AnalogizeError
from ..base import TrainableConfig

SAMPLING_FIELDS = ("seed", "sample_steps", "start_strength", "image_guidance", "device", "dtype", "cpu_offload")
"""Settings `learn` and `apply` may choose; the rest is fixed by the trained hypernetwork."""


@dataclass
class LocConfig(TrainableConfig, BackboneConfig):
    """Defaults describe the method at GPU scale; the presets below size it for tests and this CPU."""

    # --- the hypernetwork a `learn` uses ---------------------------------------------------------
    hypernetwork: str = ""
    """Folder written by `analogize train-loc` (hypernetwork weights, its settings, its base model)."""

    # --- the base model (BackboneConfig.base_model, .resolution, .dtype, .device) --------------------
    base_size: str = ""
    """With no base_model: train a random InstructPix2Pix pipeline of this size first
    (random_pipelines.IP2P_SIZES: "tiny" or "small") on the training edits, and build on it.
    Empty: base_model is required (the gpu presets)."""
    autoencoder_steps: int = 400
    """Steps training that pipeline's VAE to reconstruct photo crops."""
    denoiser_steps: int = 1500
    """Steps then training its UNet to denoise A′ given A (or A given A, half the time)."""
    base_learning_rate: float = 1e-3

    # --- the hypernetwork -----------------------------------------------------------------------
    targets: tuple[str, ...] = ("attn1.to_q", "attn1.to_v")
    """Linear layers of the denoiser that get a generated LoRA: each one whose path ends with one of these."""
    rank: int = 4
    alpha: float = 4.0
    """The LoRA update is scaled by alpha / rank."""
    image_size: int = 224
    """Side A and A′ are resized to for the hypernetwork's ViT."""
    patch_size: int = 16
    width: int = 768
    """Token width of the encoder and the decoder."""
    encoder_depth: int = 12
    decoder_depth: int = 6
    """The paper's M = 6 decoder blocks."""
    heads: int = 12
    antisymmetric: bool = True
    """Δ(A, A′) = ½·(G(A, A′) − G(A′, A)), a LoRA of rank 2·rank, so that Δ(A′, A) = −Δ(A, A′)
    exactly (hypernetwork.py says why; False = the paper's plain H)."""

    # --- training (`analogize train-loc`) -----------------------------------------------------------
    data: str = "procedural"
    """"procedural", a pairs folder, "magicbrush:DIR" or "seed:MANIFEST" (see data.py)."""
    hold_out: tuple[str, ...] = ("tone", "sketch", "sharpen")
    """Procedural edits kept out of training (the benchmark evaluates on them)."""
    crop_pool: int = 512
    """Procedural data: crops cut once from the training photos, which the quads are drawn from."""
    steps: int = 50_000
    batch_size: int = 16
    """Quads per step and process."""
    learning_rate: float = 1e-4
    exchange_probability: float = 0.5
    """Chance of training on the reversed instruction ⟨A′, A⟩ (with B and B′ swapped too). With the
    antisymmetric hypernetwork the reversed quad gives the same loss, so this matters only without it."""
    checkpoint_every: int = 1000

    # --- sampling -------------------------------------------------------------------------------------
    sample_steps: int = 20
    """DDIM steps when applying (of the whole grid; start_strength < 1 runs the last part of it)."""
    start_strength: float = 1.0
    """1 = sample from pure noise, as InstructPix2Pix does. Below 1, start from the photo's latent
    noised to that fraction of the grid (SDEdit's start): a weak base model then keeps the photo's
    layout and colours, which it cannot draw from noise (hence 0.7 in the cpu preset; the scores of
    both starts are in BENCHMARKS.md, "LoRA of Change, trained here")."""
    image_guidance: float = 1.0
    """InstructPix2Pix's image guidance (1 = off): ε(∅) + g·(ε(image) − ε(∅))."""

    resumable_changes: ClassVar[tuple[str, ...]] = TrainableConfig.resumable_changes + (
        "hypernetwork",) + SAMPLING_FIELDS

    def __post_init__(self) -> None:
        self.targets, self.hold_out = tuple(self.targets), tuple(self.hold_out)  # JSON gives lists
        if min(self.rank, self.batch_size, self.sample_steps, self.decoder_depth) < 1:
            raise AnalogizeError("loc: rank, batch_size, sample_steps and decoder_depth must be at least 1")
        if not 0.0 < self.start_strength <= 1.0 or round(self.start_strength * self.sample_steps) < 1:
            raise AnalogizeError(f"loc: start_strength {self.start_strength} must lie in (0, 1] and leave at least "
                                 f"one of the {self.sample_steps} sample_steps")
        if self.image_size % self.patch_size or self.width % self.heads:
            raise AnalogizeError(f"loc: image_size {self.image_size} must be a multiple of patch_size "
                                 f"{self.patch_size} and width {self.width} of heads {self.heads}")

    def training_fingerprint(self, data_description: str) -> dict[str, Any]:
        return {**self.fingerprint_settings(), "data": data_description}


PRESETS: dict[str, dict[str, Any]] = {
    # Tests: a tiny base model and hypernetwork, a handful of steps (seconds on a CPU).
    "tiny": dict(resolution=32, base_size="tiny", crop_pool=8, autoencoder_steps=2, denoiser_steps=2, steps=2,
                 batch_size=2,
                 targets=("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0"), rank=2, alpha=2.0,
                 image_size=32, patch_size=8, width=32, encoder_depth=1, heads=2, sample_steps=4,
                 learning_rate=1e-3, checkpoint_every=0),
    # Everything trained here, on this CPU, in minutes: a small base model, then the hypernetwork.
    "cpu": dict(resolution=32, base_size="small", autoencoder_steps=2000, denoiser_steps=2500, steps=2000,
                batch_size=8, rank=4, alpha=4.0, image_size=32, patch_size=4, width=128, encoder_depth=4,
                heads=4, learning_rate=3e-4, sample_steps=20, start_strength=0.7, checkpoint_every=500),
    # A real InstructPix2Pix (timbrooks/instruct-pix2pix, downloaded: --base-model DIR) on one GPU.
    "gpu": dict(resolution=256, dtype="bf16", batch_size=16, image_guidance=1.5, mixed_precision="bf16"),
    "gpu-512": dict(resolution=512, dtype="bf16", batch_size=8, gradient_accumulation_steps=2, image_guidance=1.5,
                    mixed_precision="bf16"),
}
