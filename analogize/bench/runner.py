"""`analogize bench`: learn each procedural edit from N pairs with each method, score on held-out
photos against the exact ground truth, and write a report folder: results.md (the table),
metrics.json, one contact sheet per edit and index.html.

Training and test images are random square crops: training crops come only from the training
photos, test crops only from the test photos (the split is by photo), and both are fixed by the
seed, so every method sees exactly the same pairs.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import write_text_atomic
from ..errors import AnalogizeError
from ..evaluation import evaluate_edit
from ..methods import get_method
from ..methods.base import Method
from ..report import SheetRow, contact_sheet, markdown_table, write_report
from .corpus import crops, photos, require_photos, split
from .edits import EDITS, make_pairs

MINIMUM_PHOTOS = 20
TABLE_HEADER = ["edit", "kind", "method", "PSNR", "SSIM", "DIoU", "learn s", "apply s/img"]


@dataclass(frozen=True)
class MethodVariant:
    """A method with settings of its own, named as written: `pix2pix[steps=2400]` gives pix2pix
    the training time of a slower method, `fewshot[n_to_n=false]` is one row of an ablation.
    Values are JSON (numbers, true/false, "strings"); bare words are taken as strings."""

    label: str
    method: Method
    overrides: dict = field(default_factory=dict)


VARIANT_PATTERN = re.compile(r"^(?P<name>[\w-]+)(?:\[(?P<settings>[^\]]*)\])?$")


def split_methods(text: str) -> list[str]:
    """--methods splits at commas outside brackets: "a,b[x=1,y=2]" -> ["a", "b[x=1,y=2]"]."""
    return [part for part in re.split(r",(?![^\[]*\])", text) if part]


def parse_variant(spec: str) -> MethodVariant:
    spec = spec.replace(" ", "")
    match = VARIANT_PATTERN.match(spec)
    if not match:
        raise AnalogizeError(f"--methods: cannot read {spec!r}; write NAME or NAME[setting=value,...]")
    overrides = {}
    for setting in filter(None, (match["settings"] or "").split(",")):
        key, equals, value = setting.partition("=")
        if not equals or not key:
            raise AnalogizeError(f"--methods: {spec!r}: {setting!r} is not setting=value")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return MethodVariant(spec, get_method(match["name"]), overrides)


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
    """Run every (edit, method) combination and write the report folder `out_dir`. A method may be
    given with settings of its own (see MethodVariant)."""
    unknown = [name for name in edits if name not in EDITS]
    if unknown:
        raise AnalogizeError(f"--edits: unknown edit(s) {', '.join(unknown)}; choose from {', '.join(EDITS)}")
    variants = [parse_variant(spec) for spec in methods]
    labels = [variant.label for variant in variants]
    if len(set(labels)) < len(labels):
        raise AnalogizeError(f"--methods: a method is listed twice ({', '.join(labels)}); list each once")
    configs = {variant.label: variant.method.make_config(preset if preset in variant.method.presets else None,
                                                         **{"seed": seed, **variant.overrides})
               for variant in variants}  # a wrong setting fails here, before anything trains
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
        for variant in variants:
            print(f"bench: {edit_name}: learning {variant.label} from {shots} pairs", flush=True)
            started = time.perf_counter()
            edit = variant.method.learn(train_pairs, configs[variant.label], progress=progress)
            learn_seconds = time.perf_counter() - started
            evaluation = evaluate_edit(edit, test_pairs, seed=seed)
            mean = evaluation.mean
            rows.append(BenchRow(edit_name, procedural.kind, variant.label, mean["psnr"], mean["ssim"],
                                 mean["diou"], learn_seconds, evaluation.apply_seconds_per_image))
            results_by_method[variant.label] = evaluation.results
        sheet_rows = [
            SheetRow(pair.name, [pair.before, pair.after] + [results[i] for results in results_by_method.values()])
            for i, pair in enumerate(test_pairs[:4])
        ]
        sheets[f"sheet-{edit_name}"] = contact_sheet(["before", "expected"] + list(results_by_method), sheet_rows, tile=128)

    all_rows = rows + mean_rows(rows, labels)
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
