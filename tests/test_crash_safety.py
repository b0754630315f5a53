"""Training and batch output that survive kill -9 and a full disk.

The kills are real: `analogize learn` runs in a child process, as a user starts it, and gets
SIGKILL from outside (a seeded random time into training, or the moment a checkpoint's staging
folder appears) or from itself at a chosen point of a write (tests/killed_at.py), which a watcher
outside hits only by chance on a loaded machine. The full disks are real too: a small tmpfs,
filled up to a few pages (root may mount one; elsewhere those tests are skipped).
"""

from __future__ import annotations

import json
import os
import random
import shutil
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
from analogize.training import (
    CHECKPOINTS_FOLDER, LOSS_LOG, STATE_FILE, LossLog, checkpoint_step, newest_checkpoint,
)
from conftest import assert_same_weights, random_image, write_image

KILLED_AT = Path(__file__).with_name("killed_at.py")
# pix2pix tiny resumes bit for bit on a CPU; each checkpoint (~3 MB, ~15 ms) comes every second step.
STEPS = 30
TRAINING = ["--method", "pix2pix", "--preset", "tiny", "--steps", str(STEPS), "--checkpoint-every", "2", "--quiet"]
CHILD_TIMEOUT = 120
PAGE = 4096


@pytest.fixture
def start_learn():
    """`start_learn(pairs, output, kill_at=None)` starts `analogize learn PAIRS -o OUTPUT ... --resume`
    in a child process with one CPU thread (the same in every child, so all compute alike), its
    stderr to OUTPUT.stderr; with `kill_at` (event, path fragment, count) killed there by
    killed_at.py. `--resume` with no checkpoint yet starts from step 0, so every child runs the same
    command line. Children still running when the test ends (it failed) are killed."""
    started: list[subprocess.Popen] = []

    def start(pairs: Path, output: Path, kill_at: tuple[str, str, int] | None = None) -> subprocess.Popen:
        command = [sys.executable, "-m", "analogize"] if kill_at is None else [sys.executable, KILLED_AT, *kill_at]
        with output.with_name(output.name + ".stderr").open("ab") as stderr:
            started.append(subprocess.Popen(
                [*map(str, command), "learn", str(pairs), "-o", str(output), *TRAINING, "--resume"],
                stdout=subprocess.DEVNULL, stderr=stderr, env={**os.environ, "OMP_NUM_THREADS": "1"}))
        return started[-1]

    yield start
    for process in started:
        process.kill()
        process.wait()


def finish(process: subprocess.Popen) -> int:
    """Wait for `process` to end; its exit status (-9 after SIGKILL)."""
    return process.wait(timeout=CHILD_TIMEOUT)


def wait_for(condition, process: subprocess.Popen, what: str, poll: float) -> None:
    """Poll `condition` every `poll` seconds (0: as fast as possible) while `process` runs."""
    deadline = time.monotonic() + CHILD_TIMEOUT
    while not condition():
        assert process.poll() is None, f"the run ended (exit {process.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} within {CHILD_TIMEOUT} s"
        time.sleep(poll)


def newest_step(checkpoints: Path) -> int:
    newest = newest_checkpoint(checkpoints)
    return checkpoint_step(newest) if newest is not None else 0


def staging_folders(checkpoints: Path) -> list[str]:
    """The hidden `.step-NNNNNN.tmp` folders checkpoints are written in."""
    return [name for name in os.listdir(checkpoints) if name.startswith(".step-")] if checkpoints.is_dir() else []


def staging_step(name: str) -> int:
    return int(name.removeprefix(".step-").removesuffix(".tmp"))


def hidden_temporaries(path: Path) -> set[str]:
    """The hidden `.NAME.RANDOM.tmp` files `atomic_path` writes `path` through."""
    return {name for name in os.listdir(path.parent) if name.startswith(f".{path.name}.") and name.endswith(".tmp")}


def assert_complete_checkpoint(checkpoint: Path) -> None:
    """A finished checkpoint: its state names its own step, and its weights and optimizer states load."""
    assert json.loads((checkpoint / STATE_FILE).read_text())["step"] == checkpoint_step(checkpoint)
    for weights in checkpoint.glob("*.safetensors"):
        load_file(weights)
    for optimizer in checkpoint.glob("optimizer*.bin"):
        torch.load(optimizer, weights_only=True)


