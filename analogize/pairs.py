"""Pair folders: the examples an edit is learned from.

A pair folder holds `before/` and `after/` (or `source/` and `target/`). Files are matched by
stem, so `before/cat.jpg` pairs with `after/cat.png`. Every problem is reported in one line that
names the folder or file and the fix.

Training code draws paired random crops with paired augmentations: the same flip, the same
affine warp and the same colour jitter on both sides of a pair. Colour jitter is off by default
because for colour edits (grading, tone curves) jittering both sides changes the mapping that is
being learned; methods switch it on only where the edit does not depend on absolute colour.

Every crop also comes with its pixels' positions in the whole frame it was cut from
(`frame_position`), moved by the same flip and warp, so a model can learn an effect tied to the
frame (a vignette) from crops and apply it once over a photo of any size.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import AnalogizeError
from .images import DEFAULT_MAX_PIXELS, IMAGE_SUFFIXES, load_image, resize

FOLDER_NAMES = (("before", "after"), ("source", "target"))


@dataclass(frozen=True)
class Pair:
    name: str
    before: np.ndarray  # (H, W, 3) float32 in [0, 1]
    after: np.ndarray  # same shape as before


class PairSet(Sequence[Pair]):
    """An ordered, validated list of before/after pairs."""

    def __init__(self, pairs: list[Pair], root: Path | None = None):
        if not pairs:
            raise AnalogizeError(f"{root or 'pairs'}: no pairs given; add at least one before/after pair")
        for pair in pairs:
            if pair.before.shape != pair.after.shape:
                raise AnalogizeError(
                    f"pair {pair.name!r}: before is {pair.before.shape} but after is {pair.after.shape}; "
                    "give both the same size"
                )
        self.pairs = list(pairs)
        self.root = root

    @classmethod
    def from_folder(
        cls,
        folder: str | os.PathLike,
        *,
        resize_mismatched: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> "PairSet":
        """Read `folder`. With `resize_mismatched`, an after image whose size differs from its
        before is resized to the before's size (Lanczos); without it a mismatch is an error."""
        root = Path(folder)
        before_dir, after_dir = find_pair_folders(root)
        before_files = image_files_by_stem(before_dir)
        after_files = image_files_by_stem(after_dir)
        only_before = sorted(set(before_files) - set(after_files))
        only_after = sorted(set(after_files) - set(before_files))
        if only_before or only_after:
            parts = []
            if only_before:
                parts.append(f"{before_dir.name}/ without a match: {', '.join(only_before)}")
            if only_after:
                parts.append(f"{after_dir.name}/ without a match: {', '.join(only_after)}")
            raise AnalogizeError(
                f"{root}: unmatched files ({'; '.join(parts)}); give each pair the same file name stem"
            )
        if not before_files:
            raise AnalogizeError(
                f"{before_dir}: no images found ({', '.join(IMAGE_SUFFIXES)}); add before/after pairs"
            )
        pairs = []
        for stem in sorted(before_files):
            before = load_image(before_files[stem], max_pixels=max_pixels)
            after = load_image(after_files[stem], max_pixels=max_pixels)
            if before.shape != after.shape:
                if not resize_mismatched:
                    raise AnalogizeError(
                        f"{after_files[stem]}: is {after.shape[1]}x{after.shape[0]} but its before image "
                        f"is {before.shape[1]}x{before.shape[0]}; make them the same size or pass "
                        "--resize-pairs to resize each after image to its before image"
                    )
                after = resize(after, (before.shape[1], before.shape[0]))
            pairs.append(Pair(stem, before, after))
        return cls(pairs, root=root)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index):  # type: ignore[override]
        return self.pairs[index]

    @property
    def names(self) -> list[str]:
        return [pair.name for pair in self.pairs]

    def fingerprint(self) -> str:
        """A digest of every pair's name and pixels, so a training run is never resumed on other data."""
        digest = hashlib.sha256()
        for pair in self.pairs:
            digest.update(f"{pair.name}|{pair.before.shape}|".encode())
            digest.update(pair.before.tobytes())
            digest.update(pair.after.tobytes())
        return digest.hexdigest()


def find_pair_folders(root: Path) -> tuple[Path, Path]:
    if not root.is_dir():
        raise AnalogizeError(
            f"{root}: no such folder; PAIRS must be a folder holding before/ and after/ subfolders"
        )
    for before_name, after_name in FOLDER_NAMES:
        before_dir, after_dir = root / before_name, root / after_name
        if before_dir.is_dir() and after_dir.is_dir():
            return before_dir, after_dir
    for before_name, after_name in FOLDER_NAMES:
        before_dir, after_dir = root / before_name, root / after_name
        if before_dir.is_dir() or after_dir.is_dir():
            present, missing = (before_dir, after_dir) if before_dir.is_dir() else (after_dir, before_dir)
            raise AnalogizeError(f"{missing}: missing; add it beside {present}")
    raise AnalogizeError(
        f"{root}: needs before/ and after/ subfolders (or source/ and target/); "
        f"found {', '.join(sorted(p.name + '/' for p in root.iterdir() if p.is_dir())) or 'none'}"
    )


