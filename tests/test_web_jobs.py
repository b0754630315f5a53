"""The web app's server side without a browser: jobs, limits and what the server refuses."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile

import numpy as np
import pytest

from analogize.cli import build_parser
from analogize.errors import AnalogizeError
from analogize.images import load_image
from analogize.web.jobs import Jobs, Limits, stop_gently
from conftest import free_port, random_image, warm_edit, write_image


def pair_files(folder, count=2):
    before, after = [], []
    for index in range(count):
        image = random_image(24, 32, seed=index)
        before.append(write_image(image, folder / "before" / f"p{index}.png"))
        after.append(write_image(warm_edit(image), folder / "after" / f"p{index}.png"))
    return before, after


def wait_until_finished(jobs: Jobs, job: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while (status := jobs.training_status(job)).state == "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    return status


def test_a_training_job_learns_and_its_edit_applies(tmp_path):
    jobs = Jobs(tmp_path / "work")
    before, after = pair_files(tmp_path / "upload")
    job = jobs.start_training(before, after, None, "colormap", None, None)
    status = wait_until_finished(jobs, job)
    assert status.state == "done", status.message
    assert jobs.latest_training() == job
    assert [name for _, name in jobs.finished_edits()] == [job]

    photo = write_image(random_image(20, 30, seed=9), tmp_path / "photo.png")
    strength_map = np.zeros((10, 15), np.float32)
    strength_map[:, :7] = 1.0
    inputs, results, errors = jobs.apply(jobs.edit_of_training(job), [photo], 1.0, strength_map)
    assert errors == [] and len(results) == 1
    result, original = load_image(results[0]), load_image(photo)
    assert np.abs(result[:, 16:] - original[:, 16:]).max() <= 1 / 255 + 1e-6
    assert np.abs(result[:, :12] - warm_edit(original)[:, :12]).mean() < 0.03
    with zipfile.ZipFile(results[0].parent.parent / "results.zip") as archive:
        assert sorted(archive.namelist()) == ["photo.png", "strength-map.png"]


def test_only_one_training_runs_at_a_time(tmp_path):
    jobs = Jobs(tmp_path / "work")
    before, after = pair_files(tmp_path / "upload")
    job = jobs.start_training(before, after, None, "pix2pix", "tiny", 100_000)
    try:
        with pytest.raises(AnalogizeError, match=f"training job {job} is still running"):
            jobs.start_training(before, after, None, "colormap", None, None)
    finally:
        jobs.cancel_training(job)
    assert jobs.training_status(job).state == "cancelled"


def test_a_zip_of_a_pairs_folder_is_unpacked(tmp_path):
    before, after = pair_files(tmp_path / "mine")
    archive = tmp_path / "pairs.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in before + after:
            zipped.write(path, f"mine/{path.parent.name}/{path.name}")
    jobs = Jobs(tmp_path / "work")
    job = jobs.start_training([], [], archive, "colormap", None, None)
    assert wait_until_finished(jobs, job).state == "done"


@pytest.mark.parametrize("member, message", [("../escape/p0.png", "unsafe path"), ("/abs/p0.png", "unsafe path")])
def test_a_zip_reaching_outside_its_folder_is_refused(tmp_path, member, message):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr(member, b"not really")
    with pytest.raises(AnalogizeError, match=message):
        Jobs(tmp_path / "work").start_training([], [], archive, "colormap", None, None)
    assert not (tmp_path / "escape").exists()


def test_uploads_over_the_limits_are_refused_with_the_way_out(tmp_path):
    jobs = Jobs(tmp_path / "work", Limits(max_pairs=1, max_photos=1, max_unzipped_bytes=10))
    before, after = pair_files(tmp_path / "upload")
    with pytest.raises(AnalogizeError, match="2 pairs uploaded; the limit is 1"):
        jobs.start_training(before, after, None, "colormap", None, None)
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("before/p0.png", b"x" * 100)
    with pytest.raises(AnalogizeError, match="unpacks to more than"):
        jobs.start_training([], [], archive, "colormap", None, None)
    with pytest.raises(AnalogizeError, match="2 photos uploaded; the limit is 1"):
        jobs.apply(tmp_path / "any.edit", before, 1.0, None)
    assert list((tmp_path / "work" / "train").iterdir()) == []  # refused uploads leave nothing behind


def test_job_ids_from_the_page_cannot_name_other_folders(tmp_path):
    jobs = Jobs(tmp_path / "work")
    for job in ("../../etc", "..", "", "ABCDEF123456"):
        with pytest.raises(AnalogizeError, match="reload the page"):
            jobs.training_status(job)


def test_a_broken_photo_is_reported_and_the_rest_are_edited(tmp_path):
    jobs = Jobs(tmp_path / "work")
    before, after = pair_files(tmp_path / "upload")
    job = jobs.start_training(before, after, None, "colormap", None, None)
    wait_until_finished(jobs, job)
    good = write_image(random_image(8, 8), tmp_path / "good.png")
    broken = tmp_path / "broken.png"
    broken.write_text("no")
    _, results, errors = jobs.apply(jobs.edit_of_training(job), [broken, good], 1.0, None)
    assert [path.name for path in results] == ["good.png"]
    assert len(errors) == 1 and errors[0].startswith("broken.png: ") and "\n" not in errors[0]


def test_the_web_batch_and_the_command_line_write_the_same_files_and_failures(tmp_path, monkeypatch, capsys):
    """One batch apply below both front ends: the same photos (one unreadable, one that makes the
    method itself raise a non-AnalogizeError) give byte-identical results and the same failures
    through `analogize apply` and the web app's Jobs.apply, and neither stops at a failure."""
    from analogize.cli import main
    from analogize.methods.colormap import ColorMapEdit

    jobs = Jobs(tmp_path / "work")
    before, after = pair_files(tmp_path / "upload")
    job = jobs.start_training(before, after, None, "colormap", None, None)
    assert wait_until_finished(jobs, job).state == "done"
    edit_path = jobs.edit_of_training(job)

    photos = tmp_path / "photos"
    write_image(random_image(20, 30, seed=1), photos / "a.png")
    write_image(random_image(13, 13, seed=2), photos / "crashes.png")
    (photos / "broken.png").write_text("no")
    write_image(random_image(16, 20, seed=3), photos / "z.png")
    original_edit = ColorMapEdit.edit

    def crash_on_13_pixels_wide(self, image, **kwargs):
        if image.shape[1] == 13:
            raise RuntimeError("the method broke")
        return original_edit(self, image, **kwargs)

    monkeypatch.setattr(ColorMapEdit, "edit", crash_on_13_pixels_wide)

    assert main(["apply", str(edit_path), str(photos), "-o", str(tmp_path / "cli"), "--quiet"]) == 2
    printed = capsys.readouterr()
    assert printed.err.count("analogize: error:") == 2 and "applied colormap to 2 of 4" in printed.out
    inputs, results, errors = jobs.apply(edit_path, sorted(photos.iterdir()), 1.0, None)

    assert [path.name for path in results] == ["a.png", "z.png"] == [path.name for path in inputs]
    for result in results:
        assert result.read_bytes() == (tmp_path / "cli" / result.name).read_bytes()
    assert [error.split(":")[0] for error in errors] == ["broken.png", "crashes.png"]
    assert errors[1] == "crashes.png: RuntimeError: the method broke" and str(photos) not in "".join(errors)
    cli_summary = json.loads((tmp_path / "cli" / "analogize-apply.json").read_text())
    web_summary = json.loads((results[0].parent / "analogize-apply.json").read_text())
    assert cli_summary["failed"] == web_summary["failed"]
    assert (cli_summary["done"], web_summary["done"], web_summary["images"]) == (2, 2, 4)


