"""`analogize demo`: the whole pipeline on photos that ship inside installed packages.

Builds before/after pairs with one procedural edit, learns it with the best method that runs
offline, applies it to held-out photos, scores it against the exact answers and writes a report.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..editfile import save_edit
from ..evaluation import evaluate_edit, score_table
from ..images import fit_within, save_image
from ..methods import get_method
from ..report import SheetRow, contact_sheet, write_report
from ..data.corpus import crops, photos, split
from ..data.edits import EDITS, make_pairs

# colormap is the best offline method on this (colour grading) edit until fewshot beats it.
DEMO_METHOD = "colormap"
DEMO_EDIT = "grade"
TRAIN_PAIRS = 16
CROP_SIZE = 192
TEST_MAX_SIDE = 512


def run_demo(out_dir: Path, *, progress: bool = True, seed: int = 0) -> Path:
    """Run the demo into `out_dir` and return the report page."""
    train_photos, test_photos = split(photos())
    rng = np.random.default_rng(seed)
    train_pairs = make_pairs(DEMO_EDIT, crops(train_photos, TRAIN_PAIRS, CROP_SIZE, rng))
    test_images = {photo.name: fit_within(photo.load(), TEST_MAX_SIDE) for photo in test_photos}
    test_pairs = make_pairs(DEMO_EDIT, list(test_images.values()))

    method = get_method(DEMO_METHOD)
    edit = method.learn(train_pairs, method.make_config(seed=seed), progress=progress)
    edit_path = save_edit(edit, out_dir / f"{DEMO_EDIT}.edit")
    evaluation = evaluate_edit(edit, test_pairs, seed=seed, progress=progress)

    names = list(test_images)
    for name, result in zip(names, evaluation.results):
        save_image(result, out_dir / "results" / f"{name}.png")
    sheet = contact_sheet(
        ["before", f"{DEMO_METHOD} result", "expected after"],
        [SheetRow(name, [pair.before, result, pair.after])
         for name, pair, result in zip(names, test_pairs, evaluation.results)],
    )
    header, rows = score_table(evaluation, names)
    page = write_report(
        out_dir,
        f"analogize demo: '{DEMO_EDIT}' learned with {DEMO_METHOD}",
        {"edit": DEMO_EDIT, "method": DEMO_METHOD, "train_pairs": TRAIN_PAIRS,
         "learn_seconds": edit.provenance.seconds if edit.provenance else None, **evaluation.as_dict()},
        ["photo"] + header[1:],
        rows,
        {"contact_sheet": sheet},
        notes=f"{EDITS[DEMO_EDIT].description} Learned from {TRAIN_PAIRS} pairs of {CROP_SIZE}px crops of "
              f"training photos; applied to {len(names)} held-out photos. Edit file: {edit_path.name}.",
    )
    mean = evaluation.mean
    print(
        f"demo: learned '{DEMO_EDIT}' with {DEMO_METHOD} from {TRAIN_PAIRS} pairs in "
        f"{edit.provenance.seconds if edit.provenance else 0:.1f} s; mean PSNR {mean['psnr']:.2f} dB, "
        f"SSIM {mean['ssim']:.3f}, MS-SSIM {mean['ms_ssim']:.3f}, sharpness {mean['sharpness']:.2f}, "
        f"DIoU {mean['diou']:.3f} on {len(names)} held-out photos"
    )
    print(f"demo: report at {page}")
    return page
