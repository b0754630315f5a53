"""Score an edit against pairs with known answers; shared by `evaluate`, `bench` and `demo`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from .methods.base import Edit
from .metrics import diou, psnr, ssim
from .pairs import PairSet


@dataclass
class PairScore:
    name: str
    psnr: float
    ssim: float
    diou: float


@dataclass
class Evaluation:
    scores: list[PairScore]
    results: list[np.ndarray] = field(repr=False)
    apply_seconds_per_image: float

    @property
    def mean(self) -> dict[str, float]:
        return {
            metric: float(np.mean([getattr(score, metric) for score in self.scores]))
            for metric in ("psnr", "ssim", "diou")
        }

    def as_dict(self) -> dict:
        return {
            "mean": self.mean,
            "apply_seconds_per_image": self.apply_seconds_per_image,
            "pairs": [score.__dict__ for score in self.scores],
        }


def evaluate_edit(edit: Edit, pairs: PairSet, *, seed: int = 0, progress: bool = False) -> Evaluation:
    """Apply `edit` to every before image and compare with its after image."""
    scores, results = [], []
    apply_seconds = 0.0
    for pair in tqdm(pairs, desc="evaluating", unit="image", disable=not progress):
        started = time.perf_counter()
        result = edit.apply(pair.before, seed=seed)
        apply_seconds += time.perf_counter() - started
        results.append(result)
        scores.append(
            PairScore(
                name=pair.name,
                psnr=psnr(result, pair.after),
                ssim=ssim(result, pair.after),
                diou=diou(pair.before, result, pair.after),
            )
        )
    return Evaluation(scores=scores, results=results, apply_seconds_per_image=apply_seconds / len(pairs))
