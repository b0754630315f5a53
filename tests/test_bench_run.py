"""The benchmark runner and the demo, end to end at toy sizes."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from analogize.bench.demo import DEMO_PARTS, run_demo
from analogize.bench.runner import parse_variant, run_bench, split_methods
from analogize.errors import AnalogizeError
from analogize.images import load_image


def test_bench_scores_every_method_on_every_edit(tmp_path):
    rows = run_bench(["identity", "colormap", "pix2pix"], ["grade", "vignette"], shots=3, size=32,
                     test_images=2, preset="tiny", minimum_photos=5, out_dir=tmp_path, progress=False)
    by_key = {(row.edit, row.method): row for row in rows}
    assert set(by_key) == {(edit, method) for edit in ("grade", "vignette", "mean")
                           for method in ("identity", "colormap", "pix2pix")}
    # a colour grade is exactly what a colour LUT can learn; doing nothing cannot
    assert by_key["grade", "colormap"].psnr > by_key["grade", "identity"].psnr + 5
    assert by_key["grade", "identity"].diou < 1.0
    table = (tmp_path / "results.md").read_text()
    assert table.startswith("| edit | kind | shots | method | PSNR | vs unet | SSIM | MS-SSIM | sharpness | DIoU")
    assert table.count("\n") == 2 + len(rows)
    assert len(json.loads((tmp_path / "metrics.json").read_text())["rows"]) == len(rows)
    sheet = load_image(tmp_path / "sheet-grade.png")
    assert sheet.std() > 0.05


def test_demo_learns_both_edits_and_reports_on_held_out_photos(tmp_path, capsys):
    """The demo's own parts, with fewshot cut to a few steps of its tiny preset so the test is quick."""
    settings = {"steps": 3, "crop_size": 64, "ensemble_size": 1}  # 64 px tiles: few per photo
    parts = (DEMO_PARTS[0], replace(DEMO_PARTS[1], preset="tiny", settings=settings))
    page = run_demo(tmp_path, parts=parts, progress=False)
    assert page.is_file()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics) == {"grade", "emboss"} and metrics["emboss"]["method"] == "fewshot"
    assert metrics["grade"]["mean"]["psnr"] > 30 > metrics["grade"]["unchanged_mean"]["psnr"]
    for edit in ("grade", "emboss"):
        assert len(list((tmp_path / "results" / edit).glob("*.png"))) == len(metrics[edit]["pairs"]) >= 2
        assert (tmp_path / f"{edit}.edit").is_file()
        assert load_image(tmp_path / f"contact_sheet_{edit}.png").std() > 0.05
    printed = capsys.readouterr().out
    assert f"learned 'emboss' with fewshot (tiny preset, {settings})" in printed and "unchanged photo" in printed


def test_bench_runs_a_method_with_settings_of_its_own_beside_the_plain_one(tmp_path):
    rows = run_bench(["identity", "pix2pix", "pix2pix[steps=2,learning_rate=0.0]"], ["grade"], shots=3, size=32,
                     test_images=2, preset="tiny", minimum_photos=5, out_dir=tmp_path, progress=False)
    by_method = {row.method: row for row in rows if row.edit == "grade"}
    assert set(by_method) == {"identity", "pix2pix", "pix2pix[steps=2,learning_rate=0.0]"}
    # learning rate 0 leaves the generator as initialised: not the trained pix2pix's result
    assert by_method["pix2pix[steps=2,learning_rate=0.0]"].psnr != by_method["pix2pix"].psnr
    assert "| pix2pix[steps=2,learning_rate=0.0] |" in (tmp_path / "results.md").read_text()


def test_method_variants_are_read_from_the_command_line_form():
    assert split_methods("identity,fewshot[n_to_n=false,steps=300],pix2pix") == [
        "identity", "fewshot[n_to_n=false,steps=300]", "pix2pix"]
    variant = parse_variant("fewshot[n_to_n=false, steps=300]")
    assert variant.method.name == "fewshot" and variant.overrides == {"n_to_n": False, "steps": 300}
    for wrong in ("fewshot[n_to_n]", "fewshot[", "nosuchmethod"):
        with pytest.raises(AnalogizeError):
            parse_variant(wrong)


def test_bench_refuses_an_unknown_setting_before_training(tmp_path):
    with pytest.raises(AnalogizeError, match="unknown setting"):
        run_bench(["pix2pix[no_such_setting=1]"], ["grade"], shots=3, size=32, test_images=2, preset="tiny",
                  minimum_photos=5, out_dir=tmp_path, progress=False)


