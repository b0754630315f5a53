"""`analogize demo`: the whole pipeline on photos that ship inside installed packages.

Builds pairs, learns a colour grade, applies it to held-out photos and writes a report page.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_common_options

HELP = "the whole pipeline on packaged photos"
EXAMPLE = """\
example:
  analogize demo --out demo-output/   # then open demo-output/index.html
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_options(parser)
    parser.add_argument("--out", type=Path, default=Path("demo-output"),
                        help="folder for the pairs, results and report (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    from ..bench.demo import run_demo

    run_demo(args.out, progress=args.progress)
    return 0