def test_a_run_killed_again_and_again_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path, pair_folder,
                                                                                     start_learn):
    """Six SIGKILLs, each followed by `learn --resume`, and the edit finally written holds bit for
    bit the tensors of a run never interrupted. In training, one kill comes from outside a seeded
    random time after the run's first new checkpoint (mid-step, or mid-write by chance), one the
    moment a checkpoint's staging folder appears, and two from the run itself in its k-th checkpoint
    write (k seeded): with the weights, optimizer and RNG states written but not the state file, and
    with the folder whole but not yet renamed. After each, a staging folder never counts as a
    checkpoint, the newest finished one is whole, and the next run clears the leftover. Two kills
    come as the edit file is renamed into place: the first time nothing is left at its path, on a
    rerun the earlier file. The loss log ends with each step once."""
    whole = tmp_path / "whole.edit"
    uninterrupted = start_learn(pair_folder, whole)  # alongside the others: each run computes alone

    output = tmp_path / "killed.edit"
    checkpoints = tmp_path / "killed.edit.run" / CHECKPOINTS_FOLDER
    chance = random.Random(18)
    writes = {"state file": ("open", ".tmp/state.json"), "rename": ("os.rename", "/.step-")}
    landed = {"in a checkpoint write": 0, "elsewhere": 0}
    for aim in ("random", "state file", "staging folder", "rename"):
        reached = newest_step(checkpoints)
        if aim in writes:
            process = start_learn(pair_folder, output, (*writes[aim], chance.randint(1, 3)))
            assert finish(process) == -signal.SIGKILL
            assert staging_folders(checkpoints), f"killed at the {aim} of a checkpoint, yet no staging folder left"
        else:
            process = start_learn(pair_folder, output)
            wait_for(lambda: newest_step(checkpoints) > reached, process, "a new checkpoint", poll=0.005)
            if aim == "random":
                time.sleep(chance.uniform(0.0, 0.1))  # a checkpoint every ~0.2 s: mostly mid-step
            else:
                wait_for(lambda: staging_folders(checkpoints), process, "a checkpoint write", poll=0)
            process.kill()
            assert finish(process) == -signal.SIGKILL
        left = staging_folders(checkpoints)
        landed["in a checkpoint write" if left else "elsewhere"] += 1
        assert not output.exists(), "the run finished before it was killed; give it more steps"
        newest = newest_checkpoint(checkpoints)
        assert all(staging_step(name) > checkpoint_step(newest) for name in left)
        assert_complete_checkpoint(newest)
    print(f"kills during training: {landed}")

    # Killed as the finished run renames its edit file into place: nothing there yet.
    assert finish(start_learn(pair_folder, output, ("os.rename", f"/.{output.name}.", 1))) == -signal.SIGKILL
    assert not output.exists() and hidden_temporaries(output)
    assert finish(start_learn(pair_folder, output)) == 0, (tmp_path / "killed.edit.stderr").read_text()
    assert finish(uninterrupted) == 0, (tmp_path / "whole.edit.stderr").read_text()
    assert_same_weights(load_edit(whole), load_edit(output))
    # A rerun (nothing left to train) killed as it rewrites the edit file leaves the finished one.
    finished = output.read_bytes()
    assert finish(start_learn(pair_folder, output, ("os.rename", f"/.{output.name}.", 1))) == -signal.SIGKILL
    assert output.read_bytes() == finished

    assert staging_folders(checkpoints) == []
    log = (tmp_path / "killed.edit.run" / LOSS_LOG).read_text().splitlines()
    assert [int(row.split(",")[0]) for row in log[1:]] == list(range(1, STEPS + 1))


def test_a_resumed_loss_log_has_its_earlier_rows_on_disk_before_the_first_new_step(tmp_path):
    """Resuming rewrites losses.csv without the rows past the checkpoint; what is on disk the moment
    after (all a kill -9 would leave) is the rows kept, not a file emptied for rewriting."""
    log = LossLog(tmp_path / LOSS_LOG, start_step=0)
    for step in range(1, 6):
        log.write({"step": step, "loss": 1.0 / step})
    log.close()
    resumed = LossLog(tmp_path / LOSS_LOG, start_step=3)
    assert (tmp_path / LOSS_LOG).read_text().splitlines() == ["step,loss", "1,1.0", "2,0.5", "3,0.3333333333333333"]
    resumed.close()


@pytest.fixture
def small_disk(tmp_path):
    """`small_disk(kilobytes)` mounts a tmpfs of that size under tmp_path and returns its folder;
    each is unmounted at the end. Skips where mounting is not allowed (not root, no CAP_SYS_ADMIN)."""
    mounted: list[Path] = []

    def mount(kilobytes: int) -> Path:
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        if shutil.which("mount") is None:
            pytest.skip("no `mount` command to make a small filesystem to fill")
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kilobytes}k", "tmpfs", str(folder)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs to fill (needs root or CAP_SYS_ADMIN): {result.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", str(folder)], check=True)


def fill(disk: Path, leave: int) -> None:
    """Grow (or shrink) disk/filler until `leave` bytes are free."""
    filler = disk / "filler"
    size = (filler.stat().st_size if filler.exists() else 0) + shutil.disk_usage(disk).free - leave
    filler.unlink(missing_ok=True)
    filler.write_bytes(bytes(size))
    assert shutil.disk_usage(disk).free == leave