def image_files_by_stem(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if path.stem in files:
            raise AnalogizeError(
                f"{path}: has the same stem as {files[path.stem].name}; keep one file per stem"
            )
        files[path.stem] = path
    return files


@dataclass
class Augmentation:
    """Paired augmentations, applied identically to both sides of a pair."""

    flip: bool = True
    """Random horizontal flip."""
    affine: bool = False
    """Random small rotation, scale and shift (reflected borders)."""
    color_jitter: bool = False
    """Random brightness, contrast and saturation change. Off for colour edits (see module doc)."""
    max_rotation_degrees: float = 10.0
    max_scale_change: float = 0.1
    jitter_amount: float = 0.1


def frame_position(frame_height: int, frame_width: int, top: int = 0, left: int = 0,
                   height: int | None = None, width: int | None = None) -> np.ndarray:
    """(height, width, 2) float32: the (x, y) of each pixel centre of the window at (top, left)
    in its whole frame, from -1 (left, top edge) to 1 (right, bottom edge); the whole frame by
    default. Relative to the frame, so a position means the same at any resolution."""
    height = frame_height if height is None else height
    width = frame_width if width is None else width
    y = (np.arange(top, top + height, dtype=np.float32) + 0.5) / frame_height * 2.0 - 1.0
    x = (np.arange(left, left + width, dtype=np.float32) + 0.5) / frame_width * 2.0 - 1.0
    grid_y, grid_x = np.meshgrid(y, x, indexing="ij")
    return np.stack([grid_x, grid_y], axis=-1)


def sample_crop_pair(
    pair: Pair,
    size: int,
    rng: np.random.Generator,
    augmentation: Augmentation | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One paired random `size`×`size` crop of `pair`, augmented identically on both sides.
    Images smaller than the crop are first upscaled so their short side equals `size`."""
    before, after, _position = sample_positioned_crop_pair(pair, size, rng, augmentation)
    return before, after


def sample_positioned_crop_pair(
    pair: Pair,
    size: int,
    rng: np.random.Generator,
    augmentation: Augmentation | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`sample_crop_pair` with the crop's `frame_position` (size, size, 2), flipped and warped
    with it (colour jitter leaves it alone). The same `rng` draws give the same crop as
    `sample_crop_pair`."""
    before, after = pair.before, pair.after
    height, width = before.shape[:2]
    if min(height, width) < size:
        scale = size / min(height, width)
        new_size = (max(size, math.ceil(width * scale)), max(size, math.ceil(height * scale)))
        before, after = resize(before, new_size), resize(after, new_size)
        height, width = before.shape[:2]
    top = int(rng.integers(0, height - size + 1))
    left = int(rng.integers(0, width - size + 1))
    position = frame_position(height, width, top, left, size, size)
    before = before[top : top + size, left : left + size]
    after = after[top : top + size, left : left + size]
    if augmentation is not None:
        before, after, position = augment_pair(before, after, rng, augmentation, position)
    return np.ascontiguousarray(before), np.ascontiguousarray(after), np.ascontiguousarray(position)


def augment_pair(
    before: np.ndarray, after: np.ndarray, rng: np.random.Generator, augmentation: Augmentation,
    position: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Flip, warp and jitter both sides alike; `position` (H, W, 2), if given, is flipped and
    warped with them, so each pixel keeps the place in the frame it came from."""
    if augmentation.flip and rng.random() < 0.5:
        before, after = before[:, ::-1], after[:, ::-1]
        position = None if position is None else position[:, ::-1]
    if augmentation.affine:
        height, width = before.shape[:2]
        angle = rng.uniform(-1, 1) * augmentation.max_rotation_degrees
        scale = 1.0 + rng.uniform(-1, 1) * augmentation.max_scale_change
        matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, scale)
        matrix[:, 2] += rng.uniform(-0.05, 0.05, size=2) * (width, height)
        warp = lambda image: cv2.warpAffine(  # noqa: E731 - same warp for both sides
            np.ascontiguousarray(image), matrix, (width, height),
            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101,
        )
        before, after = warp(before), warp(after)
        position = None if position is None else warp(position)
    if augmentation.color_jitter:
        amount = augmentation.jitter_amount
        brightness = 1.0 + rng.uniform(-amount, amount)
        contrast = 1.0 + rng.uniform(-amount, amount)
        saturation = 1.0 + rng.uniform(-amount, amount)
        before = jitter_colors(before, brightness, contrast, saturation)
        after = jitter_colors(after, brightness, contrast, saturation)
    return before, after, position


def jitter_colors(image: np.ndarray, brightness: float, contrast: float, saturation: float) -> np.ndarray:
    image = image * brightness
    image = (image - image.mean()) * contrast + image.mean()
    grey = image.mean(axis=2, keepdims=True)
    image = (image - grey) * saturation + grey
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def sample_crop_batch(
    pairs: Sequence[Pair],
    batch_size: int,
    size: int,
    rng: np.random.Generator,
    augmentation: Augmentation | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A batch of paired crops from pairs drawn with replacement: before and after
    (N, size, size, 3) and their frame positions (N, size, size, 2)."""
    crops = [
        sample_positioned_crop_pair(pairs[int(rng.integers(len(pairs)))], size, rng, augmentation)
        for _ in range(batch_size)
    ]
    befores, afters, positions = zip(*crops)
    return np.stack(befores), np.stack(afters), np.stack(positions)


def sample_colors(pairs: PairSet, max_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(before, after) colours, each (P, 3), from every pixel of every pair, or from a seeded
    random subset of about `max_samples` that keeps each pair's share of pixels."""
    total = sum(pair.before.shape[0] * pair.before.shape[1] for pair in pairs)
    keep_fraction = min(1.0, max_samples / total)
    rng = np.random.default_rng(seed)
    befores, afters = [], []
    for pair in pairs:
        before, after = pair.before.reshape(-1, 3), pair.after.reshape(-1, 3)
        if keep_fraction < 1.0:
            keep = rng.random(len(before)) < keep_fraction
            before, after = before[keep], after[keep]
        befores.append(before)
        afters.append(after)
    return np.concatenate(befores), np.concatenate(afters)
