"""Settings of the few-shot method: one dataclass with documented defaults, and named presets.

The defaults describe the full model at 256 px; presets adapt it to the hardware. Every switch of
the paper's ablation (Table 2) is a field, so each row of that table is one override away:

    method.make_config("cpu", n_to_n=False)          # "without n-n"
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ...errors import AnalogizeError
from ..base import TrainableConfig

PRESETS: dict[str, dict[str, Any]] = {
    # Seconds on a CPU, for tests: 32 px crops, 16 tokens, a two-block transformer.
    "tiny": dict(
        crop_size=32, latent_downsampling=4, latent_channels=4, vae_width=8, flow_width=8, flow_downsampling=2,
        patch_size=2, transformer_width=32, transformer_depth=2, heads=2, steps=60, batch_size=2,
        learning_rate=2e-3, ema_decay=None, checkpoint_every=0, reference_count=2, ensemble_size=2, tile_overlap=8,
        frame_position=True,
    ),
    # This 2-core machine: 128 px crops (the benchmark's image size, so spatial edits see the whole
    # frame), 64 tokens. The VAE's image path carries the quality (M_y's latent barely reaches
    # the result at this scale), so it gets the width, a second convolution per decoder level and
    # a residual output around the pairs' global colour transform; the VAE's own reconstruction, a
    # second decoder pass over the same skips, is dropped for more steps in the same time. bf16
    # autocast about halves a step on CPUs with AVX512-BF16 or AMX; on other CPUs set
    # mixed_precision="no" (the training loop warns). Measurements: docs/methods/fewshot.md.
    "cpu": dict(
        crop_size=128, latent_downsampling=8, latent_channels=8, vae_width=32, flow_width=16, flow_downsampling=4,
        patch_size=2, transformer_width=192, transformer_depth=4, heads=4, steps=1200, batch_size=4,
        learning_rate=5e-4, ema_decay=0.99, checkpoint_every=300, mixed_precision="bf16", frame_position=True,
        affine_output=True, per_pixel_matrix=False, per_pixel_gain=True, decoder_convolutions=2, vae_weight=0.0,
    ),
    # One GPU, the paper's 256 px setting.
    "gpu-256": dict(
        crop_size=256, latent_downsampling=8, latent_channels=8, vae_width=64, flow_width=64, flow_downsampling=2,
        patch_size=2, transformer_width=384, transformer_depth=12, heads=6, steps=50_000, batch_size=16,
        learning_rate=2e-4, ema_decay=0.9995, checkpoint_every=2000, mixed_precision="bf16", frame_position=True,
    ),
    # One GPU, the paper's 512 px setting: one more latent halving keeps 256 tokens.
    "gpu-512": dict(
        crop_size=512, latent_downsampling=16, latent_channels=16, vae_width=64, flow_width=64, flow_downsampling=4,
        patch_size=2, transformer_width=512, transformer_depth=12, heads=8, steps=80_000, batch_size=8,
        learning_rate=1e-4, ema_decay=0.9995, checkpoint_every=2000, mixed_precision="bf16", frame_position=True,
    ),
}

@dataclass
class FewShotConfig(TrainableConfig):
    """The model, its training and its sampler. Defaults: the full method at 256 px."""

    # --- data ------------------------------------------------------------------------------------
    crop_size: int = 256
    """Side of the square training crops, and of the tiles an image is edited in. A multiple of
    latent_downsampling × patch_size."""
    flip: bool = True
    """Random horizontal flips of (x_j, y_j), both sides alike (the paper's augmentation)."""
    affine: bool = False
    """Random small rotations, scalings and shifts of (x_j, y_j), both sides alike. The paper uses
    it, but it is only faithful to edits that commute with it: a vignette is tied to the frame,
    and a filter of fixed pixel size changes under scaling (measured on `vignette`:
    docs/methods/fewshot.md). Turn it on only for edits free of both (e.g. a pure colour mapping)."""
    frame_position: bool = False
    """Give the VAE encoder each pixel's (x, y) in its whole frame as two more channels, so an
    effect tied to the frame (a vignette, a tone that fades from the centre) is learned from
    crops of larger pairs and drawn once over a photo of any size instead of once per tile. Ours,
    not the paper's; every preset turns it on (the default stays the paper's model)."""
    color_jitter: bool = False
    """Random brightness/contrast/saturation of (x_j, y_j), both sides alike. The paper uses it, but
    jittering both sides of a colour edit teaches a different colour mapping than the pairs show,
    so it is off unless the edit does not depend on absolute colour (e.g. a geometric edit)."""

    # --- model -----------------------------------------------------------------------------------
    latent_downsampling: int = 8
    """How much the VAE shrinks each side (a power of two): 256 px -> 32×32 latents."""
    latent_channels: int = 8
    """Channels of the VAE latent."""
    vae_width: int = 64
    """VAE channels at full resolution; each halving of the size doubles them, up to 4×."""
    decoder_convolutions: int = 1
    """3×3 convolutions at each decoder level after the skip is merged: where a local filter's
    detail is made, at full resolution."""
    affine_output: bool = False
    """The decoder's last layer predicts, instead of the image itself, a per-pixel correction (a
    bias, and a 3×3 colour matrix with `per_pixel_matrix` or a gain with `per_pixel_gain`) to one
    global colour transform of the query x_j (`affine_start`). Ours, not the paper's (measured in
    docs/methods/fewshot.md)."""
    per_pixel_matrix: bool = True
    """With `affine_output`, predict the 3×3 colour matrix per pixel as well as the bias; off, the
    matrix is the global one of `affine_start` and only the bias varies (a residual output)."""
    per_pixel_gain: bool = False
    """With `affine_output` and a global matrix, also predict a gain g per pixel:
    ŷ = (1 + g)·(A₀x + b₀) + r. One channel that draws what varies multiplicatively over the
    frame (a vignette's darkening, a flat region's lost texture at g = −1) without a per-pixel
    matrix."""
    affine_start: str = "fitted"
    """Where the affine output starts: "fitted", the least-squares global colour transform of the
    pairs (a relief starts from flat grey, a detail filter from the photo), or "identity", the
    query unchanged."""
    flow_width: int = 64
    """Channels of M_x, the network that predicts [F, C] from (x_i, x_j)."""
    flow_downsampling: int = 2
    """M_x works at 1/flow_downsampling of the crop size; [F, C] is upsampled bilinearly to full
    size. Must divide latent_downsampling × patch_size."""
    patch_size: int = 2
    """Side of the latent patches that become M_y's tokens: (crop / latent_downsampling / patch)² tokens."""
    transformer_width: int = 384
    """Token width of M_y (and of the condition tokens from M_e)."""
    transformer_depth: int = 12
    """Number of M_y blocks (self-attention, cross-attention to M_e's tokens, MLP)."""
    heads: int = 6
    """Attention heads in M_y; transformer_width must be a multiple."""

    # --- training --------------------------------------------------------------------------------
    steps: int = 50_000
    """Optimisation steps."""
    batch_size: int = 16
    """Pairs of pairs per step and process."""
    learning_rate: float = 2e-4
    """AdamW learning rate for all modules, trained jointly."""
    pixel_weight: float = 1.0
    """Weight of the L1 loss between the decoded prediction ŷ_j and y_j."""
    latent_weight: float = 1.0
    """Weight of the MSE between M_y's latent prediction and the latent of y_j (target not
    differentiated, so the encoder cannot shrink the latents to make it small)."""
    frequency_weight: float = 1.0
    """Weight of the focal frequency loss between ŷ_j and y_j."""
    frequency_alpha: float = 1.0
    """α of the focal frequency loss: each frequency is weighted by |difference|^α."""
    flow_weight: float = 1.0
    """Weight of M_x's loss, MSE(T_c(T_s(x_i)), x_j)."""
    vae_weight: float = 1.0
    """Weight of the VAE's reconstruction of y_j from its own (sampled) latent (L1)."""
    kl_weight: float = 0.0
    """Weight of the VAE's KL term (per-element mean). Off by default: any pull of the posterior
    toward N(0, 1) keeps the sampled latent noisy, so the decoder learns to lean on the skips and
    ignore the latent that carries the edit (measured in docs/methods/fewshot.md). Without it the encoder still predicts a
    variance and the reconstruction still decodes a sample, so the latent learns its own noise
    level. Its scale is fixed instead by the encoder, which scales each image's latent mean to unit
    root-mean-square (without that, the latent grew until M_y's latent loss diverged)."""
    ema_decay: float | None = 0.9995
    """Decay of the exponential moving average of all weights; the average is what is applied."""
    checkpoint_every: int = 2000
    """Steps between checkpoints when a run folder is given; 0 = only at the end."""

    # --- ablations: the paper's Table 2; all on is the method ---------------------------------------
    n_to_n: bool = True
    """Train on pairs of pairs (i, j) drawn with replacement. Off: one-source-to-one-target, j = i
    (the same crop on both sides)."""
    use_query: bool = True
    """Give M_y the latent of x_j, concatenated to y_i(t). Off: zeros in its place."""
    use_flow_color: bool = True
    """Condition M_y on M_e([F, C]) through cross-attention. Off: on M_e of a constant."""
    vae_skips: bool = True
    """Skip connections from the VAE encoder (run on x_j) into its decoder."""
    decoder_noise: bool = True
    """Noise with a learned per-channel scale added in every decoder layer."""
    frequency_loss: bool = True
    """Use the focal frequency loss (frequency_weight) at all."""

    # --- applying --------------------------------------------------------------------------------
    reference_count: int = 8
    """Training pairs (one crop each) stored in the edit file as the (x_i, y_i) used when applying."""
    ensemble_size: int = 4
    """How many of the stored references each image is edited with; the predictions are averaged."""
    sample_steps: int = 1
    """Sampler steps. The first edits from the references; each later one re-noises the estimate
    to the next, lower level and refines it with the query as its own reference (i = j)."""
    start_noise: float = 0.5
    """Noise level σ in (0, 1] of y_i(σ) = (1 − σ)·y_i + σ·ε at the first step."""
    tile_overlap: int = 32
    """Pixels by which neighbouring tiles overlap when an image is edited tile by tile."""

    # The sampler's settings only matter when applying.
    resumable_changes: ClassVar[tuple[str, ...]] = TrainableConfig.resumable_changes + (
        "sample_steps", "start_noise", "ensemble_size", "tile_overlap")

    def __post_init__(self) -> None:
        token_grid = self.latent_downsampling * self.patch_size
        problems = []
        if self.latent_downsampling < 2 or self.latent_downsampling & (self.latent_downsampling - 1):
            problems.append(f"latent_downsampling {self.latent_downsampling} is not a power of two >= 2")
        if self.crop_size % token_grid:
            problems.append(f"crop_size {self.crop_size} is not a multiple of latent_downsampling × patch_size "
                            f"= {token_grid}")
        if token_grid % self.flow_downsampling:
            problems.append(f"latent_downsampling × patch_size = {token_grid} is not a multiple of "
                            f"flow_downsampling {self.flow_downsampling} (M_e patches [F, C] onto M_y's tokens)")
        if self.transformer_width % self.heads:
            problems.append(f"transformer_width {self.transformer_width} is not a multiple of heads {self.heads}")
        if min(self.steps, self.batch_size, self.vae_width, self.flow_width, self.transformer_depth,
               self.latent_channels, self.reference_count, self.ensemble_size, self.sample_steps,
               self.decoder_convolutions) < 1:
            problems.append("steps, batch_size, widths, depths, counts and sample_steps must all be at least 1")
        if self.ensemble_size > self.reference_count:
            problems.append(f"ensemble_size {self.ensemble_size} exceeds reference_count {self.reference_count}")
        if not 0.0 < self.start_noise <= 1.0:
            problems.append(f"start_noise {self.start_noise} is outside (0, 1]")
        if not 0 <= self.tile_overlap < self.crop_size // 2 + 1:
            problems.append(f"tile_overlap {self.tile_overlap} must lie in [0, crop_size / 2]")
        if self.affine_start not in ("fitted", "identity"):
            problems.append(f"affine_start {self.affine_start!r} is neither 'fitted' nor 'identity'")
        if self.affine_output and self.per_pixel_gain and self.per_pixel_matrix:  # both are unused without it
            problems.append("per_pixel_gain needs per_pixel_matrix off (a per-pixel matrix already holds a gain)")
        if problems:
            raise AnalogizeError(f"fewshot: {'; '.join(problems)}; change the setting(s)")