def allocated(folder: Path) -> int:
    """Bytes the files under `folder` take on a tmpfs (whole pages)."""
    return sum(-(-path.stat().st_size // PAGE) * PAGE for path in folder.rglob("*") if path.is_file())


def error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert lines and all(line.startswith("analogize: error: ") for line in lines), stderr
    return lines


def test_apply_to_a_full_disk_says_so_in_one_line_and_leaves_no_partial_output(tmp_path, pair_folder, small_disk,
                                                                              capsys):
    """A batch whose output folder fills up after the first image: exit 2 and only our one-line
    errors (one per output that did not fit, or just the first if the batch stops there), each
    naming the output and saying the disk is full, no traceback; the folder holds only whole images
    (no hidden temporaries, no truncated PNG), the one written before the disk filled intact. With
    space freed, the same command finishes the batch."""
    edit = tmp_path / "warm.edit"
    assert main(["learn", str(pair_folder), "-o", str(edit), "--method", "colormap", "--quiet"]) == 0  # instant
    photos = tmp_path / "photos"
    for index in range(4):  # noise does not compress: each PNG takes 3 pages, in and out
        write_image(random_image(48, 64, seed=index), photos / f"photo{index}.png")
    disk = small_disk(128)
    out = disk / "out"
    out.mkdir()
    fill(disk, leave=4 * PAGE)  # one output fits, the next does not
    capsys.readouterr()

    assert main(["apply", str(edit), str(photos), "-o", str(out), "--quiet"]) == 2
    lines = error_lines(capsys.readouterr().err)
    for line in lines:
        assert "no space left on device" in line and f"{out}/" in line, line
    assert any(f"{out / 'photo1.png'}: could not be written" in line for line in lines), lines
    written = sorted(path.name for path in out.iterdir())
    assert not [name for name in written if name.startswith(".")], written
    assert "photo0.png" in written
    expected = load_edit(edit)
    for name in written:
        if name.endswith(".png"):
            reference = expected.apply(load_image(photos / name))
            assert np.abs(load_image(out / name) - reference).max() <= 1 / 255 + 1e-6, name

    (disk / "filler").unlink()
    assert main(["apply", str(edit), str(photos), "-o", str(out), "--quiet"]) == 0
    assert sorted(path.name for path in out.glob("*.png")) == [f"photo{index}.png" for index in range(4)]


def test_learn_on_a_full_disk_fails_in_one_line_keeps_what_was_written_and_resumes(
        tmp_path, pair_folder, small_disk, capsys):
    """`learn --resume` into a run folder on a disk that fills: at a checkpoint (in safetensors'
    write of the weights, which raises a SafetensorError, and in torch.save's of the optimizer, a
    RuntimeError), and at the final edit file. Each is exit 2 with one line naming the file and
    saying the disk is full, no staging folder or hidden temporary left, and the edit file and the
    checkpoints of the earlier run untouched. With space freed the run finishes with the weights of
    one never stopped."""
    common = [str(pair_folder), "--method", "unet", "--preset", "tiny", "--quiet"]
    assert main(["learn", *common, "-o", str(tmp_path / "whole.edit"), "--steps", "8", "--checkpoint-every", "2"]) == 0
    disk = small_disk(2048)
    output = disk / "warm.edit"
    checkpoints = disk / "warm.edit.run" / CHECKPOINTS_FOLDER
    assert main(["learn", *common, "-o", str(output), "--steps", "4", "--checkpoint-every", "2"]) == 0
    earlier = {path: path.read_bytes() for path in [output, *checkpoints.rglob("*")] if path.is_file()}
    capsys.readouterr()

    # 2 pages: no room for the weights; 200 KB: room for the weights (112 KB) but not the optimizer (240 KB).
    for leave in (2 * PAGE, 50 * PAGE):
        fill(disk, leave)
        assert main(["learn", *common, "-o", str(output), "--steps", "8", "--checkpoint-every", "2", "--resume"]) == 2
        [line] = error_lines(capsys.readouterr().err)
        assert f"{checkpoints / 'step-000006'}: could not be written, no space left on device" in line, line
        assert staging_folders(checkpoints) == [] and hidden_temporaries(output) == set()
        assert {path: path.read_bytes() for path in earlier} == earlier
        assert sorted(path.name for path in checkpoints.iterdir()) == ["step-000002", "step-000004"]

    # Room for the one checkpoint of steps 5-8 (and the loss log), not for the edit file (112 KB).
    fill(disk, allocated(checkpoints / "step-000004") + 12 * PAGE)
    assert main(["learn", *common, "-o", str(output), "--steps", "8", "--checkpoint-every", "4", "--resume"]) == 2
    [line] = error_lines(capsys.readouterr().err)
    assert f"{output}: could not be written, no space left on device" in line, line
    assert hidden_temporaries(output) == set() and output.read_bytes() == earlier[output]
    assert_complete_checkpoint(checkpoints / "step-000008")

    (disk / "filler").unlink()
    assert main(["learn", *common, "-o", str(output), "--steps", "8", "--checkpoint-every", "4", "--resume"]) == 0
    assert_same_weights(load_edit(tmp_path / "whole.edit"), load_edit(output))
