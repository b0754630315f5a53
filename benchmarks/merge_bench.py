"""One table from `analogize bench` runs made side by side, e.g. one process per method so each
gets a core of its own:

    OMP_NUM_THREADS=1 analogize bench --methods fewshot --out bench-fewshot &
    OMP_NUM_THREADS=1 analogize bench --methods "identity,colormap,unet[steps=675]" --out bench-baselines &
    wait; .venv/bin/python benchmarks/merge_bench.py bench-fewshot bench-baselines > results.md

Rows are grouped by edit (means last) and every row gets its PSNR margin over the U-Net's, as in a
single run. The runs must share their settings apart from the methods (same seed, shots, size).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analogize.bench.runner import TABLE_HEADER, BenchRow, add_baseline_margins  # noqa: E402
from analogize.report import markdown_table  # noqa: E402


def main() -> None:
    folders = [Path(argument) for argument in sys.argv[1:]]
    if not folders:
        sys.exit(__doc__)
    rows, labels, settings = [], [], []
    for folder in folders:
        metrics = json.loads((folder / "metrics.json").read_text())
        settings.append({key: value for key, value in metrics["settings"].items() if key != "methods"})
        labels += metrics["settings"]["methods"]
        rows += [BenchRow(**{**row, "psnr_over_baseline": None}) for row in metrics["rows"]]
    if any(other != settings[0] for other in settings[1:]):
        sys.exit(f"merge_bench.py: the runs differ in their settings: {settings}")
    edits = settings[0]["edits"] + ["mean"]
    rows.sort(key=lambda row: (edits.index(row.edit), row.shots, labels.index(row.method)))
    add_baseline_margins(rows, labels)
    print(markdown_table(TABLE_HEADER, [row.cells() for row in rows]))


if __name__ == "__main__":
    main()
