"""Shared test helpers, each offered as a fixture of the same name:

    random_image(height=24, width=32, seed=0) -> (H, W, 3) float32, exact 8-bit levels
    write_image(array, path) -> path            Pillow writes it; the suffix picks the format
    make_pair_folder(root, {name: (before, after)}, before_name="before", after_name="after",
                     ext=".png" or (".jpg", ".png")) -> root
    warm_edit(image) -> image                   a known pixel-wise colour edit
    assert_clear_error(error, names, *fix_words) -> message

plus `image` (one random image) and `pair_folder` (three pairs made with `warm_edit`), the
plain functions `inverted_pairs(size, grid)`, `learn_interrupted_then_resumed(...)` and
`assert_same_weights(a, b)` for training tests, and `free_port()` for servers; `tiny_backbones`
(session-wide) maps every name of tiny_backbones.TINY_FAMILIES to a folder holding that tiny random
diffusers pipeline, and `tiny_hypernetwork` (session-wide) is a LoRA of Change hypernetwork folder
trained with loc's tiny preset.

Images are written with Pillow directly, not with analogize's own `save_image`, so a bug in the
code under test cannot hide itself in the fixtures.
"""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from analogize.images import resize
from analogize.pairs import Pair, PairSet


def random_image(height: int = 24, width: int = 32, seed: int = 0) -> np.ndarray:
    """A float32 (H, W, 3) image in [0, 1] whose values are exact multiples of 1/255, so it
    survives a PNG round trip unchanged."""
    levels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3))
    return (levels / 255.0).astype(np.float32)


def write_image(array: np.ndarray, path: Path) -> Path:
    """Write a float [0, 1] or uint8 (H, W, 3) array; the format follows the suffix."""
    if array.dtype != np.uint8:
        array = (np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def make_pair_folder(
    root: Path,
    pairs: dict[str, tuple[np.ndarray, np.ndarray]],
    before_name: str = "before",
    after_name: str = "after",
    ext: str | tuple[str, str] = ".png",
) -> Path:
    """Write `pairs` (name -> (before, after)) as `root/before_name/NAME.ext` and
    `root/after_name/NAME.ext`. `ext` may be one suffix or a (before, after) pair of suffixes."""
    before_ext, after_ext = (ext, ext) if isinstance(ext, str) else ext
    (root / before_name).mkdir(parents=True, exist_ok=True)
    (root / after_name).mkdir(parents=True, exist_ok=True)
    for name, (before, after) in pairs.items():
        write_image(before, root / before_name / f"{name}{before_ext}")
        write_image(after, root / after_name / f"{name}{after_ext}")
    return root


def inverted_pairs(size: int, grid: int, count: int = 2) -> PairSet:
    """Pairs of smooth random colour fields (a `grid`×`grid` field resized to `size`) and their
    inverses: structure a tiny trainable model can follow in a few dozen steps."""
    fields = [np.random.default_rng(seed).random((grid, grid, 3)).astype(np.float32) for seed in range(count)]
    befores = [resize(field, (size, size)) for field in fields]
    return PairSet([Pair(f"pair{seed}", before, 1.0 - before) for seed, before in enumerate(befores)])


def learn_interrupted_then_resumed(method_name: str, pairs: PairSet, run_dir: Path, *, seed: int, steps: int,
                                   stopped_at: int = 20):
    """Learn `stopped_at` steps of the tiny preset into `run_dir` (checkpoints every 10 steps),
    then resume the same run up to `steps`; returns the resumed edit."""
    from analogize.methods import get_method

    method = get_method(method_name)
    config = lambda total: method.make_config("tiny", seed=seed, steps=total, checkpoint_every=10)  # noqa: E731
    method.learn(pairs, config(stopped_at), run_dir=run_dir, progress=False)
    return method.learn(pairs, config(steps), run_dir=run_dir, resume=True, progress=False)


def mean_l1(edit, pairs: PairSet) -> float:
    """Mean absolute error of the full-strength edit over the pairs' after images."""
    return float(np.mean([np.abs(edit.edit(pair.before, seed=0) - pair.after).mean() for pair in pairs]))


def assert_same_weights(expected, actual) -> None:
    """Two edits hold bit-identical tensors under the same names."""
    actual_tensors = actual.state_dict()
    assert set(actual_tensors) == set(expected.state_dict())
    for name, tensor in expected.state_dict().items():
        assert torch.equal(actual_tensors[name], tensor), name


def warm_edit(image: np.ndarray) -> np.ndarray:
    """A known pixel-wise colour edit (brighter mid-tones, warmer white balance) for tests that
    check a method learns what the pairs show."""
    return np.clip(image**0.8 * np.array([1.0, 0.93, 0.8], dtype=np.float32), 0.0, 1.0).astype(np.float32)


def assert_clear_error(error: BaseException, names: str | Path, *fix_words: str) -> str:
    """Check a user-facing error: one line, naming `names` (a file or folder), containing each
    of `fix_words` (the words that tell the user what to do). Returns the message."""
    message = str(error)
    assert "\n" not in message, f"error message spans lines: {message!r}"
    assert str(names) in message, f"error message does not name {names}: {message!r}"
    for word in fix_words:
        assert word in message, f"error message lacks {word!r}: {message!r}"
    return message


@pytest.fixture(name="random_image")
def random_image_fixture():
    return random_image


@pytest.fixture(name="write_image")
def write_image_fixture():
    return write_image


@pytest.fixture(name="make_pair_folder")
def make_pair_folder_fixture():
    return make_pair_folder


@pytest.fixture(name="warm_edit")
def warm_edit_fixture():
    return warm_edit


@pytest.fixture(name="assert_clear_error")
def assert_clear_error_fixture():
    return assert_clear_error


@pytest.fixture
def image() -> np.ndarray:
    """One small random (24, 32, 3) image."""
    return random_image(24, 32, seed=1)


@pytest.fixture
def pair_folder(tmp_path: Path) -> Path:
    """Three 24x32 before/after pairs where after = `warm_edit(before)`, as PNG files."""
    pairs = {}
    for index, name in enumerate(("alpha", "bravo", "charlie")):
        before = random_image(24, 32, seed=10 + index)
        pairs[name] = (before, warm_edit(before))
    return make_pair_folder(tmp_path / "pairs", pairs)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def tiny_backbones(tmp_path_factory):
    from analogize.tiny_backbones import TINY_FAMILIES, write_tiny_backbone

    root = tmp_path_factory.mktemp("backbones")
    return {family: write_tiny_backbone(family, root / family) for family in TINY_FAMILIES}


@pytest.fixture(scope="session")
def tiny_hypernetwork(tmp_path_factory):
    from analogize.methods import get_method
    from analogize.methods.loc import train_loc

    folder = tmp_path_factory.mktemp("loc") / "hypernetwork"
    return train_loc(get_method("loc").make_config("tiny"), folder, progress=False)
