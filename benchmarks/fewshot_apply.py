"""How long a `cpu`-preset fewshot edit takes to apply to a 128×128 image, a 1024×768 photo and a
4000×3000 photo.

    .venv/bin/python benchmarks/fewshot_apply.py [--preset cpu] [--repeats 3] [--threads 2] [--set key=value]

The cost of applying does not depend on what the weights learned, so the edit is built from freshly
initialised networks and random reference crops: no training, same tiles, tokens and references
as a trained edit. After one warm-up on a small image each size is applied `--repeats` times (the
4000×3000 photo once); the mean is printed.
Issue 3's limits: 1 s per 128×128 image, 10 s per 1024×768 photo; issue 15's: 30 s per 4000×3000
photo. `--set` changes an applying setting, e.g. `--set mixed_precision=no` for float32.
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

from analogize.bench.runner import parse_variant  # noqa: E402
from analogize.methods import get_method  # noqa: E402
from analogize.methods.fewshot import FewShotEdit, reference_pairs  # noqa: E402
from analogize.methods.fewshot.model import FewShotModel  # noqa: E402
from analogize.pairs import Pair, PairSet  # noqa: E402

SIZES = ((128, 128), (768, 1024), (3000, 4000))  # (height, width)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    overrides = parse_variant(f"fewshot[{','.join(args.set)}]").overrides
    config = get_method("fewshot").make_config(args.preset, **overrides)
    rng = np.random.default_rng(0)
    side = config.crop_size
    pairs = PairSet([Pair(f"pair{index}", rng.random((side, side, 3), dtype=np.float32),
                          rng.random((side, side, 3), dtype=np.float32)) for index in range(config.reference_count)])
    torch.manual_seed(0)
    edit = FewShotEdit(config, FewShotModel(config), *reference_pairs(pairs, config))
    edit.apply(rng.random((side, side, 3), dtype=np.float32))  # warm-up: the first call pays one-off costs
    for height, width in SIZES:
        image = rng.random((height, width, 3), dtype=np.float32)
        repeats = 1 if height * width > 4_000_000 else args.repeats  # a 12-megapixel photo takes long enough
        start = time.perf_counter()
        for _ in range(repeats):
            edit.apply(image)
        seconds = (time.perf_counter() - start) / repeats
        print(f"{width}x{height}: {seconds:.3f} s per image ({args.threads} threads, preset {args.preset}, "
              f"{' '.join(args.set) or 'preset settings'})", flush=True)


if __name__ == "__main__":
    main()
