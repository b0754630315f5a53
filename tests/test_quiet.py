"""Quiet by default, progress where the work is long.

The command line keeps the libraries' warnings and notices off stderr unless --verbose, so a
failing command prints our one line; our own log records still show. The long loops (PIXELS,
Paint by Example, pairedit's apply, the training loop) draw a tqdm bar on stderr when asked to,
and nothing otherwise; the samplers report steps through a callback, which the web page uses."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from analogize.backbones import BackboneConfig, load_backbone
from analogize.cli import LIBRARY_VERBOSITY, build_parser
from analogize.methods import get_method
from analogize.methods.paint_by_example import PaintByExampleModel, paint
from analogize.methods.pixels import Exemplar, pixels_edit
from analogize.pairs import Pair, PairSet
from analogize.tiny_backbones import write_tiny_paint_by_example
from analogize.training import LoopSettings, run_training
from conftest import random_image, warm_edit, write_image
from test_training import LinearRegressionTask


def without_our_settings() -> dict[str, str]:
    """This process's environment less the variables `quiet_libraries` sets: a command run in
    it starts as a user's shell would (an earlier in-process `main` may have set them here)."""
    return {name: value for name, value in os.environ.items() if name not in LIBRARY_VERBOSITY}


def run_command(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "analogize", *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=without_our_settings())


def test_a_failing_command_prints_our_one_line_and_verbose_adds_the_libraries(tiny_backbones, tmp_path):
    broken = shutil.copytree(tiny_backbones["sd"], tmp_path / "broken")
    (broken / "unet" / "config.json").unlink()
    photo = write_image(random_image(), tmp_path / "photo.png")
    command = ("edit", photo, "--exemplar", photo, "-o", tmp_path / "out.png", "--base-model", broken)

    quiet = run_command(*command)
    assert quiet.returncode == 2
    lines = quiet.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("analogize: error: ") and "loading its diffusers pipeline failed" in lines[0], quiet.stderr

    verbose = run_command(*command, "--verbose")
    assert verbose.returncode == 2
    assert verbose.stderr.splitlines()[-1] == lines[0]
    if importlib.util.find_spec("torchvision") is None:  # what transformers has to say on this machine
        assert "[transformers]" in verbose.stderr and "torchvision" in verbose.stderr, verbose.stderr


def test_quiet_libraries_keeps_our_own_log_records():
    """Library records, logged before or after their import, and Python warnings are dropped;
    the "analogize" logger's warnings are not."""
    script = (
        "import logging, warnings\n"
        "from analogize.cli import quiet_libraries\n"
        "quiet_libraries()\n"
        "import transformers, diffusers\n"
        "transformers.utils.logging.get_logger('transformers.some_part').warning('transformers says')\n"
        "diffusers.utils.logging.get_logger('diffusers.some_part').warning('diffusers says')\n"
        "logging.getLogger('accelerate.some_part').warning('accelerate says')\n"
        "warnings.warn('a library warns', UserWarning)\n"
        "logging.getLogger('analogize.training').warning('no checkpoint to resume from')\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                               env=without_our_settings())
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == "no checkpoint to resume from\n"


@pytest.mark.parametrize("argv, verbose", [
    (["methods"], False), (["--verbose", "methods"], True), (["methods", "--verbose"], True), (["-v", "methods"], True),
])
def test_verbose_is_taken_before_or_after_the_command(argv, verbose):
    assert build_parser().parse_args(argv).verbose is verbose


@pytest.fixture(scope="module")
def sd_backbone(tiny_backbones):
    return load_backbone(BackboneConfig(base_model=str(tiny_backbones["sd"]), resolution=32))


def bar_written(capsys, run, description: str) -> str:
    """`run(True)` draws a bar named `description` on stderr; `run(False)` writes nothing there.
    Returns what `run(True)` wrote."""
    capsys.readouterr()
    run(True)
    err = capsys.readouterr().err
    assert description in err and "step" in err, err
    run(False)
    assert capsys.readouterr().err == ""
    return err


def test_pixels_draws_one_bar_of_its_steps_or_reports_them(sd_backbone, capsys):
    source = random_image(32, 32, seed=1)
    exemplars = [Exemplar(random_image(32, 32, seed=2))]
    bar_written(capsys, lambda progress: pixels_edit(sd_backbone, source, exemplars, steps=4, progress=progress),
                "PIXELS")
    reported = []
    pixels_edit(sd_backbone, source, exemplars, steps=4, strength=0.5, progress=lambda *step: reported.append(step))
    assert reported == [(1, 2), (2, 2)]  # strength 0.5 of 4 steps


def test_paint_by_example_draws_a_bar_of_its_steps(tmp_path, capsys):
    model = PaintByExampleModel.from_pretrained(write_tiny_paint_by_example(tmp_path / "pbe"))
    photo, mask = random_image(32, 32, seed=3), np.zeros((32, 32), dtype=np.float32)
    mask[8:20, 8:20] = 1.0
    bar_written(capsys, lambda progress: paint(model, model.backbone(torch.device("cpu"), 32), photo, mask,
                                               random_image(16, 16, seed=4), steps=3, progress=progress),
                "Paint by Example")


def test_pairedit_apply_draws_bars_for_the_inversion_and_the_sampling(tiny_backbones, capsys):
    image = random_image(32, 32)
    method = get_method("pairedit")
    edit = method.learn(PairSet([Pair("p", image, warm_edit(image))]),
                        method.make_config("tiny", base_model=str(tiny_backbones["sd"]), steps=2), progress=False)
    err = bar_written(capsys, lambda progress: edit.apply(image, progress=progress), "inversion")
    assert "sampling" in err and f"/{edit.config.inversion_steps}" in err


def test_the_training_bar_shows_when_asked_even_where_stderr_is_no_terminal(capsys):
    assert not sys.stderr.isatty()
    run_training(LinearRegressionTask(), LoopSettings(steps=3, log_with="none", progress=True), run_dir=None)
    assert "training" in capsys.readouterr().err
    run_training(LinearRegressionTask(), LoopSettings(steps=3, log_with="none", progress=False), run_dir=None)
    assert "training" not in capsys.readouterr().err


def test_the_web_jobs_report_each_photo_and_each_step(tmp_path, tiny_backbones):
    """What the page's bars (gr.Progress) are fed: Apply one call per photo, failed ones
    included; PIXELS one per denoising step."""
    from analogize.web.jobs import Jobs

    models = tmp_path / "models"
    models.mkdir()
    (models / "tiny-sd").symlink_to(tiny_backbones["sd"])
    jobs = Jobs(tmp_path / "work", models_dir=models)
    image = random_image(16, 16)
    method = get_method("identity")
    edit_path = method.learn(PairSet([Pair("p", image, image)]), method.make_config()).save(tmp_path / "same.edit")
    broken = tmp_path / "broken.png"
    broken.write_text("no")
    photos = [broken, write_image(image, tmp_path / "good.png")]
    reported = []
    jobs.apply(edit_path, photos, 1.0, None, progress=lambda *done: reported.append(done))
    assert reported == [(1, 2), (2, 2)]

    reported.clear()
    jobs.pixels(photos[1], photos[1], None, "tiny-sd", steps=2, seed=0, progress=lambda *step: reported.append(step))
    assert reported == [(1, 2), (2, 2)]