def test_a_shots_curve_with_the_unet_margin_and_an_edit_with_pairs_of_its_own_size(tmp_path):
    rows = run_bench(["identity", "unet"], ["blur", "frame"], shots=[1, 2], size=32, test_images=2, preset="tiny",
                     minimum_photos=5, out_dir=tmp_path, progress=False)
    by_key = {(row.edit, row.shots, row.method): row for row in rows}
    assert set(by_key) == {(edit, shots, method) for edit in ("blur", "frame", "mean") for shots in (1, 2)
                           for method in ("identity", "unet")}
    for row in rows:  # every row's margin is over the U-Net's row of the same edit and shots
        assert row.psnr_over_baseline == pytest.approx(row.psnr - by_key[row.edit, row.shots, "unet"].psnr)
        assert row.sharpness > 0 and 0 < row.ms_ssim <= 1
    assert by_key["blur", 1, "unet"].psnr_over_baseline == 0.0
    assert "| +0.00 |" in (tmp_path / "results.md").read_text()
    # the whole-frame edit is scored on its own 512 px pairs: its sheet shows them at tile size
    settings = json.loads((tmp_path / "metrics.json").read_text())["settings"]
    assert settings["shots"] == [1, 2]
    for name in ("sheet-blur-1shots", "sheet-frame-2shots"):
        assert load_image(tmp_path / f"{name}.png").std() > 0.05


def test_a_validation_run_scores_on_training_side_photos_only(tmp_path, monkeypatch):
    """--validation: both its sides come from the training photos, so choices never see a test photo."""
    from analogize.bench import runner
    from analogize.data import corpus
    from analogize.images import save_image

    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(40):  # enough scenes that the training side splits again
        save_image(rng.random((48, 48, 3), dtype=np.float32), folder / f"scene{index}.png")
    monkeypatch.setenv(corpus.PHOTOS_ENV, str(folder))
    cropped_from = []
    real_crops = runner.crops
    monkeypatch.setattr(runner, "crops", lambda photos, *args: cropped_from.append([p.name for p in photos])
                        or real_crops(photos, *args))
    run_bench(["identity"], ["grade"], shots=2, size=32, test_images=2, minimum_photos=5, out_dir=tmp_path / "out",
              validation=True, progress=False)
    train, test = corpus.split(corpus.photos())
    fit, validation = corpus.validation_split(train)
    assert cropped_from == [[p.name for p in fit], [p.name for p in validation]]
    assert not set(cropped_from[1]) & {p.name for p in test}
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["settings"]["validation"] is True


def test_a_contact_sheet_wraps_a_long_column_title_within_its_column():
    from PIL import Image, ImageDraw

    from analogize.report import SheetRow, contact_sheet, wrap_to_width

    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label = "fewshot[steps=300,affine_output=true,decoder_convolutions=2]"
    lines = wrap_to_width(label, 64, draw)
    assert "".join(lines) == label and len(lines) > 1
    assert all(draw.textlength(line) <= 64 for line in lines)
    grey = np.full((64, 64, 3), 0.5, dtype=np.float32)
    short = contact_sheet(["a", "b"], [SheetRow("row", [grey, grey])], tile=64)
    wrapped = contact_sheet(["a", label], [SheetRow("row", [grey, grey])], tile=64)
    assert wrapped.shape[0] == short.shape[0] + 18 * (len(lines) - 1)  # taller by the extra title lines


def test_merged_runs_give_a_shots_curve_with_a_column_per_pair_count(tmp_path):
    settings = {"edits": ["blur"], "shots": [1, 5], "size": 32, "seed": 0}
    for folder, method, scores in (("a", "fewshot", (20.0, 25.0)), ("b", "unet", (18.0, 26.5))):
        rows = [dict(edit=edit, kind="local" if edit == "blur" else "", shots=shots, method=method, psnr=psnr,
                     ssim=0.5, ms_ssim=0.5, sharpness=1.0, diou=0.5, learn_seconds=1.0, apply_seconds=0.1)
                for edit in ("blur", "mean") for shots, psnr in zip((1, 5), scores)]
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "metrics.json").write_text(
            json.dumps({"settings": {**settings, "methods": [method]}, "rows": rows}))
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "merge_bench.py"
    for metric, expected in (("psnr", "| blur | fewshot | 20.00 | 25.00 |"),
                             ("psnr_over_baseline", "| blur | fewshot | 2.000 | -1.500 |")):
        printed = subprocess.run([sys.executable, str(script), "--by-shots", metric, str(tmp_path / "a"),
                                  str(tmp_path / "b")], capture_output=True, text=True, check=True).stdout
        assert printed.splitlines()[0] == f"| edit | method | {metric} at 1 | {metric} at 5 |"
        assert expected in printed and "| mean | unet |" in printed
    refused = subprocess.run([sys.executable, str(script), "--by-shots", "speed", str(tmp_path / "a")],
                             capture_output=True, text=True)
    assert refused.returncode != 0 and "invalid choice: 'speed'" in refused.stderr
