"""The `analogize` command end to end on small real files."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from analogize.cli import build_parser, main
from analogize.images import load_image, save_image
from conftest import assert_same_weights, make_pair_folder, random_image, write_image


def warm(image: np.ndarray) -> np.ndarray:
    """A colour edit colormap can learn exactly: warmer and a little brighter."""
    return np.clip(image * np.array([1.15, 1.0, 0.8], dtype=np.float32) + 0.03, 0, 1).astype(np.float32)


@pytest.fixture
def pair_folder(tmp_path):
    rng = np.random.default_rng(0)
    images = {f"p{i}": rng.random((24, 32, 3), dtype=np.float32) for i in range(3)}
    return make_pair_folder(tmp_path / "pairs", {name: (image, warm(image)) for name, image in images.items()})


def run_cli(*args: str) -> int:
    return main([str(arg) for arg in args])


def test_methods_lists_every_method_and_what_it_needs(capsys):
    from analogize.methods import REGISTRY

    assert run_cli("methods") == 0
    out = capsys.readouterr().out
    for name in (*REGISTRY, "pixels", "paint-by-example"):
        assert f"\n{name} " in f"\n{out}", name
    assert "analogize paint" in out and "analogize edit" in out


def command_parsers() -> dict[str, argparse.ArgumentParser]:
    subparsers = next(action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction))
    return subparsers.choices


def test_help_and_methods_import_no_heavy_module():
    """`--help` for every command and `analogize methods` answer without loading torch and co.:
    the command modules import those inside `run`, the registry lists methods from METHOD_INFO."""
    script = (
        "import sys, contextlib, io, analogize.cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    for argv in ([], *([name] for name in analogize.cli.COMMANDS)):\n"
        "        with contextlib.suppress(SystemExit):\n"
        "            analogize.cli.main([*argv, '--help'])\n"
        "    analogize.cli.main(['methods'])\n"
        "print(' '.join(sorted({name.split('.')[0] for name in sys.modules})))\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    loaded = set(completed.stdout.split())
    assert "analogize" in loaded
    assert not loaded & {"torch", "accelerate", "diffusers", "transformers", "gradio", "numpy", "cv2"}


def test_every_command_has_an_example_and_every_flag_a_help():
    assert command_parsers(), "no commands"
    for name, parser in command_parsers().items():
        assert "example:" in parser.epilog and f"analogize {name}" in parser.epilog, name
        for action in parser._actions:
            assert action.help and action.help != argparse.SUPPRESS, f"{name} {action.option_strings or action.dest}"


def test_method_info_agrees_with_each_method_and_the_preset_helps():
    """METHOD_INFO repeats what each Method class declares, so that listing them imports none."""
    from analogize.methods import METHOD_INFO, REGISTRY
    from analogize.methods.paint_by_example import PRESETS as PAINT_BY_EXAMPLE_PRESETS

    assert list(REGISTRY) == list(METHOD_INFO)
    for name, info in METHOD_INFO.items():
        method = REGISTRY[name]
        assert (method.name, method.summary, method.needs, tuple(method.presets), method.default_preset) == (
            info.name, info.summary, info.needs, info.presets, info.default_preset), name
    preset_help = next(action.help for action in command_parsers()["train-pbe"]._actions if action.dest == "preset")
    assert all(name in preset_help for name in PAINT_BY_EXAMPLE_PRESETS)


def test_learn_apply_keeps_size_and_stem(tmp_path, pair_folder, capsys):
    edit_path = tmp_path / "warm.edit"
    assert run_cli("learn", pair_folder, "-o", edit_path, "--method", "colormap", "--quiet") == 0
    photo = np.random.default_rng(1).random((37, 53, 3), dtype=np.float32)
    save_image(photo, tmp_path / "holiday.jpg")
    assert run_cli("apply", edit_path, tmp_path / "holiday.jpg", "-o", tmp_path / "out", "--quiet") == 0
    result = load_image(tmp_path / "out" / "holiday.png")
    assert result.shape == (37, 53, 3)
    original = load_image(tmp_path / "holiday.jpg")
    assert np.abs(result - warm(original)).mean() < 0.03

    assert run_cli("apply", edit_path, tmp_path / "holiday.jpg", "-o", tmp_path / "zero",
                   "--strength", "0", "--quiet") == 0
    assert np.abs(load_image(tmp_path / "zero" / "holiday.png") - original).max() <= 1 / 255 + 1e-6

    # --scale edits a half-size copy and returns the photo's own size
    assert run_cli("apply", edit_path, tmp_path / "holiday.jpg", "-o", tmp_path / "half",
                   "--scale", "0.5", "--quiet") == 0
    assert load_image(tmp_path / "half" / "holiday.png").shape == (37, 53, 3)


def test_apply_strength_map_limits_the_edit(tmp_path, pair_folder):
    edit_path = tmp_path / "warm.edit"
    run_cli("learn", pair_folder, "-o", edit_path, "--method", "colormap", "--quiet")
    photo = np.full((20, 40, 3), 0.5, dtype=np.float32)
    save_image(photo, tmp_path / "grey.png")
    strength_map = np.zeros((10, 20), dtype=np.uint8)
    strength_map[:, 10:] = 255  # right half only; a smaller map is resized to the photo
    Image.fromarray(strength_map, mode="L").save(tmp_path / "map.png")
    assert run_cli("apply", edit_path, tmp_path / "grey.png", "-o", tmp_path / "out",
                   "--strength-map", tmp_path / "map.png", "--quiet") == 0
    result = load_image(tmp_path / "out" / "grey.png")
    assert np.abs(result[:, :15] - 0.5).max() <= 1 / 255 + 1e-6
    assert np.abs(result[:, 25:] - warm(photo)[:, 25:]).mean() < 0.03


def test_apply_continues_past_a_bad_image_and_reports_it(tmp_path, pair_folder, capsys):
    edit_path = tmp_path / "warm.edit"
    run_cli("learn", pair_folder, "-o", edit_path, "--method", "colormap", "--quiet")
    save_image(np.zeros((8, 8, 3), np.float32), tmp_path / "in" / "good.png")
    (tmp_path / "in" / "broken.jpg").write_text("not a photo")
    capsys.readouterr()
    assert run_cli("apply", edit_path, tmp_path / "in", "-o", tmp_path / "out", "--quiet") == 2
    captured = capsys.readouterr()
    assert (tmp_path / "out" / "good.png").is_file()
    error_lines = captured.err.strip().splitlines()
    assert len(error_lines) == 1 and "broken.jpg" in error_lines[0]
    assert "1 of 2" in captured.out
    summary = json.loads((tmp_path / "out" / "analogize-apply.json").read_text())
    assert (summary["images"], summary["done"], summary["skipped"]) == (2, 1, 0)
    assert [failure["image"] for failure in summary["failed"]] == [str(tmp_path / "in" / "broken.jpg")]
    assert summary["failed"][0]["reason"] == error_lines[0].removeprefix("analogize: error: ")


def test_apply_again_skips_finished_images_unless_told_to_overwrite(tmp_path, pair_folder, capsys):
    edit_path = tmp_path / "warm.edit"
    run_cli("learn", pair_folder, "-o", edit_path, "--method", "colormap", "--quiet")
    for name in ("a", "b", "c"):
        save_image(np.full((8, 8, 3), 0.5, np.float32), tmp_path / "in" / f"{name}.png")
    save_image(np.zeros((8, 8, 3), np.float32), tmp_path / "out" / "b.png")  # as if from a stopped batch
    assert run_cli("apply", edit_path, tmp_path / "in", "-o", tmp_path / "out", "--quiet") == 0
    summary = json.loads((tmp_path / "out" / "analogize-apply.json").read_text())
    assert (summary["done"], summary["skipped"], summary["failed"]) == (2, 1, [])
    assert load_image(tmp_path / "out" / "b.png").max() == 0  # left as it was

    assert run_cli("apply", edit_path, tmp_path / "in", "-o", tmp_path / "out", "--quiet", "--overwrite") == 0
    summary = json.loads((tmp_path / "out" / "analogize-apply.json").read_text())
    assert (summary["done"], summary["skipped"]) == (3, 0)
    assert load_image(tmp_path / "out" / "b.png").max() > 0


def test_apply_refuses_inputs_sharing_an_output_name(tmp_path, pair_folder, capsys):
    edit_path = tmp_path / "warm.edit"
    run_cli("learn", pair_folder, "-o", edit_path, "--method", "colormap", "--quiet")
    for suffix in (".png", ".jpg"):
        save_image(np.zeros((8, 8, 3), np.float32), tmp_path / f"same{suffix}")
    assert run_cli("apply", edit_path, tmp_path / "same.png", tmp_path / "same.jpg", "-o", tmp_path / "out") == 2
    assert "same.png" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_evaluate_writes_a_report_folder(tmp_path, pair_folder, capsys):
    edit_path = tmp_path / "warm.edit"
    run_cli("learn", pair_folder, "-o", edit_path, "--method", "colormap", "--quiet")
    assert run_cli("evaluate", edit_path, pair_folder, "--report", tmp_path / "report", "--quiet") == 0
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["mean"]["psnr"] > 30
    assert metrics["task_diou"] > 0.9 and metrics["mean"]["diou"] > 0.9
    assert len(metrics["pairs"]) == 3
    sheet = load_image(tmp_path / "report" / "contact_sheet.png")
    assert sheet.shape[0] > 3 * 24 and sheet.std() > 0.05  # three rows of real pictures
    page = (tmp_path / "report" / "index.html").read_text()
    assert "contact_sheet.png" in page and "PSNR" in page


@pytest.mark.parametrize(
    "make_args, expected",
    [
        (lambda tmp: ["learn", tmp / "missing", "-o", tmp / "e.edit"], "missing"),
        (lambda tmp: ["learn", tmp, "-o", tmp / "e.edit", "--method", "nope"], "unknown method"),
        (lambda tmp: ["learn", tmp, "-o", tmp / "e.edit", "--preset", "huge"], "no preset"),
        (lambda tmp: ["apply", tmp / "none.edit", tmp, "-o", tmp / "out"], "none.edit"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, make_args, expected):
    assert run_cli(*make_args(tmp_path)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0] and err[0].startswith("analogize: error:")


def test_console_entry_point_prints_no_traceback(tmp_path):
    (tmp_path / "text.edit").write_text("hello")
    completed = subprocess.run(
        [sys.executable, "-m", "analogize", "apply", str(tmp_path / "text.edit"), str(tmp_path), "-o",
         str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr
    assert "text.edit" in completed.stderr


def test_bench_without_enough_photos_says_how_to_fetch(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ANALOGIZE_PHOTOS", str(tmp_path / "no-photos"))
    assert run_cli("bench", "--methods", "identity", "--out", tmp_path / "bench") == 2
    assert "fetch_photos.sh" in capsys.readouterr().err


def test_learn_resumes_to_the_same_weights_as_an_uninterrupted_run(tmp_path, pair_folder, capsys):
    from analogize.editfile import load_edit

    common = ["--method", "pix2pix", "--preset", "tiny", "--quiet"]
    assert run_cli("learn", pair_folder, "-o", tmp_path / "whole.edit", "--steps", "8", *common) == 0
    assert run_cli("learn", pair_folder, "-o", tmp_path / "split.edit", "--steps", "4", *common) == 0
    capsys.readouterr()
    # a fresh start over an existing run folder would silently discard it: refused
    assert run_cli("learn", pair_folder, "-o", tmp_path / "split.edit", "--steps", "8", *common) == 2
    assert "--resume" in capsys.readouterr().err
    assert run_cli("learn", pair_folder, "-o", tmp_path / "split.edit", "--steps", "8", "--resume", *common) == 0
    whole, split = load_edit(tmp_path / "whole.edit"), load_edit(tmp_path / "split.edit")
    assert split.provenance.steps == 8
    assert_same_weights(whole, split)


def test_task_diou_needs_pairs_of_one_size(tmp_path):
    from analogize.evaluation import evaluate_edit
    from analogize.methods.identity import IdentityEdit
    from analogize.methods.base import MethodConfig
    from analogize.pairs import Pair, PairSet

    rng = np.random.default_rng(2)
    small, large = rng.random((16, 16, 3), dtype=np.float32), rng.random((16, 24, 3), dtype=np.float32)
    pairs = PairSet([Pair("small", small, warm(small)), Pair("large", large, warm(large))])
    evaluation = evaluate_edit(IdentityEdit(MethodConfig()), pairs)
    assert evaluation.task_diou is None
    assert evaluation.mean["diou"] == 0.0  # identity changes nothing the edit changed


def test_learn_without_a_method_learns_fewshot(tmp_path, pair_folder):
    from analogize.api import learn
    from analogize.editfile import load_edit
    from analogize.pairs import PairSet

    output = tmp_path / "default.edit"
    assert run_cli("learn", pair_folder, "-o", output, "--preset", "tiny", "--steps", "1", "--quiet") == 0
    assert load_edit(output).method == "fewshot"
    assert learn(PairSet.from_folder(pair_folder), preset="tiny", steps=1).method == "fewshot"


def test_learn_passes_training_options_to_the_method(tmp_path, pair_folder, capsys):
    output = tmp_path / "accumulated.edit"
    assert run_cli("learn", pair_folder, "-o", output, "--method", "pix2pix", "--preset", "tiny", "--steps", "3",
                   "--gradient-accumulation", "2", "--log", "tensorboard", "--checkpoint-every", "2", "--quiet") == 0
    from analogize.editfile import load_edit

    config = load_edit(output).config
    assert (config.gradient_accumulation_steps, config.log_with, config.checkpoint_every) == (2, "tensorboard", 2)
    run_dir = tmp_path / "accumulated.edit.run"
    assert any((run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    assert sorted(path.name for path in (run_dir / "checkpoints").iterdir()) == ["step-000002", "step-000003"]

    capsys.readouterr()
    assert run_cli("learn", pair_folder, "-o", tmp_path / "c.edit", "--method", "colormap", "--gradient-accumulation", "2",
                   "--quiet") == 2
    assert "unknown setting(s) gradient_accumulation_steps" in capsys.readouterr().err


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("analogize: error: ") and "\n" not in err, err
    return err


def test_learn_set_changes_any_config_field_and_refuses_an_unknown_one(tmp_path, pair_folder, capsys):
    from analogize.editfile import load_edit

    output = tmp_path / "set.edit"
    assert run_cli("learn", pair_folder, "-o", output, "--method", "pix2pix", "--preset", "tiny", "--set", "steps=3",
                   "--set", "ema_decay=0.5", "--quiet") == 0
    config = load_edit(output).config
    assert (config.steps, config.ema_decay) == (3, 0.5)

    capsys.readouterr()
    assert run_cli("learn", pair_folder, "-o", tmp_path / "c.edit", "--method", "colormap", "--set", "nonsense=1") == 2
    assert "unknown setting(s) nonsense" in one_error_line(capsys)
    assert run_cli("learn", pair_folder, "-o", tmp_path / "c.edit", "--method", "colormap", "--set", "nonsense") == 2
    assert "--set: 'nonsense' is not key=value" in one_error_line(capsys)


def test_device_and_dtype_flags_are_checked_in_one_line(tmp_path, pair_folder, capsys):
    import torch

    from analogize.backbones import DTYPES
    from analogize.cli.common import DTYPE_NAMES

    assert DTYPE_NAMES == tuple(DTYPES)  # the CLI's choices are the backbones' names, spelled without torch
    edit_path = tmp_path / "warm.edit"
    if not torch.cuda.is_available():
        assert run_cli("learn", pair_folder, "-o", edit_path, "--method", "colormap", "--device", "cuda") == 2
        assert "needs CUDA, which this machine does not have" in one_error_line(capsys)
    assert run_cli("learn", pair_folder, "-o", edit_path, "--method", "colormap", "--dtype", "bf16") == 2
    assert "--dtype bf16: colormap has no diffusion backbone" in one_error_line(capsys)

    assert run_cli("learn", pair_folder, "-o", edit_path, "--method", "colormap", "--device", "cpu", "--quiet") == 0
    write_image(random_image(), tmp_path / "photo.png")
    assert run_cli("apply", edit_path, tmp_path / "photo.png", "-o", tmp_path / "out", "--device", "cpu",
                   "--quiet") == 0
    assert (tmp_path / "out" / "photo.png").is_file()
    capsys.readouterr()
    assert run_cli("apply", edit_path, tmp_path / "photo.png", "-o", tmp_path / "bf16", "--dtype", "bf16") == 2
    assert "colormap edit computes in fp32" in one_error_line(capsys)
