"""Several processes on this CPU (gloo), started the way a user would: `torchrun`.

Each launch starts fresh Python processes, so these tests use the tiny presets and few steps.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from analogize.cli import main
from analogize.editfile import load_edit
from analogize.images import load_image
from analogize.training import CHECKPOINTS_FOLDER, checkpoint_step, newest_checkpoint
from conftest import assert_same_weights, make_pair_folder, random_image, warm_edit

WORKER = Path(__file__).with_name("distributed_worker.py")
LAUNCH_TIMEOUT = 300


def torchrun(*args, processes: int = 2) -> list[str]:
    """The command line that starts `args` (a script, or `-m module ...`) on `processes` processes."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
            *map(str, args)]


def run(command: list[str]) -> subprocess.CompletedProcess:
    # One thread each: two processes share this machine's cores, as torchrun itself would set.
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT, env=environment)


@pytest.fixture
def pairs_folder(tmp_path):
    images = {f"p{i}": random_image(40, 48, seed=i) for i in range(3)}
    return make_pair_folder(tmp_path / "pairs", {name: (image, warm_edit(image)) for name, image in images.items()})


def test_every_process_ends_with_the_same_weights(tmp_path, pairs_folder, tiny_backbones):
    from analogize.tiny_backbones import write_tiny_paint_by_example

    (pairs_folder / "before" / "boxes.json").write_text(json.dumps({f"p{i}.png": [[10, 8, 30, 28]] for i in range(3)}))
    paint_model = write_tiny_paint_by_example(tmp_path / "pbe-start")
    finished = run(torchrun(WORKER, pairs_folder, tmp_path, "pix2pix", "fewshot", f"pairedit={tiny_backbones['sd']}",
                            f"paint-by-example={paint_model}"))
    assert finished.returncode == 0, finished.stderr
    for method in ("pix2pix", "fewshot", "pairedit", "paint-by-example"):
        first = load_file(tmp_path / f"{method}-process0-of2.safetensors")
        second = load_file(tmp_path / f"{method}-process1-of2.safetensors")
        # The processes drew different batches and dropout noise: only synchronised training
        # (averaged gradients, the main process's BatchNorm statistics) makes them agree.
        assert first.keys() == second.keys()
        for name in first:
            assert torch.equal(first[name], second[name]), f"{method}: {name}"


def learn_command(pairs_folder: Path, output: Path, *extra: str) -> list[str]:
    return torchrun("-m", "analogize", "learn", pairs_folder, "-o", output, "--method", "fewshot",
                    "--preset", "tiny", "--steps", "40", "--checkpoint-every", "2", "--quiet", *extra)


def test_a_killed_run_resumed_ends_with_the_weights_of_an_uninterrupted_one(tmp_path, pairs_folder):
    uninterrupted = run(learn_command(pairs_folder, tmp_path / "whole.edit"))
    assert uninterrupted.returncode == 0, uninterrupted.stderr

    killed = tmp_path / "killed.edit"
    checkpoints = tmp_path / "killed.edit.run" / CHECKPOINTS_FOLDER
    process = subprocess.Popen(learn_command(pairs_folder, killed), start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + LAUNCH_TIMEOUT
    while (newest_checkpoint(checkpoints) is None or checkpoint_step(newest_checkpoint(checkpoints)) < 6) \
            and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)  # the launcher and both workers, mid-step or mid-save
    process.wait()
    assert not killed.exists(), "the run finished before it could be killed; give it more steps"
    stopped_at = checkpoint_step(newest_checkpoint(checkpoints))
    assert 6 <= stopped_at < 40

    resumed = run(learn_command(pairs_folder, killed, "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    assert_same_weights(load_edit(tmp_path / "whole.edit"), load_edit(killed))


def test_a_run_resumes_on_another_number_of_processes(tmp_path, pairs_folder):
    output = tmp_path / "grown.edit"
    assert main([str(arg) for arg in ["learn", pairs_folder, "-o", output, "--method", "pix2pix",
                                       "--preset", "tiny", "--steps", "4", "--quiet"]]) == 0
    grown = run(torchrun("-m", "analogize", "learn", pairs_folder, "-o", output, "--method", "pix2pix",
                         "--preset", "tiny", "--steps", "8", "--resume", "--quiet"))
    assert grown.returncode == 0, grown.stderr
    assert load_edit(output).provenance.steps == 8
    log = (tmp_path / "grown.edit.run" / "losses.csv").read_text().splitlines()
    assert [int(row.split(",")[0]) for row in log[1:]] == list(range(1, 9))


def test_batch_apply_shares_the_images_finishes_past_a_bad_one_and_skips_finished_ones(tmp_path, pairs_folder):
    edit = tmp_path / "warm.edit"
    assert main(["learn", str(pairs_folder), "-o", str(edit), "--method", "colormap", "--quiet"]) == 0  # instant
    photos = tmp_path / "photos"
    photos.mkdir()
    for index in range(7):
        (photos / f"photo{index}.png").write_bytes((pairs_folder / "before" / f"p{index % 3}.png").read_bytes())
    (photos / "photo3.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "out"

    first = run(torchrun("-m", "analogize", "apply", edit, photos, "-o", out, "--quiet"))
    # One image failed, so the processes exit 2 (torchrun passes that on as its own failure);
    # the other six were done.
    assert first.returncode != 0 and "failed (exitcode: 2)" in first.stderr
    assert sorted(path.name for path in out.glob("*.png")) == [f"photo{i}.png" for i in (0, 1, 2, 4, 5, 6)]
    summary = json.loads((out / "analogize-apply.json").read_text())
    assert (summary["processes"], summary["done"], summary["skipped"]) == (2, 6, 0)
    assert [failure["image"] for failure in summary["failed"]] == [str(photos / "photo3.png")]
    assert "photo3.png" in summary["failed"][0]["reason"]
    assert first.stderr.count("analogize: error:") == 1 and first.stdout.count("applied colormap") == 1
    expected = load_edit(edit).apply(load_image(photos / "photo0.png"))
    assert np.abs(load_image(out / "photo0.png") - expected).max() <= 1 / 255 + 1e-6

    (photos / "photo3.png").write_bytes((pairs_folder / "before" / "p0.png").read_bytes())  # fixed
    second = run(torchrun("-m", "analogize", "apply", edit, photos, "-o", out, "--quiet"))
    assert second.returncode == 0, second.stderr
    summary = json.loads((out / "analogize-apply.json").read_text())
    assert (summary["done"], summary["skipped"], summary["failed"]) == (1, 6, [])