def test_a_pixels_edit_through_the_web_and_the_command_line_gives_the_same_result_and_history(
        tmp_path, tiny_backbones, capsys):
    """One PIXELS operation below both front ends: the same photo, exemplar, map and settings
    give byte-identical results and histories with the same fields and settings, and a result
    edited again continues its history in both."""
    from analogize.cli import main

    models = tmp_path / "models"
    models.mkdir()
    (models / "tiny-sd").symlink_to(tiny_backbones["sd"])
    jobs = Jobs(tmp_path / "work", models_dir=models)
    photo = write_image(random_image(24, 32, seed=0), tmp_path / "photo.png")
    exemplar = write_image(random_image(24, 32, seed=1), tmp_path / "exemplar.png")
    paint = np.zeros((24, 32), np.float32)
    paint[:, 16:] = 1.0

    result, history = jobs.pixels(photo, exemplar, paint, "tiny-sd", steps=3, seed=4)
    again, chained = jobs.pixels(result, exemplar, paint, "tiny-sd", steps=3, seed=4, history=history)
    edit_map = result.parent / "map.png"
    common = ["--exemplar", str(exemplar), "--map", str(edit_map), "--base-model", str(models / "tiny-sd"),
              "--steps", "3", "--seed", "4", "--resolution", "512", "--quiet"]
    assert main(["edit", str(photo), "-o", str(tmp_path / "once.png"), *common]) == 0
    assert main(["edit", str(tmp_path / "once.png"), "-o", str(tmp_path / "twice.png"), *common]) == 0
    capsys.readouterr()

    assert result.read_bytes() == (tmp_path / "once.png").read_bytes()
    assert again.read_bytes() == (tmp_path / "twice.png").read_bytes()
    from_cli = json.loads((tmp_path / "twice.png.history.json").read_text())
    from_web = json.loads((again.parent / "result.png.history.json").read_text())
    assert from_web == chained and len(from_web) == len(from_cli) == 2
    paths = {"source", "result", "exemplars"}
    for web_step, cli_step in zip(from_web, from_cli):
        assert web_step.keys() == cli_step.keys()
        assert {key: value for key, value in web_step.items() if key not in paths} == \
               {key: value for key, value in cli_step.items() if key not in paths}
    assert from_web[1]["source"] == str(again.parent / "source.png") and from_web[0]["result"] == str(result)


