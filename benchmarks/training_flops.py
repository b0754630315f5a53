"""How much of the CPU's bf16 matrix throughput a training step of fewshot (and of the U-Net
baseline) uses, and where fewshot's FLOPs go.

    .venv/bin/python benchmarks/training_flops.py [--threads 2] [--steps 6] [--methods "fewshot,unet"]

`--methods` takes the benchmark's NAME[key=value,...] form on top of the `cpu` preset, e.g.
`"fewshot,fewshot[affine_output=false],unet"` to time a setting beside the preset.

1. Peak: the best of a few large bf16 matrix products (2048³, 4096³) — what the cores can do.
2. FLOPs of one training step (forward and backward), counted by torch's FlopCounterMode on one
   batch of the `cpu` preset, and how fewshot's forward pass splits over its parts (VAE, M_x,
   M_e, M_y).
3. The step's time: the mean over `--steps` steps after two warm-up steps, in the preset's
   precision (bf16 autocast) and the training loop's channels-last layout.
   Utilisation = FLOPs / time / peak.

Counted FLOPs are those of matrix products and convolutions (2 per multiply-add); elementwise work,
normalisation, the FFT loss and data loading count as zero, so a low figure also says how much of
the step is spent outside the matrix engines.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from analogize.bench.runner import parse_variant, split_methods  # noqa: E402
from analogize.methods.fewshot.train import FewShotTask  # noqa: E402
from analogize.methods.unet import UNetTask  # noqa: E402
from analogize.pairs import Pair, PairSet  # noqa: E402
from analogize.training import images_channels_last, move_to_task_layout  # noqa: E402

# Module paths below the model (as FlopCounterMode names them) -> the part they belong to.
FEWSHOT_PARTS = {"vae.encoder": "VAE encoder", "vae.decoder": "VAE decoder", "flow": "M_x", "condition": "M_e",
                 "denoiser": "M_y"}


def matmul_peak(threads: int) -> float:
    """Best bf16 matrix-product rate in FLOP/s over a few sizes and repeats."""
    best = 0.0
    for size in (2048, 4096):
        a = torch.randn(size, size, dtype=torch.bfloat16)
        b = torch.randn(size, size, dtype=torch.bfloat16)
        a @ b  # warm-up
        for _ in range(3):
            start = time.perf_counter()
            a @ b
            best = max(best, 2 * size**3 / (time.perf_counter() - start))
    return best


class Accelerated:
    """The two things a task's training_step asks of accelerate, for a one-process CPU run."""

    sync_gradients = True

    @staticmethod
    def backward(loss: torch.Tensor) -> None:
        loss.backward()

    @staticmethod
    def clip_grad_norm_(parameters, norm: float) -> None:
        torch.nn.utils.clip_grad_norm_(parameters, norm)

    @staticmethod
    def unwrap_model(model):
        return model


def step_flops(task, batch) -> float:
    """FLOPs of one forward + backward + update."""
    with FlopCounterMode(display=False) as counter, torch.autocast("cpu", dtype=torch.bfloat16):
        task.training_step(batch, Accelerated())
    return float(counter.get_total_flops())


def forward_parts(task, batch) -> dict[str, float]:
    """FLOPs of fewshot's forward pass per top-level part of the model. From the forward pass
    alone: FlopCounterMode files backward FLOPs under whichever module its hooks saw last, which
    put most of the encoder's and decoder's backward under M_y (33 % of the step instead of 4 %)."""
    model = task.modules["model"]
    with FlopCounterMode(display=False) as counter, torch.autocast("cpu", dtype=torch.bfloat16):
        model(*(batch[key] for key in ("x_i", "y_i", "x_j", "y_j", "sigma", "noise", "position_i", "position_j")))
    parts: dict[str, float] = defaultdict(float)
    for name, counts in counter.get_flop_counts().items():
        below_model = name.partition(".")[2]
        if below_model in FEWSHOT_PARTS:
            parts[FEWSHOT_PARTS[below_model]] += sum(counts.values())
    return dict(parts)


def step_seconds(task, rng: np.random.Generator, steps: int) -> float:
    for warm_up in range(2):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            task.training_step(images_channels_last(task.batch(rng)), Accelerated())
    batches = [images_channels_last(task.batch(rng)) for _ in range(steps)]
    start = time.perf_counter()
    for batch in batches:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            task.training_step(batch, Accelerated())
        for optimizer in task.optimizers.values():
            optimizer.zero_grad(set_to_none=True)
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--methods", default="fewshot,unet", help="fewshot and/or unet, each optionally NAME[key=value,...]")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    peak = matmul_peak(args.threads)
    print(f"bf16 matmul peak: {peak / 1e9:.0f} GFLOP/s ({args.threads} threads)")

    rng = np.random.default_rng(0)
    pairs = PairSet([Pair(f"pair{index}", rng.random((128, 128, 3), dtype=np.float32),
                          rng.random((128, 128, 3), dtype=np.float32)) for index in range(8)])
    tasks = {"fewshot": FewShotTask, "unet": UNetTask}
    for spec in split_methods(args.methods):
        variant = parse_variant(spec)
        config = variant.method.make_config("cpu", **variant.overrides)
        torch.manual_seed(0)
        task = tasks[variant.method.name](pairs, config)
        move_to_task_layout(task)  # both tasks ask for channels-last: their batches follow
        batch = images_channels_last(task.batch(rng))
        flops = step_flops(task, batch)
        seconds = step_seconds(task, rng, args.steps)
        parts = forward_parts(task, batch) if variant.method.name == "fewshot" else {}
        split = ", ".join(f"{part} {value / sum(parts.values()):.0%}" for part, value in parts.items())
        print(f"{spec}: {flops / 1e9:.1f} GFLOP per step of {config.batch_size}, {seconds:.3f} s per step, "
              f"{flops / seconds / 1e9:.0f} GFLOP/s = {flops / seconds / peak:.1%} of the peak"
              + (f"; forward FLOPs: {split}" if split else ""), flush=True)


if __name__ == "__main__":
    main()
