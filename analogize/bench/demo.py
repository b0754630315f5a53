"""`analogize demo`: the whole pipeline on photos that ship inside installed packages.

Two edits, each learned from before/after pairs made of training photos, applied to held-out
photos and scored against the exact answers, in one report: a colour grade learned by colormap
(seconds), and a local filter learned by the default learner, fewshot, with fewer steps than its
`cpu` preset so the demo stays short (its scores are those of that short run, beside the
unchanged photo's, not the preset's; BENCHMARKS.md has the full runs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.corpus import crops, photos, split
from ..data.edits import EDITS, make_pairs
from ..editfile import save_edit
from ..evaluation import evaluate_edit, score_table
from ..images import fit_within, save_image
from ..methods import get_method
from ..methods.identity import IdentityEdit
from ..methods.base import MethodConfig
from ..report import SheetRow, contact_sheet, write_report

TRAIN_PAIRS = 16
TEST_MAX_SIDE = 512


@dataclass(frozen=True)
class DemoPart:
    """One edit of the demo and how it is learned."""

    edit: str
    method: str
    crop_size: int
    """Side of the training crops."""
    preset: str | None = None
    settings: dict = field(default_factory=dict)
    """Overrides of the preset (the demo's shorter runs)."""


DEMO_PARTS = (
    DemoPart("grade", "colormap", crop_size=192),
    # A relief: a filter that replaces the photo, where a blurred guess shows at once. 500 of the
    # preset's 1200 steps keep the whole demo within a few minutes on two cores.
    DemoPart("emboss", "fewshot", crop_size=128, preset="cpu", settings={"steps": 500}),
)


def run_demo(out_dir: Path, *, parts: tuple[DemoPart, ...] = DEMO_PARTS, progress: bool = True,
             seed: int = 0) -> Path:
    """Run the demo into `out_dir` and return the report page."""
    train_photos, test_photos = split(photos())
    test_images = {photo.name: fit_within(photo.load(), TEST_MAX_SIDE) for photo in test_photos}
    names = list(test_images)
    rows, sheets, metrics, notes = [], {}, {}, []
    for part in parts:
        # 1. pairs from training crops, answers for the held-out photos
        rng = np.random.default_rng(seed)
        train_pairs = make_pairs(part.edit, crops(train_photos, TRAIN_PAIRS, part.crop_size, rng))
        test_pairs = make_pairs(part.edit, list(test_images.values()))
        # 2. learn, save, apply and score; the unchanged photo is the floor to read the scores against
        method = get_method(part.method)
        edit = method.learn(train_pairs, method.make_config(part.preset, seed=seed, **part.settings), progress=progress)
        edit_path = save_edit(edit, out_dir / f"{part.edit}.edit")
        evaluation = evaluate_edit(edit, test_pairs, seed=seed, progress=progress)
        unchanged = evaluate_edit(IdentityEdit(MethodConfig()), test_pairs).mean
        # 3. results, sheet, rows
        for name, result in zip(names, evaluation.results):
            save_image(result, out_dir / "results" / part.edit / f"{name}.png")
        sheets[f"contact_sheet_{part.edit}"] = contact_sheet(
            ["before", f"{part.method} result", "expected after"],
            [SheetRow(name, [pair.before, result, pair.after])
             for name, pair, result in zip(names, test_pairs, evaluation.results)],
        )
        header, part_rows = score_table(evaluation, names)
        rows += [[f"{part.edit} · {row[0]}", *row[1:]] for row in part_rows]
        seconds = edit.provenance.seconds if edit.provenance else 0.0
        learned = f"{part.method}" + (f" ({part.preset} preset, {part.settings})" if part.preset else "")
        metrics[part.edit] = {"method": part.method, "preset": part.preset, "settings": part.settings,
                              "train_pairs": TRAIN_PAIRS, "learn_seconds": seconds, "unchanged_mean": unchanged,
                              **evaluation.as_dict()}
        notes.append(f"{part.edit}: {EDITS[part.edit].description} Learned with {learned} from {TRAIN_PAIRS} pairs "
                     f"of {part.crop_size} px crops in {seconds:.0f} s (edit file {edit_path.name}); the unchanged "
                     f"photo scores PSNR {unchanged['psnr']:.2f} dB.")
        mean = evaluation.mean
        print(f"demo: learned '{part.edit}' with {learned} from {TRAIN_PAIRS} pairs in {seconds:.1f} s; mean PSNR "
              f"{mean['psnr']:.2f} dB (unchanged photo {unchanged['psnr']:.2f}), SSIM {mean['ssim']:.3f}, "
              f"MS-SSIM {mean['ms_ssim']:.3f}, sharpness {mean['sharpness']:.2f}, DIoU {mean['diou']:.3f} "
              f"on {len(names)} held-out photos")
    page = write_report(out_dir, "analogize demo: " + ", ".join(f"'{part.edit}' learned with {part.method}"
                                                               for part in parts),
                        metrics, ["edit · photo"] + header[1:], rows, sheets,
                        notes=" ".join(notes) + f" Applied to {len(names)} held-out photos.")
    print(f"demo: report at {page}")
    return page
