"""PIXELS sampling time against the backbone's plain img2img: same tiny backbone, same steps, same run.

    .venv/bin/python benchmarks/pixels_overhead.py [--steps 28] [--rounds 15] [--resolution 64] [--threads 1]

Both are `analogize.methods.pixels.img2img` on one latent; PIXELS adds its surgery hook (a
threshold and a blend of the noised source per step). The two are run alternately, `--rounds`
times each, and the medians compared, so drift of this noisy machine hits both alike; on a CPU shared
with other jobs, `--threads 1` keeps torch's threads from waiting on each other. Also writes
docs/images/pixels-locking.png (with --figure): a gradient map and which latent pixels are held to
the source at four of the steps, recorded from a run.
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

import numpy as np  # noqa: E402
import torch  # noqa: E402

from analogize.backbones import BackboneConfig, load_backbone  # noqa: E402
from analogize.methods.pixels import img2img, pixels_surgery  # noqa: E402
from analogize.tiny_backbones import write_tiny_backbone  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=28)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--figure", type=Path, help="write the locking figure here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    root = Path(tempfile.mkdtemp(prefix="analogize-pixels-bench-"))
    print("| backbone | plain img2img | PIXELS | ratio |")
    print("|---|---|---|---|")
    for family in ("flux", "sd", "sdxl-refiner", "kandinsky"):
        prior = str(write_tiny_backbone("kandinsky-prior", root / "prior")) if family == "kandinsky" else ""
        backbone = load_backbone(BackboneConfig(base_model=str(write_tiny_backbone(family, root / family)),
                                                resolution=args.resolution), prior=prior)
        generator = torch.Generator().manual_seed(0)
        images = torch.rand(2, 3, args.resolution, args.resolution, generator=generator) * 2 - 1
        source, exemplar = backbone.encode(images).float().split(1)
        source_noise, exemplar_noise = torch.randn(source.shape, generator=generator), torch.randn(source.shape, generator=generator)
        ramp = torch.linspace(0, 1, source.shape[-1]).expand(1, 1, *source.shape[-2:])
        condition = backbone.condition("")
        locked: list[torch.Tensor] = []

        def plain():
            img2img(backbone, exemplar, exemplar_noise, steps=args.steps, strength=1.0, condition=condition)

        def pixels():
            locked.clear()
            img2img(backbone, exemplar, exemplar_noise, steps=args.steps, strength=1.0, condition=condition,
                    surgery=pixels_surgery(source, source_noise, ramp, args.steps, locked))

        times = {"plain": [], "pixels": []}
        for _ in range(2):  # warm-up
            plain(), pixels()
        for _ in range(args.rounds):
            for name, run in (("plain", plain), ("pixels", pixels)):
                started = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - started)
        plain_time, pixels_time = statistics.median(times["plain"]), statistics.median(times["pixels"])
        print(f"| tiny {family} | {plain_time * 1000:.1f} ms | {pixels_time * 1000:.1f} ms | {pixels_time / plain_time:.3f} |")
        if args.figure and family == "sd":
            write_figure(ramp, locked, args.steps, args.figure)


def write_figure(edit_map: torch.Tensor, locked: list[torch.Tensor], steps: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [0, steps // 4, steps // 2, 3 * steps // 4]
    figure, axes = plt.subplots(1, 1 + len(shown), figsize=(2.2 * (1 + len(shown)), 2.4))
    axes[0].imshow(edit_map[0, 0].numpy(), cmap="gray", vmin=0, vmax=1)
    axes[0].set_title("edit map M")
    for axis, step in zip(axes[1:], shown):
        axis.imshow(locked[step][0, 0].numpy(), cmap="gray", vmin=0, vmax=1)
        axis.set_title(f"step {step}: τ = {step / steps:.2f}")
    for axis in axes:
        axis.set_xticks([]), axis.set_yticks([])
    figure.suptitle("white: latent pixels reset to the noised source before this step (recorded from a run)",
                    fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    print(f"figure: {path}")


if __name__ == "__main__":
    main()
