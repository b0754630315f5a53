"""Paint by Example: our sampler against diffusers' (deprecated) PaintByExamplePipeline on the same
tiny random checkpoint, side by side in one run; then the memory a GPU user needs for the real
model, from arithmetic.

    .venv/bin/python benchmarks/paint_by_example.py [--steps 50] [--repeats 5]

Part 1 (measured): both sample the same 32×32 inpainting with guidance 5 and DDIM over `--steps`
steps, alternating, `--repeats` times each; the median wall time of each and their ratio.
Part 2 (arithmetic, not measured: no GPU and no real weights here): the official model's parts
(SD 1.x UNet with 9 input channels, SD's VAE, CLIP ViT-L/14's vision tower, the 5-block mapper)
are built on PyTorch's meta device from their published configs, and parameter counts give the
bytes of weights, and for training, of gradients and AdamW's two moments.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SD15_UNET = dict(block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, cross_attention_dim=768,
                 attention_head_dim=8, sample_size=64, in_channels=9)
SD_VAE = dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
              down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4)
CLIP_VIT_L14 = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                    image_size=224, patch_size=14, projection_dim=768)
GIB = 1024**3


def timings(steps: int, repeats: int) -> tuple[float, float]:
    """Median seconds of (ours, diffusers') for one inpainting."""
    import numpy as np
    import torch
    from diffusers import DDIMScheduler, PaintByExamplePipeline
    from diffusers.pipelines.deprecated.paint_by_example import PaintByExampleImageEncoder

    from analogize.methods.paint_by_example import PaintByExampleModel, exemplar_pixels, paint
    from analogize.tiny_backbones import write_tiny_paint_by_example

    folder = write_tiny_paint_by_example(Path(tempfile.mkdtemp(prefix="analogize-pbe-bench-")) / "model")
    model = PaintByExampleModel.from_pretrained(folder)
    backbone = model.backbone(torch.device("cpu"))
    official = PaintByExamplePipeline(
        vae=model.vae, unet=model.unet, image_encoder=PaintByExampleImageEncoder.from_pretrained(folder / "image_encoder"),
        scheduler=DDIMScheduler.from_config(model.scheduler.config, set_alpha_to_one=True, clip_sample=False),
        safety_checker=None, feature_extractor=None,
    )
    official.set_progress_bar_config(disable=True)
    rng = np.random.default_rng(0)
    photo, exemplar = rng.random((32, 32, 3), dtype=np.float32), rng.random((32, 32, 3), dtype=np.float32)
    mask = np.zeros((32, 32), dtype=np.float32)
    mask[8:24, 8:24] = 1.0
    photo_tensor, mask_tensor = torch.from_numpy(photo.transpose(2, 0, 1))[None] * 2 - 1, torch.from_numpy(mask)[None, None]
    exemplar_tensor = exemplar_pixels(model, exemplar)

    def ours() -> None:
        paint(model, backbone, photo, mask, exemplar, steps=steps, guidance=5.0, context=10.0)

    def theirs() -> None:
        official(example_image=exemplar_tensor, image=photo_tensor, mask_image=mask_tensor, height=32, width=32,
                 num_inference_steps=steps, guidance_scale=5.0, output_type="np")

    seconds: dict[str, list[float]] = {"ours": [], "theirs": []}
    for run in (ours, theirs):  # warm-up
        run()
    for _ in range(repeats):
        for name, run in (("ours", ours), ("theirs", theirs)):
            started = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - started)
    return statistics.median(seconds["ours"]), statistics.median(seconds["theirs"])


def parameter_counts() -> dict[str, int]:
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPVisionConfig

    from analogize.methods.paint_by_example import ExemplarEncoder

    with torch.device("meta"):
        unet = UNet2DConditionModel(**SD15_UNET)
        vae = AutoencoderKL(**SD_VAE)
        encoder = ExemplarEncoder(CLIPVisionConfig(**CLIP_VIT_L14))
    count = lambda module: sum(parameter.numel() for parameter in module.parameters())  # noqa: E731
    return {"UNet (9 input channels)": count(unet), "VAE": count(vae), "CLIP ViT-L/14 vision (frozen)": count(encoder.model),
            "mapper + norm + projection + null token": sum(parameter.numel() for parameter in encoder.trainable())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    ours, theirs = timings(args.steps, args.repeats)
    print(f"| sampler ({args.steps} DDIM steps, guidance 5, tiny model, 32×32) | median seconds |")
    print("|---|---|")
    print(f"| analogize `paint` | {ours:.3f} |")
    print(f"| diffusers PaintByExamplePipeline | {theirs:.3f} |")
    print(f"| ratio ours / diffusers | {ours / theirs:.2f} |")

    counts = parameter_counts()
    print("\nArithmetic for the official model (weights only; activations come on top):\n")
    print("| part | parameters | fp16 weights | fp32 weights |")
    print("|---|---|---|---|")
    for name, number in counts.items():
        print(f"| {name} | {number / 1e6:.1f} M | {number * 2 / GIB:.2f} GiB | {number * 4 / GIB:.2f} GiB |")
    total = sum(counts.values())
    trained = counts["UNet (9 input channels)"] + counts["mapper + norm + projection + null token"]
    frozen = total - trained
    print(f"| all | {total / 1e6:.1f} M | {total * 2 / GIB:.2f} GiB | {total * 4 / GIB:.2f} GiB |")
    print(f"\nInference in fp16: {total * 2 / GIB:.2f} GiB of weights.")
    print(f"Training (UNet + mapper in fp32 with gradients and AdamW's two moments = 16 bytes each, VAE and CLIP "
          f"frozen in fp16): {(trained * 16 + frozen * 2) / GIB:.1f} GiB before activations.")


if __name__ == "__main__":
    main()
