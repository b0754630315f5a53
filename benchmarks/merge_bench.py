"""One table from `analogize bench` runs made side by side, e.g. one process per method so each
gets a core of its own:

    OMP_NUM_THREADS=1 analogize bench --methods fewshot --out bench-fewshot &
    OMP_NUM_THREADS=1 analogize bench --methods "identity,colormap,unet[steps=675]" --out bench-baselines &
    wait; .venv/bin/python benchmarks/merge_bench.py bench-fewshot bench-baselines > results.md

Rows are grouped by edit (means last) and every row gets its PSNR margin over the U-Net's, as in a
single run. The runs must share their settings apart from the methods (same seed, shots, size).

For a shots curve (`--shots 1,3,5,10,20`), `--by-shots psnr` (or any other column of the rows, e.g.
`sharpness`) prints that one metric with a column per pair count instead:

    .venv/bin/python benchmarks/merge_bench.py --by-shots psnr bench-shots-fewshot bench-shots-baselines
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analogize.bench.runner import TABLE_HEADER, BenchRow, add_baseline_margins  # noqa: E402
from analogize.report import markdown_table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", type=Path, help="report folders of `analogize bench`")
    parser.add_argument("--by-shots", metavar="METRIC", choices=list(BenchRow.__dataclass_fields__),
                        help="one column of the rows (psnr, sharpness, ...) by pair count")
    args = parser.parse_args()
    rows, labels, settings = [], [], []
    for folder in args.folders:
        metrics = json.loads((folder / "metrics.json").read_text())
        settings.append({key: value for key, value in metrics["settings"].items() if key != "methods"})
        labels += metrics["settings"]["methods"]
        rows += [BenchRow(**{**row, "psnr_over_baseline": None}) for row in metrics["rows"]]
    if any(other != settings[0] for other in settings[1:]):
        sys.exit(f"merge_bench.py: the runs differ in their settings: {settings}")
    edits = settings[0]["edits"] + ["mean"]
    rows.sort(key=lambda row: (edits.index(row.edit), row.shots, labels.index(row.method)))
    add_baseline_margins(rows, labels)
    if args.by_shots:
        print(by_shots_table(rows, edits, labels, args.by_shots))
    else:
        print(markdown_table(TABLE_HEADER, [row.cells() for row in rows]))


def by_shots_table(rows: list[BenchRow], edits: list[str], labels: list[str], metric: str) -> str:
    """One row per (edit, method) and one column per pair count, each cell the row's `metric`."""
    shot_counts = sorted({row.shots for row in rows})
    value = {(row.edit, row.method, row.shots): getattr(row, metric) for row in rows}
    table = [[edit, label, *(value.get((edit, label, shots), "") for shots in shot_counts)]
             for edit in edits for label in labels if any((edit, label, shots) in value for shots in shot_counts)]
    return markdown_table(["edit", "method", *(f"{metric} at {shots}" for shots in shot_counts)], table)


if __name__ == "__main__":
    main()