def test_paint_by_example_through_the_web_and_the_command_line_gives_the_same_result(tmp_path, capsys):
    """The same photo, painted region, exemplar, model and settings repaint the same pixels
    through `analogize paint` and the web app's Paint by Example screen."""
    from analogize.cli import main
    from analogize.tiny_backbones import write_tiny_paint_by_example

    models = tmp_path / "models"
    write_tiny_paint_by_example(models / "tiny-pbe")
    jobs = Jobs(tmp_path / "work", models_dir=models)
    photo = write_image(random_image(32, 40, seed=0), tmp_path / "photos" / "photo.png")
    exemplar = write_image(random_image(20, 20, seed=1), tmp_path / "exemplar.png")
    paint = np.zeros((32, 40), np.float32)
    paint[8:24, 10:30] = 1.0

    from_web = jobs.paint_by_example(photo, exemplar, paint, "tiny-pbe", steps=3, guidance=5.0, seed=2)
    assert main(["paint", str(photo), "--mask", str(from_web.parent / "mask.png"), "--exemplar", str(exemplar),
                 "--base-model", str(models / "tiny-pbe"), "--steps", "3", "--guidance", "5", "--seed", "2",
                 "-o", str(tmp_path / "cli"), "--quiet"]) == 0
    capsys.readouterr()
    assert from_web.read_bytes() == (tmp_path / "cli" / "photo.png").read_bytes()


