"""How long a `cpu`-preset fewshot edit takes to apply to one 128×128 image and one 1024×768 photo.

    .venv/bin/python benchmarks/fewshot_apply.py [--preset cpu] [--repeats 3] [--threads 2]

The cost of applying does not depend on what the weights learned, so the edit is built from freshly
initialised networks and random reference crops: no training, same tiles, tokens and references
as a trained edit. Each size is applied once to warm up, then `--repeats` times; the mean is printed.
Issue 3's limits: 1 s per 128×128 image, 10 s per 1024×768 photo.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from analogize.methods import get_method  # noqa: E402
from analogize.methods.fewshot import FewShotEdit, reference_pairs  # noqa: E402
from analogize.methods.fewshot.model import FewShotModel  # noqa: E402
from analogize.pairs import Pair, PairSet  # noqa: E402

SIZES = ((128, 128), (768, 1024))  # (height, width)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config = get_method("fewshot").make_config(args.preset)
    rng = np.random.default_rng(0)
    side = config.crop_size
    pairs = PairSet([Pair(f"pair{index}", rng.random((side, side, 3), dtype=np.float32),
                          rng.random((side, side, 3), dtype=np.float32)) for index in range(config.reference_count)])
    torch.manual_seed(0)
    edit = FewShotEdit(config, FewShotModel(config), *reference_pairs(pairs, config))
    for height, width in SIZES:
        image = rng.random((height, width, 3), dtype=np.float32)
        edit.apply(image)
        start = time.perf_counter()
        for _ in range(args.repeats):
            edit.apply(image)
        seconds = (time.perf_counter() - start) / args.repeats
        print(f"{width}x{height}: {seconds:.3f} s per image ({args.threads} threads, preset {args.preset})")


if __name__ == "__main__":
    main()
