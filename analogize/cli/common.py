"""What several commands share: the -q/--max-pixels options, the training loop's options, and the
one line that reports a batch of photos."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..constants import DEFAULT_MAX_PIXELS, LOG_DESTINATIONS, MIXED_PRECISION_MODES

EXIT_USER_ERROR = 2
DTYPE_NAMES = ("fp32", "bf16", "fp16")
"""--dtype's choices: backbones.DTYPES's names, listed here so that --help imports no torch."""


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """-q and --max-pixels, first among the flags of every command that reads photos or shows progress."""
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help="refuse images larger than this many pixels (default %(default)s)")


def add_training_options(group: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The shared training loop's flags (defaults come from the preset)."""
    group.add_argument("--checkpoint-every", type=int, help="steps between checkpoints in OUTPUT.run/")
    group.add_argument("--gradient-accumulation", type=int, dest="gradient_accumulation_steps",
                       help="batches summed into each update")
    group.add_argument("--mixed-precision", choices=MIXED_PRECISION_MODES,
                       help="compute in bf16 or fp16 (fp16 needs a GPU), or not (no)")
    group.add_argument("--log", choices=LOG_DESTINATIONS, dest="log_with",
                       help="training log in OUTPUT.run/: losses.csv, tensorboard/ or none (default csv)")


def add_device_options(parser: argparse.ArgumentParser, dtype_help: str, dtype_default: str | None = None) -> None:
    """--device and --dtype, spelled once for every command that computes; the command resolves
    --device with devices.use_device, and says in `dtype_help` what --dtype sets there."""
    parser.add_argument("--device", default="auto",
                        help="auto (accelerate's choice: this process's GPU, or MPS, when there is one), cpu, cuda, "
                             "cuda:N or mps (default %(default)s)")
    parser.add_argument("--dtype", choices=DTYPE_NAMES, default=dtype_default, help=dtype_help)


def training_flags(args: argparse.Namespace) -> dict:
    """The training options and the flags every trainer has, as config overrides (None = not given)."""
    return dict(steps=args.steps, seed=args.seed, checkpoint_every=args.checkpoint_every,
                gradient_accumulation_steps=args.gradient_accumulation_steps, mixed_precision=args.mixed_precision,
                log_with=args.log_with, base_model=args.base_model)


def batch_options(args: argparse.Namespace) -> dict:
    """How a batch of photos runs: a photo that fails is one error line, and the batch goes on."""
    return {"overwrite": args.overwrite, "progress": args.progress,
            "on_failure": lambda reason: print(f"analogize: error: {reason}", file=sys.stderr)}


def report_batch(summary, output: Path, verb: str) -> int:
    """The main process's one line about a finished batch; exit 2 if any photo failed."""
    from ..batch import SUMMARY_NAME
    from ..distributed import process_state

    if process_state().is_main_process:
        print(f"{verb} {summary.done} of {summary.images} image(s): {summary.skipped} skipped (output exists), "
              f"{len(summary.failed)} failed -> {output} (summary: {output / SUMMARY_NAME})")
    return EXIT_USER_ERROR if summary.failed else 0
