"""PairEdit's training step against a plain diffusers LoRA training step, on the same tiny backbone,
side by side in one run; then the memory a GPU user needs for the real models, from arithmetic.

    .venv/bin/python benchmarks/pairedit_step.py [--steps 40] [--resolution 64]

Part 1 (measured): for the tiny random FLUX and SD pipelines (tiny_backbones.py), each variant runs
in its own process (so peak memory is its own): load the backbone, add LoRA(s) of rank 16 on every
attention projection, warm up 3 steps, time `--steps` steps. "plain" is the usual diffusers LoRA
recipe: one LoRA, the backbone's standard noising and target, one forward and backward per step.
"pairedit" is PairEditTask.training_step: two LoRAs, two forward and backward passes per step.

Part 2 (arithmetic, not measured: no GPU and no real weights here): the real FLUX.1-dev transformer
and SD 1.5 UNet are built on PyTorch's meta device from their published configs (no weights), the
same LoRAs are added, and parameter counts give the bytes of weights, LoRAs, gradients and AdamW.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FLUX_DEV_TRANSFORMER = dict(patch_size=1, in_channels=64, num_layers=19, num_single_layers=38, attention_head_dim=128,
                            num_attention_heads=24, joint_attention_dim=4096, pooled_projection_dim=768,
                            guidance_embeds=True, axes_dims_rope=[16, 56, 56])
SD15_UNET = dict(block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, cross_attention_dim=768,
                 attention_head_dim=8, sample_size=64)
GIB = 1024**3


def measure(family: str, variant: str, folder: str, steps: int, resolution: int) -> dict:
    """Runs inside a child process: seconds per step and peak RSS of one variant."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from analogize.backbones import load_backbone
    from analogize.methods import get_method
    from analogize.methods.pairedit import PairEditTask, add_lora, use_loras
    from analogize.pairs import Pair, PairSet

    torch.manual_seed(0)
    config = get_method("pairedit").make_config(base_model=folder, resolution=resolution, rank=16)
    backbone = load_backbone(config)
    rng = np.random.default_rng(0)
    image = rng.random((resolution, resolution, 3)).astype(np.float32)
    pairs = PairSet([Pair("p", image, 1.0 - image)])

    class PlainAccelerator:
        def backward(self, loss):
            loss.backward()

    if variant == "pairedit":
        task = PairEditTask(pairs, config, backbone)
        optimizer = task.optimizers["loras"]

        def step():
            task.training_step(task.batch(rng), PlainAccelerator())
            optimizer.zero_grad(set_to_none=True)
    else:
        parameters = add_lora(backbone.denoiser, "plain", 16, 1.0)
        use_loras(backbone.denoiser, {"plain": 1.0}, trained=None)
        for parameter in parameters:
            parameter.requires_grad_(True)
        optimizer = torch.optim.AdamW(parameters, lr=1e-4)
        latent = backbone.encode_image(image, resolution, resolution)
        levels, condition = backbone.levels(28), backbone.condition("")

        def step():
            level = levels[int(rng.integers(len(levels)))]
            noise = torch.randn_like(latent)
            noised = level.signal * latent + level.noise * noise
            loss = F.mse_loss(backbone.predict(noised, level, condition), backbone.output_for(latent, noise, level))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    durations = []
    for _ in range(steps):
        started = time.perf_counter()
        step()
        durations.append(time.perf_counter() - started)
    return {"seconds": statistics.median(durations), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def lora_arithmetic() -> list[tuple[str, int, int]]:
    """(model, base parameters, parameters of one rank-16 LoRA on every attention projection)."""
    import torch
    from diffusers import FluxTransformer2DModel, UNet2DConditionModel

    from analogize.methods.pairedit import add_lora, lora_parameters

    rows = []
    for name, build in (("FLUX.1-dev transformer", lambda: FluxTransformer2DModel(**FLUX_DEV_TRANSFORMER)),
                        ("SD 1.5 UNet", lambda: UNet2DConditionModel(**SD15_UNET))):
        with torch.device("meta"):
            model = build()
            base = sum(parameter.numel() for parameter in model.parameters())
            add_lora(model, "count", 16, 1.0)
            rows.append((name, base, sum(parameter.numel() for parameter in lora_parameters(model, "count"))))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--child", nargs=3, metavar=("FAMILY", "VARIANT", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*args.child, args.steps, args.resolution)))
        return

    from analogize.tiny_backbones import write_tiny_backbone

    root = Path(tempfile.mkdtemp(prefix="analogize-pairedit-bench-"))
    print(f"| backbone | plain LoRA step | pairedit step | ratio | plain peak RSS | pairedit peak RSS |")
    print("|---|---|---|---|---|---|")
    for family in ("flux", "sd"):
        folder = write_tiny_backbone(family, root / family)
        results = {}
        for variant in ("plain", "pairedit"):
            child = subprocess.run([sys.executable, __file__, "--steps", str(args.steps), "--resolution",
                                    str(args.resolution), "--child", family, variant, str(folder)],
                                   capture_output=True, text=True, check=True)
            results[variant] = json.loads(child.stdout.strip().splitlines()[-1])
        plain, pairedit = results["plain"], results["pairedit"]
        print(f"| tiny {family} | {plain['seconds'] * 1000:.1f} ms | {pairedit['seconds'] * 1000:.1f} ms | "
              f"{pairedit['seconds'] / plain['seconds']:.2f} | {plain['peak_rss_mb']:.0f} MB | {pairedit['peak_rss_mb']:.0f} MB |")

    print("\nArithmetic for the real models (bf16 base, fp32 LoRAs + gradients + AdamW's two moments):\n")
    print("| model | base parameters | base bf16 | one LoRA (rank 16) | PairEdit's two LoRAs: weights+grads+AdamW |")
    print("|---|---|---|---|---|")
    for name, base, lora in lora_arithmetic():
        print(f"| {name} | {base / 1e9:.2f} B | {base * 2 / GIB:.1f} GiB | {lora / 1e6:.1f} M | "
              f"{2 * lora * 4 * 4 / GIB:.2f} GiB |")


if __name__ == "__main__":
    main()
