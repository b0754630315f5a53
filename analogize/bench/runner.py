"""`analogize bench`: learn each procedural edit from N pairs with each method, score on held-out
photos against the exact ground truth, and write a report folder: results.md (the table),
metrics.json, one contact sheet per edit (before, each method, the answer) and index.html.

Training and test images are random square crops: training crops come only from the training
photos, test crops only from the test photos (the split is by photo), and both are fixed by the
seed, so every method sees exactly the same pairs. An edit with a `pair_size` of its own (the
whole-frame look) gets crops of that size, learned from and scored at that size. With several
shot counts (`--shots 1,3,20`) the first N training crops are the N shots, so a smaller set is
always part of a larger one.

When the run includes the plain U-Net baseline (`unet`, with or without settings), each row also
gives its PSNR margin over the U-Net's on the same edit and shots: the simplest strong learner
is the bar every method has to clear.
"""

from __future__ import annotations

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
from ..settings import parse_setting
from ..data.corpus import crops, photos, require_photos, split, validation_split
from ..data.edits import EDITS, expand_edit_names, make_pairs

MINIMUM_PHOTOS = 20
TABLE_HEADER = ["edit", "kind", "shots", "method", "PSNR", "vs unet", "SSIM", "MS-SSIM", "sharpness", "DIoU",
                "learn s", "apply s/img"]
BASELINE = "unet"
"""The method whose PSNR every row is compared with, when the run has it."""


@dataclass(frozen=True)
class MethodVariant:
    """A method with settings of its own, named as written: `pix2pix[steps=2400]` gives pix2pix
    the training time of a slower method, `fewshot[n_to_n=false]` is one row of an ablation.
    Values are read as `learn --set` reads them (settings.parse_setting)."""

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
    overrides = dict(parse_setting(setting, f"--methods {spec}")
                     for setting in filter(None, (match["settings"] or "").split(",")))
    return MethodVariant(spec, get_method(match["name"]), overrides)


@dataclass
class BenchRow:
    edit: str
    kind: str
    shots: int
    method: str
    psnr: float
    ssim: float
    ms_ssim: float
    sharpness: float
    diou: float
    learn_seconds: float
    apply_seconds: float
    psnr_over_baseline: float | None = None
    """PSNR minus the U-Net baseline's on the same edit and shots; None without a baseline."""

    def cells(self) -> list[object]:
        margin = "" if self.psnr_over_baseline is None else f"{self.psnr_over_baseline:+.2f}"
        return [self.edit, self.kind, self.shots, self.method, self.psnr, margin, self.ssim, self.ms_ssim,
                self.sharpness, self.diou, self.learn_seconds, self.apply_seconds]


