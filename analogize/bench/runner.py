"""`analogize bench`: learn each procedural edit from N pairs with each method, score on held-out
photos against the exact ground truth, and write a report folder: results.md (the table),
metrics.json, one contact sheet per edit and index.html.

Training and test images are random square crops: training crops come only from the training
photos, test crops only from the test photos (the split is by photo), and both are fixed by the
seed, so every method sees exactly the same pairs.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..atomic import write_text_atomic
from ..errors import AnalogizeError
from ..evaluation import evaluate_edit
from ..methods import get_method
from ..report import SheetRow, contact_sheet, markdown_table, write_report
from .corpus import crops, photos, require_photos, split
from .edits import EDITS, make_pairs

MINIMUM_PHOTOS = 20
TABLE_HEADER = ["edit", "kind", "method", "PSNR", "SSIM", "DIoU", "learn s", "apply s/img"]


@dataclass
class BenchRow:
    edit: str
    kind: str
    method: str
    psnr: float
    ssim: float
    diou: float
    learn_seconds: float
    apply_seconds: float

    def cells(self) -> list[object]:
        return [self.edit, self.kind, self.method, self.psnr, self.ssim, self.diou,
                self.learn_seconds, self.apply_seconds]


def run_bench(
    methods: list[str],
    edits: list[str],
    *,
    shots: int = 20,
    size: int = 128,
    test_images: int = 12,
    preset: str | None = None,
    seed: int = 0,
    out_dir: Path = Path("bench-output"),
    minimum_photos: int = MINIMUM_PHOTOS,
    progress: bool = True,
) -> list[BenchRow]:
    """Run every (edit, method) combination and write the report folder `out_dir`."""
    unknown = [name for name in edits if name not in EDITS]
    if unknown:
        raise AnalogizeError(f"--edits: unknown edit(s) {', '.join(unknown)}; choose from {', '.join(EDITS)}")
    chosen_methods = [get_method(name) for name in methods]
    require_photos(minimum_photos)
    train_photos, test_photos = split(photos())
    rng = np.random.default_rng(seed)
    train_crops = crops(train_photos, shots, size, rng)
    test_crops = crops(test_photos, test_images, size, rng)

    rows: list[BenchRow] = []
    sheets: dict[str, np.ndarray] = {}
    for edit_name in edits:
        procedural = EDITS[edit_name]
        train_pairs = make_pairs(edit_name, train_crops)
        test_pairs = make_pairs(edit_name, test_crops)
        results_by_method = {}
        for method in chosen_methods:
            config = method.make_config(preset if preset in method.presets else None, seed=seed)
            print(f"bench: {edit_name}: learning {method.name} from {shots} pairs", flush=True)
            started = time.perf_counter()
            edit = method.learn(train_pairs, config, progress=progress)
            learn_seconds = time.perf_counter() - started
            evaluation = evaluate_edit(edit, test_pairs, seed=seed)
            mean = evaluation.mean
            rows.append(BenchRow(edit_name, procedural.kind, method.name, mean["psnr"], mean["ssim"],
                                 mean["diou"], learn_seconds, evaluation.apply_seconds_per_image))
            results_by_method[method.name] = evaluation.results
        sheet_rows = [
            SheetRow(pair.name, [pair.before, pair.after] + [results[i] for results in results_by_method.values()])
            for i, pair in enumerate(test_pairs[:4])
        ]
        sheets[f"sheet-{edit_name}"] = contact_sheet(["before", "expected"] + list(results_by_method), sheet_rows, tile=128)

    all_rows = rows + mean_rows(rows, [method.name for method in chosen_methods])
    table = markdown_table(TABLE_HEADER, [row.cells() for row in all_rows])
    settings = {"methods": methods, "edits": edits, "shots": shots, "size": size,
                "test_images": test_images, "preset": preset, "seed": seed,
                "train_photos": len(train_photos), "test_photos": len(test_photos)}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "results.md", table + "\n")
    write_report(out_dir, "analogize bench", {"settings": settings, "rows": [asdict(r) for r in all_rows]},
                 TABLE_HEADER, [row.cells() for row in all_rows], sheets,
                 notes=f"{shots} training pairs per edit, {test_images} held-out test crops of {size}×{size}.")
    print(table)
    return all_rows


def mean_rows(rows: list[BenchRow], method_names: list[str]) -> list[BenchRow]:
    """One 'mean' row per method, averaged over edits."""
    means = []
    for name in method_names:
        mine = [row for row in rows if row.method == name]
        average = lambda attribute: float(np.mean([getattr(row, attribute) for row in mine]))  # noqa: E731
        means.append(BenchRow("mean", "", name, average("psnr"), average("ssim"), average("diou"),
                              average("learn_seconds"), average("apply_seconds")))
    return means
