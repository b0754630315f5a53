"""LoRA of Change trained here (cpu preset, procedural edits) and scored on edits it never saw.

    .venv/bin/python benchmarks/loc_heldout.py [--hypernetwork DIR] [--shots 1] [--test-images 12]

1. Trains the cpu preset with `train_loc` (base model, then hypernetwork) into --hypernetwork,
   unless that folder already holds a trained one (an interrupted training resumes); prints the
   wall-clock time.
2. For every benchmark edit (held-out ones marked), learns from --shots exemplar pairs cut from
   the training photos and scores on --test-images crops of the test photos, against the exact
   answer: loc, identity and colormap from the same exemplars, at the preset's 32 px; and
   "loc Δ=0", the same sampler with the LoRA zeroed (the frozen base model alone), which shows
   what the generated LoRA adds.
3. The training loss itself, LoRA Reverse's two terms summed, with the generated LoRA and with
   it zeroed: 8 fixed batches of 16 quads (crops of the training photos) for the training edits
   together and for each held-out edit.
4. Times loc's `learn` (loading the hypernetwork and base model, then one forward) and the
   forward alone (median of 20), against fewshot's training on the same pairs: fewshot's cpu
   preset run for --fewshot-steps steps in this process, and its full-preset time extrapolated.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from analogize.data.corpus import crops, photos, split  # noqa: E402
from analogize.data.edits import EDITS, make_pairs  # noqa: E402
from analogize.evaluation import evaluate_edit  # noqa: E402
from analogize.methods import get_method  # noqa: E402
from analogize.methods.loc import LocEdit, generate_lora, train_loc  # noqa: E402
from analogize.methods.loc.data import quad_source  # noqa: E402
from analogize.methods.loc.train import CONFIG_FILE, ReverseTask, load_hypernetwork  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hypernetwork", type=Path, default=Path("bench-output/loc-cpu"))
    parser.add_argument("--shots", type=int, default=1)
    parser.add_argument("--test-images", type=int, default=12)
    parser.add_argument("--fewshot-steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    loc = get_method("loc")
    config = loc.make_config("cpu", seed=args.seed)
    if not (args.hypernetwork / CONFIG_FILE).is_file():
        started = time.perf_counter()
        train_loc(config, args.hypernetwork, resume=True, progress=False)  # an interrupted run continues
        print(f"train-loc --preset cpu: {time.perf_counter() - started:.0f} s wall "
              f"(autoencoder {config.autoencoder_steps}, denoiser {config.denoiser_steps}, "
              f"hypernetwork {config.steps} steps)", flush=True)

    train_photos, test_photos = split(photos())
    rng = np.random.default_rng(args.seed)
    size = config.resolution
    exemplars, tests = crops(train_photos, args.shots, size, rng), crops(test_photos, args.test_images, size, rng)
    learn_config = loc.make_config("cpu", seed=args.seed, hypernetwork=str(args.hypernetwork))
    print(f"| edit | held out | method | PSNR | SSIM | learn s |\n|---|---|---|---|---|---|")
    means: dict[str, list[float]] = {}
    for name in EDITS:
        held_out = name in config.hold_out
        shots, test = make_pairs(name, exemplars), make_pairs(name, tests)
        for method, method_config in (("loc", learn_config), ("loc Δ=0", None), ("identity", None),
                                      ("colormap", None)):
            started = time.perf_counter()
            if method == "loc Δ=0":
                edit = LocEdit(edit.config, {key: value * 0 if key.endswith(".lora_B.weight") else value
                                             for key, value in edit.lora.items()}, edit.backbone)
            else:
                chosen = get_method(method)
                edit = chosen.learn(shots, method_config or chosen.make_config(seed=args.seed), progress=False)
            seconds = time.perf_counter() - started
            mean = evaluate_edit(edit, test, seed=args.seed).mean
            print(f"| {name} | {'yes' if held_out else 'no'} | {method} | {mean['psnr']:.2f} | {mean['ssim']:.3f} "
                  f"| {seconds:.3f} |", flush=True)
            means.setdefault(f"{'held-out' if held_out else 'trained'} {method}", []).append(mean["psnr"])
    for key, values in means.items():
        print(f"mean PSNR, {key} edits: {np.mean(values):.2f} dB")

    trained, hypernetwork, backbone = load_hypernetwork(args.hypernetwork, {})
    def zeroed(before: torch.Tensor, after: torch.Tensor) -> dict:
        return {name: (down, 0 * up) for name, (down, up) in hypernetwork(before, after).items()}

    train_edits = [name for name in EDITS if name not in config.hold_out]
    for edits in [train_edits] + [[name] for name in config.hold_out]:
        source = quad_source("procedural", size, train_edits=edits, crop_pool=64, seed=args.seed + 1)
        task = ReverseTask(dataclasses.replace(trained, batch_size=16, exchange_probability=0.0), backbone,
                           hypernetwork, source)
        losses = {"H": [], "zeroed": []}
        with torch.no_grad():
            for index in range(8):
                batch = task.batch(np.random.default_rng(index))
                losses["H"].append(sum(task.reverse_loss(batch, hypernetwork)).item())
                losses["zeroed"].append(sum(task.reverse_loss(batch, zeroed)).item())
        print(f"reverse loss, {','.join(edits)}: with the LoRA {np.mean(losses['H']):.4f}, "
              f"zeroed {np.mean(losses['zeroed']):.4f}", flush=True)

    shots = make_pairs("tone", exemplars)
    forwards = []
    for _ in range(20):
        started = time.perf_counter()
        generate_lora(hypernetwork, shots, trained)
        forwards.append(time.perf_counter() - started)
    learns = []
    for _ in range(5):
        started = time.perf_counter()
        loc.learn(shots, learn_config, progress=False)
        learns.append(time.perf_counter() - started)
    fewshot = get_method("fewshot")
    full = fewshot.make_config("cpu", seed=args.seed)
    started = time.perf_counter()
    fewshot.learn(shots, fewshot.make_config("cpu", seed=args.seed, steps=args.fewshot_steps), progress=False)
    per_step = (time.perf_counter() - started) / args.fewshot_steps
    forward = statistics.median(forwards)
    print(f"loc learn (load + one forward), median of 5: {statistics.median(learns):.3f} s; "
          f"the forward alone, median of 20: {forward * 1000:.1f} ms")
    print(f"fewshot cpu preset: {per_step:.3f} s/step over {args.fewshot_steps} steps (setup included) -> "
          f"{per_step * full.steps:.0f} s for its {full.steps} steps, "
          f"{per_step * full.steps / forward:.0f}x loc's forward")


if __name__ == "__main__":
    main()