def test_the_server_listens_on_this_machine_only_and_serves_no_other_files(tmp_path):
    from analogize.web.app import serve

    assert build_parser().parse_args(["serve"]).host == "127.0.0.1"
    server = serve(tmp_path / "work", "127.0.0.1", free_port(), 5, block=False)
    url = server.url
    try:
        secret = tmp_path / "secret.txt"
        secret.write_text("private")
        for path in (secret, "/etc/passwd", "../../../../etc/passwd"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"{url}gradio_api/file={path}")
            assert refused.value.code in (403, 404)
    finally:
        server.close()


def test_a_method_without_its_pretrained_weights_gives_the_reason_before_any_job(tmp_path, tiny_backbones,
                                                                                   tiny_hypernetwork):
    models = tmp_path / "models"
    models.mkdir()
    (models / "tiny-sd").symlink_to(tiny_backbones["sd"])
    (models / "loc-hypernetwork").symlink_to(tiny_hypernetwork)
    jobs = Jobs(tmp_path / "work", models_dir=models)
    before, after = pair_files(tmp_path / "upload")
    for method, name, reason in (("pairedit", None, "pairedit needs a pretrained FLUX.1 or Stable Diffusion.*choose one "
                                                    "of this server's models: loc-hypernetwork, tiny-sd"),
                                 ("pairedit", "nowhere", "'nowhere' is not one of this server's models"),
                                 ("loc", None, "loc needs a hypernetwork folder from `analogize train-loc`")):
        with pytest.raises(AnalogizeError, match=reason):
            jobs.start_training(before, after, None, method, "tiny", 2, name)
    assert list((tmp_path / "work" / "train").iterdir()) == []
    job = jobs.start_training(before, after, None, "pairedit", "tiny", 2, "tiny-sd")
    assert wait_until_finished(jobs, job, timeout=120).state == "done"
    job = jobs.start_training(before, after, None, "loc", "tiny", None, "loc-hypernetwork")  # --hypernetwork
    assert wait_until_finished(jobs, job, timeout=120).state == "done"


def test_the_page_names_models_only_by_their_folder_under_models_dir(tmp_path, tiny_backbones):
    """A visitor picks a model by name; a path of any kind, even to a real model, is refused, and
    a server without --models-dir says how to enable pretrained models."""
    models = tmp_path / "models"
    models.mkdir()
    (models / "tiny-sd").symlink_to(tiny_backbones["sd"])
    (models / ".hidden").mkdir()
    photo = write_image(random_image(16, 16), tmp_path / "photo.png")
    jobs = Jobs(tmp_path / "work", models_dir=models)
    assert jobs.available_models() == ["tiny-sd"]
    for name in (str(tiny_backbones["sd"]), str(models / "tiny-sd"), "../models/tiny-sd", "tiny-sd/", ".hidden", "."):
        with pytest.raises(AnalogizeError, match="not one of this server's models"):
            jobs.pixels(photo, photo, None, name, steps=1, seed=0)
        with pytest.raises(AnalogizeError, match="not one of this server's models"):
            jobs.paint_by_example(photo, photo, np.ones((16, 16), np.float32), name, steps=1, guidance=1.0, seed=0)
    result, _ = jobs.pixels(photo, photo, None, "tiny-sd", steps=1, seed=0)
    assert result.is_file()
    closed = Jobs(tmp_path / "closed")
    with pytest.raises(AnalogizeError, match="start it with --models-dir DIR"):
        closed.pixels(photo, photo, None, str(tiny_backbones["sd"]), steps=1, seed=0)
    assert closed.available_models() == []


def test_a_lost_interrupt_is_sent_again_before_anything_is_killed():
    # The child swallows its first SIGINT, as a child that is still starting can.
    child = subprocess.Popen([sys.executable, "-c", (
        "import signal, sys, time\n"
        "seen = []\n"
        "def handler(*_):\n"
        "    seen.append(1)\n"
        "    if len(seen) == 2: sys.exit(7)\n"
        "signal.signal(signal.SIGINT, handler)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    stop_gently(child, patience=20.0)
    assert child.returncode == 7  # exited through its own handler on the second SIGINT, not killed
