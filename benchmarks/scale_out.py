"""Training samples/s and batch-apply images/s on 1 vs 2 processes of this machine, side by side.

    .venv/bin/python benchmarks/scale_out.py [--out scale-out-output] [--steps 30] [--images 24]

Both process counts use all the machine's cores: one process with every core as torch threads,
or N processes with cores/N threads each, so the ratio says what splitting the work over processes
gains (or costs) on the same hardware. Every run is a real `torchrun ... -m analogize` command, the
way a user would start it. Training: the `cpu` preset of each trainable method on 20 crops of the
benchmark photos under the `tone` edit; samples/s is the median over the steps after the first
three (start-up). Apply: the fewshot edit from the one-process run over full-size test photos.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analogize.data.corpus import crops, require_photos, split  # noqa: E402
from analogize.data.edits import get_edit  # noqa: E402
from analogize.images import save_image  # noqa: E402

PROCESS_COUNTS = (1, 2)
METHODS = ("fewshot", "pix2pix")
WARM_UP_STEPS = 3


def launch(processes: int, *arguments: object) -> float:
    """Run `analogize ARGUMENTS` on `processes` processes; return the wall-clock seconds."""
    threads = max(1, (os.cpu_count() or 1) // processes)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               "-m", "analogize", *map(str, arguments), "--quiet"]
    started = time.perf_counter()
    finished = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": str(threads)},
                              capture_output=True, text=True)
    if finished.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{finished.stderr[-2000:]}")
    return time.perf_counter() - started


def write_pairs(folder: Path, count: int, size: int) -> None:
    train, _ = split(require_photos(20))
    edit = get_edit("tone")
    for index, image in enumerate(crops(train, count, size, np.random.default_rng(0))):
        save_image(image, folder / "before" / f"{index:03d}.png")
        save_image(edit(image), folder / "after" / f"{index:03d}.png")


def write_photos(folder: Path, count: int) -> None:
    _, test = split(require_photos(20))
    for index in range(count):
        save_image(test[index % len(test)].load(), folder / f"photo{index:03d}.png")


def median_samples_per_second(losses_csv: Path) -> float:
    with losses_csv.open(newline="") as file:
        rows = list(csv.DictReader(file))[WARM_UP_STEPS:]
    return statistics.median(float(row["samples_per_second"]) for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("scale-out-output"))
    parser.add_argument("--steps", type=int, default=30, help="training steps per run")
    parser.add_argument("--images", type=int, default=24, help="photos in the batch apply")
    args = parser.parse_args()
    pairs, photos = args.out / "pairs", args.out / "photos"
    write_pairs(pairs, 20, 128)
    write_photos(photos, args.images)

    results: dict[str, dict[int, dict[str, float]]] = {}
    for method in METHODS:
        results[f"learn {method}"] = {}
        for processes in PROCESS_COUNTS:
            edit = args.out / f"{processes}-process" / f"{method}.edit"
            seconds = launch(processes, "learn", pairs, "-o", edit, "--method", method, "--preset", "cpu",
                             "--steps", args.steps, "--checkpoint-every", 0)
            rate = median_samples_per_second(edit.with_name(edit.name + ".run") / "losses.csv")
            results[f"learn {method}"][processes] = {"rate": rate, "seconds": seconds}
            print(f"learn {method}, {processes} process(es): {rate:.2f} samples/s, {seconds:.1f} s wall", flush=True)

    results["apply fewshot"] = {}
    for processes in PROCESS_COUNTS:
        output = args.out / f"{processes}-process" / "applied"
        seconds = launch(processes, "apply", args.out / "1-process" / "fewshot.edit", photos, "-o", output,
                         "--overwrite")
        summary = json.loads((output / "analogize-apply.json").read_text())
        results["apply fewshot"][processes] = {"rate": summary["done"] / seconds, "seconds": seconds}
        print(f"apply fewshot, {processes} process(es): {summary['done'] / seconds:.3f} images/s, "
              f"{seconds:.1f} s wall", flush=True)

    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print("\n| work | unit | 1 process | 2 processes | ratio 2/1 |")
    print("|---|---|---|---|---|")
    for work, by_count in results.items():
        unit = "images/s" if work.startswith("apply") else "samples/s"
        one, two = by_count[1]["rate"], by_count[2]["rate"]
        print(f"| {work} | {unit} | {one:.3g} | {two:.3g} | {two / one:.2f} |")


if __name__ == "__main__":
    main()
