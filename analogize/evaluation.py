"""Score an edit against pairs with known answers; shared by `evaluate`, `bench` and `demo`.

Each pair gets PSNR, SSIM, MS-SSIM, the sharpness ratio and DIoU (see metrics.py): the first three
measure fidelity, the sharpness ratio catches the blurred guess that fidelity scores reward.

DIoU is reported two ways. `mean["diou"]` averages the DIoU of each pair (changed pixels of
before→result against before→expected), which stays meaningful for photos that are not aligned,
such as the benchmark's random crops. `task_diou` is the few-shot paper's task-level form (IoU of
the union over pairs of expected changes and of produced changes, pixel by pixel), meaningful for
aligned data such as face crops; it needs every pair at one size and is None otherwise.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from .methods.base import Edit
from .metrics import diou, diou_over_pairs, ms_ssim, psnr, sharpness_ratio, ssim
from .pairs import PairSet


@dataclass
class PairScore:
    name: str
    psnr: float
    ssim: float
    ms_ssim: float
    sharpness: float
    diou: float


METRICS = ("psnr", "ssim", "ms_ssim", "sharpness", "diou")


@dataclass
class Evaluation:
    scores: list[PairScore]
    results: list[np.ndarray] = field(repr=False)
    apply_seconds_per_image: float
    task_diou: float | None

    @property
    def mean(self) -> dict[str, float]:
        return {
            metric: float(np.mean([getattr(score, metric) for score in self.scores]))
            for metric in METRICS
        }

    def as_dict(self) -> dict:
        return {
            "mean": self.mean,
            "task_diou": self.task_diou,
            "apply_seconds_per_image": self.apply_seconds_per_image,
            "pairs": [score.__dict__ for score in self.scores],
        }


SCORE_HEADER = ["PSNR dB", "SSIM", "MS-SSIM", "sharpness", "DIoU"]


def score_table(evaluation: Evaluation, names: list[str] | None = None) -> tuple[list[str], list[list[object]]]:
    """The per-pair table of `evaluate` and `demo`: header and rows, one per pair (labelled by
    `names`, default the pair names) and a last 'mean' row."""
    labels = names or [score.name for score in evaluation.scores]
    rows = [[label] + [getattr(score, metric) for metric in METRICS] for label, score in zip(labels, evaluation.scores)]
    rows.append(["mean"] + [evaluation.mean[metric] for metric in METRICS])
    return ["pair"] + SCORE_HEADER, rows


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
                ms_ssim=ms_ssim(result, pair.after),
                sharpness=sharpness_ratio(result, pair.after),
                diou=diou(pair.before, result, pair.after),
            )
        )
    one_size = len({pair.before.shape for pair in pairs}) == 1
    task_diou = diou_over_pairs(
        [(pair.before, pair.after) for pair in pairs],
        [(pair.before, result) for pair, result in zip(pairs, results)],
    ) if one_size else None
    return Evaluation(scores=scores, results=results, apply_seconds_per_image=apply_seconds / len(pairs),
                      task_diou=task_diou)
