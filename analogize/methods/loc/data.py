"""Where LoRA of Change's training quads (A, A′, B, B′) come from.

- `ProceduralQuads`: the benchmark's procedural edits (data/edits.py) as an unlimited source of
  true quads: one edit, at a random strength, on crops of two different training photos. The
  benchmark's test photos and any held-out edits never appear.
- `PairQuads`: a dataset of pairs only. LoRA Reverse makes the quad from the pair itself:
  B = flip(A), B′ = flip(A′) (horizontal flip). Read from
  * a folder of pairs: `before/` + `after/` (or `source/` + `target/`), matched by file stem;
  * MagicBrush as released (`magicbrush:DIR`): DIR holds `edit_sessions.json` and `images/`;
    the JSON maps an image id to its edit turns, each naming an "input" and an "output" file in
    `images/ID/` (e.g. `images/242679/242679-input.png` -> `242679-output1.png`);
  * a pair manifest (`seed:FILE`, for SEED-Data-Edit and anything alike): JSON lines (or one JSON
    list) of records naming a source and a target image, under the keys source_image/target_image,
    source_img/target_img (MagicBrush's Hugging Face columns) or input/output; paths relative to
    the manifest's folder. Parquet is not read (pyarrow is not a dependency): export the two
    columns' images to files and list them in a manifest.

Images are loaded when drawn, so a dataset of any size costs its file list in memory.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ...data.corpus import crops, photos, split
from ...data.edits import EDITS
from ...errors import AnalogizeError
from ...images import load_image, resize
from ...pairs import find_pair_folders, image_files_by_stem

Quad = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
"""(A, A′, B, B′): (S, S, 3) float32 images in [0, 1]; B′ is B edited as A′ is A."""
MANIFEST_KEYS = (("source_image", "target_image"), ("source_img", "target_img"), ("input", "output"))
PROCEDURAL = "procedural"


class QuadSource(Protocol):
    description: str
    """What the source is, for the training fingerprint (a run resumes only on the same data)."""

    def quad(self, rng: np.random.Generator) -> Quad:
        ...


class ProceduralQuads:
    """True quads from procedural edits. Each quad applies one of `edits` at a strength drawn from
    [min_strength, 1] (A′ = A + s·(edit(A) − A)) to two crops from a pool cut once from the
    training photos, each crop flipped at random."""

    def __init__(self, edits: Sequence[str], size: int, *, min_strength: float = 0.5, pool: int = 512, seed: int = 0):
        unknown = [name for name in edits if name not in EDITS]
        if unknown or not edits:
            raise AnalogizeError(f"procedural data: edits {', '.join(unknown) or '(none)'} are not benchmark edits; "
                                 f"train on some of {', '.join(EDITS)}")
        self.edits, self.min_strength = list(edits), min_strength
        train_photos, _test_photos = split(photos())
        self.pool = crops(train_photos, pool, size, np.random.default_rng(seed))
        self.description = (f"{PROCEDURAL}:{','.join(self.edits)}@{size}px,strength>={min_strength},"
                            f"pool={pool},seed={seed}")

    def quad(self, rng: np.random.Generator) -> Quad:
        edit = EDITS[self.edits[int(rng.integers(len(self.edits)))]]
        strength = rng.uniform(self.min_strength, 1.0)
        first, second = rng.choice(len(self.pool), size=2, replace=False)
        quad: list[np.ndarray] = []
        for index in (first, second):
            image = self.pool[index][:, ::-1] if rng.random() < 0.5 else self.pool[index]
            image = np.ascontiguousarray(image)
            quad += [image, np.clip(image + strength * (edit(image) - image), 0.0, 1.0).astype(np.float32)]
        return quad[0], quad[1], quad[2], quad[3]


@dataclass(frozen=True)
class PairFile:
    before: Path
    after: Path


class PairQuads:
    """LoRA Reverse quads from pairs only: (A, A′, flip(A), flip(A′)), each image resized to S × S."""

    def __init__(self, files: list[PairFile], size: int, description: str):
        if not files:
            raise AnalogizeError(f"{description}: holds no pairs; check the dataset path")
        self.files, self.size = files, size
        self.description = f"{description} ({len(files)} pairs)@{size}px"

    def quad(self, rng: np.random.Generator) -> Quad:
        pair = self.files[int(rng.integers(len(self.files)))]
        before, after = (resize(load_image(path), (self.size, self.size)) for path in (pair.before, pair.after))
        flip = lambda image: np.ascontiguousarray(image[:, ::-1])  # noqa: E731
        return before, after, flip(before), flip(after)


def folder_pairs(root: Path) -> list[PairFile]:
    before_dir, after_dir = find_pair_folders(root)
    before, after = image_files_by_stem(before_dir), image_files_by_stem(after_dir)
    return [PairFile(before[stem], after[stem]) for stem in sorted(set(before) & set(after))]


def magicbrush_pairs(root: Path) -> list[PairFile]:
    sessions_file = root / "edit_sessions.json"
    sessions = _read_json(sessions_file, "MagicBrush's edit_sessions.json (DIR must be its train/ or dev/ folder)")
    files = []
    for image_id, turns in sessions.items():
        for turn in turns:
            try:
                folder = root / "images" / image_id
                files.append(PairFile(folder / turn["input"], folder / turn["output"]))
            except (KeyError, TypeError):
                raise AnalogizeError(f"{sessions_file}: turn of image {image_id} lacks 'input'/'output'; "
                                     "use MagicBrush's own edit_sessions.json") from None
    return _existing(files, sessions_file)


def manifest_pairs(manifest: Path) -> list[PairFile]:
    text = _read_text(manifest)
    try:
        if text.lstrip().startswith("["):
            records = json.loads(text)
        else:
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError:
        raise AnalogizeError(f"{manifest}: is not valid JSON lines; write one JSON record per line") from None
    files = []
    for number, record in enumerate(records, start=1):
        keys = next((pair for pair in MANIFEST_KEYS if isinstance(record, dict) and set(pair) <= set(record)), None)
        if keys is None:
            names = " or ".join("/".join(pair) for pair in MANIFEST_KEYS)
            raise AnalogizeError(f"{manifest}: record {number} names no {names}; "
                                 "give each record a source and a target image")
        files.append(PairFile(manifest.parent / record[keys[0]], manifest.parent / record[keys[1]]))
    return _existing(files, manifest)


def _existing(files: list[PairFile], listed_in: Path) -> list[PairFile]:
    missing = next((path for pair in files for path in (pair.before, pair.after) if not path.is_file()), None)
    if missing is not None:
        raise AnalogizeError(f"{listed_in}: lists {missing}, which does not exist; "
                             "fix the path or the dataset folder")
    return files


def _read_text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as error:
        raise AnalogizeError(f"{path}: cannot be read ({error.strerror}); check the path") from None


def _read_json(path: Path, what: str):
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError:
        raise AnalogizeError(f"{path}: is not valid JSON; expected {what}") from None


def quad_source(data: str, size: int, *, train_edits: Sequence[str], crop_pool: int = 512,
                seed: int = 0) -> QuadSource:
    """The quad source `data` names: "procedural", "magicbrush:DIR", "seed:FILE" or a pairs folder."""
    if data == PROCEDURAL:
        return ProceduralQuads(train_edits, size, pool=crop_pool, seed=seed)
    kind, _, path = data.partition(":")
    if kind == "magicbrush":
        return PairQuads(magicbrush_pairs(Path(path)), size, data)
    if kind == "seed":
        return PairQuads(manifest_pairs(Path(path)), size, data)
    if not Path(data).is_dir():
        raise AnalogizeError(f"{data}: no such folder; give --data procedural, a folder of pairs (before/ and "
                             "after/), magicbrush:DIR or seed:MANIFEST")
    return PairQuads(folder_pairs(Path(data)), size, data)
