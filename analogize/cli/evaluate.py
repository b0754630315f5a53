"""`analogize evaluate`: score an edit on pairs whose after images are the right answers.

Prints the score table and writes a report folder: metrics.json, a contact sheet and index.html.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_common_options

HELP = "score an edit on pairs with known answers"
EXAMPLE = """\
example:
  analogize evaluate warm.edit held-out-pairs/ --report warm-report/
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_options(parser)
    parser.add_argument("edit", type=Path, help="edit file from `analogize learn`")
    parser.add_argument("pairs", type=Path, help="folder with before/ and after/: the photos and their right answers")
    parser.add_argument("--report", type=Path, help="report folder (default: EDIT-report/ beside the edit)")
    parser.add_argument("--resize-pairs", action="store_true",
                        help="resize after images whose size differs from their before image")


def run(args: argparse.Namespace) -> int:
    from ..editfile import load_edit
    from ..evaluation import evaluate_edit, score_table
    from ..pairs import PairSet
    from ..report import SheetRow, contact_sheet, markdown_table, write_report

    edit = load_edit(args.edit)
    pairs = PairSet.from_folder(args.pairs, resize_mismatched=args.resize_pairs, max_pixels=args.max_pixels)
    evaluation = evaluate_edit(edit, pairs, progress=args.progress)
    header, rows = score_table(evaluation)
    sheet = contact_sheet(
        ["before", "result", "expected after"],
        [SheetRow(pair.name, [pair.before, result, pair.after]) for pair, result in zip(pairs, evaluation.results)],
    )
    report_dir = args.report or args.edit.with_name(args.edit.name + "-report")
    page = write_report(report_dir, f"analogize evaluate: {args.edit.name} on {args.pairs}",
                        evaluation.as_dict(), header, rows, {"contact_sheet": sheet})
    print(markdown_table(header, rows))
    print(f"report: {page}")
    return 0