def run_bench(
    methods: list[str],
    edits: list[str],
    *,
    shots: int | list[int] = 20,
    size: int = 128,
    test_images: int = 12,
    preset: str | None = None,
    seed: int = 0,
    out_dir: Path = Path("bench-output"),
    minimum_photos: int = MINIMUM_PHOTOS,
    validation: bool = False,
    progress: bool = True,
) -> list[BenchRow]:
    """Run every (edit, shots, method) combination and write the report folder `out_dir`. A method
    may be given with settings of its own (see MethodVariant); `edits` may name sets (edits.EDIT_SETS).
    With `validation` both sides come from the training photos (corpus.validation_split), so
    settings can be chosen without ever scoring on the test photos."""
    edits = expand_edit_names(edits)
    shot_counts = [shots] if isinstance(shots, int) else list(shots)
    if not shot_counts or min(shot_counts) < 1:
        raise AnalogizeError(f"--shots: {shots}; give one or more pair counts of at least 1")
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
    if validation:
        train_photos, test_photos = validation_split(train_photos)
    crop_sets = CropSets(train_photos, test_photos, max(shot_counts), test_images, seed, size)

    rows: list[BenchRow] = []
    sheets: dict[str, np.ndarray] = {}
    for edit_name in edits:
        procedural = EDITS[edit_name]
        train_crops, test_crops = crop_sets.at(procedural.pair_size or size)
        test_pairs = make_pairs(edit_name, test_crops)
        for shot_count in shot_counts:
            train_pairs = make_pairs(edit_name, train_crops[:shot_count])
            results_by_method = {}
            for variant in variants:
                print(f"bench: {edit_name}: learning {variant.label} from {shot_count} pairs", flush=True)
                started = time.perf_counter()
                edit = variant.method.learn(train_pairs, configs[variant.label], progress=progress)
                learn_seconds = time.perf_counter() - started
                evaluation = evaluate_edit(edit, test_pairs, seed=seed)
                mean = evaluation.mean
                rows.append(BenchRow(edit_name, procedural.kind, shot_count, variant.label, mean["psnr"],
                                     mean["ssim"], mean["ms_ssim"], mean["sharpness"], mean["diou"], learn_seconds,
                                     evaluation.apply_seconds_per_image))
                results_by_method[variant.label] = evaluation.results
            sheet_rows = [
                SheetRow(pair.name, [pair.before] + [results[i] for results in results_by_method.values()] + [pair.after])
                for i, pair in enumerate(test_pairs[:4])
            ]
            suffix = "" if len(shot_counts) == 1 else f"-{shot_count}shots"
            sheets[f"sheet-{edit_name}{suffix}"] = contact_sheet(["before"] + list(results_by_method) + ["expected"],
                                                                 sheet_rows, tile=128)

    all_rows = rows + mean_rows(rows, labels, shot_counts)
    add_baseline_margins(all_rows, labels)
    table = markdown_table(TABLE_HEADER, [row.cells() for row in all_rows])
    settings = {"methods": methods, "edits": edits, "shots": shot_counts, "size": size,
                "test_images": test_images, "preset": preset, "seed": seed, "validation": validation,
                "train_photos": len(train_photos), "test_photos": len(test_photos)}
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "results.md", table + "\n")
    write_report(out_dir, "analogize bench", {"settings": settings, "rows": [asdict(r) for r in all_rows]},
                 TABLE_HEADER, [row.cells() for row in all_rows], sheets,
                 notes=f"{', '.join(map(str, shot_counts))} training pairs per edit, {test_images} held-out "
                       f"{'validation' if validation else 'test'} crops of {size}×{size} (edits with a pair size of their own: at that size).")
    print(table)
    return all_rows


class CropSets:
    """The benchmark's training and test crops at each size an edit asks for, drawn once per size:
    the `--size` crops from `seed` alone (as they always were), others from (seed, size), so the
    crops of one size never depend on which other edits ran."""

    def __init__(self, train_photos, test_photos, train_count: int, test_count: int, seed: int, size: int):
        self.train_photos, self.test_photos = train_photos, test_photos
        self.train_count, self.test_count, self.seed, self.size = train_count, test_count, seed, size
        self.by_size: dict[int, tuple[list[np.ndarray], list[np.ndarray]]] = {}

    def at(self, size: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        if size not in self.by_size:
            rng = np.random.default_rng(self.seed if size == self.size else [self.seed, size])
            self.by_size[size] = (crops(self.train_photos, self.train_count, size, rng),
                                  crops(self.test_photos, self.test_count, size, rng))
        return self.by_size[size]


def mean_rows(rows: list[BenchRow], method_names: list[str], shot_counts: list[int]) -> list[BenchRow]:
    """One 'mean' row per method and shot count, averaged over edits."""
    means = []
    for shot_count in shot_counts:
        for name in method_names:
            mine = [row for row in rows if row.method == name and row.shots == shot_count]
            average = lambda attribute: float(np.mean([getattr(row, attribute) for row in mine]))  # noqa: E731
            means.append(BenchRow("mean", "", shot_count, name, *(average(attribute) for attribute in (
                "psnr", "ssim", "ms_ssim", "sharpness", "diou", "learn_seconds", "apply_seconds"))))
    return means


def add_baseline_margins(rows: list[BenchRow], labels: list[str]) -> None:
    """Set each row's PSNR margin over the U-Net baseline's row of the same edit and shots."""
    baseline = next((label for label in labels if parse_variant(label).method.name == BASELINE), None)
    if baseline is None:
        return
    reference = {(row.edit, row.shots): row.psnr for row in rows if row.method == baseline}
    for row in rows:
        row.psnr_over_baseline = row.psnr - reference[(row.edit, row.shots)]
