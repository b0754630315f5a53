"""Scores for what an edit produced against what it should have produced.

Images are float32 arrays (H, W, 3) in [0, 1], as everywhere in analogize.

- `psnr`, `ssim`: pixel fidelity to the ground truth (scikit-image).
- `ms_ssim`: multi-scale SSIM (torchmetrics), closer to what a viewer sees than one-scale SSIM.
- `sharpness_ratio`: high-frequency energy of the result over that of the answer. PSNR rewards a
  blurred guess (the mean of the possible answers is the least-squares best); this number shows
  it: 1.0 is as sharp as the answer, below is blurrier, above is noisier or over-sharpened.
- `diou`, `diou_over_pairs`: whether the edit changed the right pixels, the DIoU of the few-shot
  paired-data paper (/work/shared/papers/fewshot-paired-data-paper.txt, "Metrics").

These are what `analogize evaluate` and the benchmark report. Perceptual scores that need trained
networks (LPIPS, FID) are not here: analogize ships no weights and never downloads any, so no
command could report them.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from .errors import AnalogizeError

PSNR_CAP_DB = 100.0
"""`psnr` of identical images, instead of infinity. 100 dB is an RMS error of 1e-5, a thousand
times finer than one 8-bit level, so no real difference is clipped, and tables stay numeric."""

SSIM_MIN_SIDE = 11
"""The Gaussian window of Wang et al. (sigma 1.5) spans 11 pixels; smaller images have no SSIM."""

DIOU_THRESHOLD = 0.05
"""A pixel counts as changed when some channel moved by more than this (about 13 of 255 levels).

The paper takes the raw pixel difference and states no tolerance. Zero would count every pixel a
generative model merely re-synthesises (VAE round trip, JPEG noise) as edited; 0.05 lies above
that noise and below the colour shifts of a visible edit."""


# ---------------------------------------------------------------------------------------------
# Pixel fidelity


def psnr(result: np.ndarray, expected: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB, 10 * log10(1 / MSE) for images in [0, 1]; higher is better.

    Identical images score `PSNR_CAP_DB` (100) rather than infinity.
    """
    _check_same_shape("psnr", result=result, expected=expected)
    with np.errstate(divide="ignore"):  # MSE 0 gives inf, which the cap replaces
        value = peak_signal_noise_ratio(expected, result, data_range=1.0)
    return float(min(value, PSNR_CAP_DB))


def ssim(result: np.ndarray, expected: np.ndarray) -> float:
    """Structural similarity (Wang et al. 2004) averaged over the RGB channels; 1 means identical.

    Uses the paper's settings (11-tap Gaussian window, sigma 1.5, population covariance), so both
    sides must be at least `SSIM_MIN_SIDE` pixels.
    """
    _check_same_shape("ssim", result=result, expected=expected)
    height, width = np.shape(result)[:2]
    if min(height, width) < SSIM_MIN_SIDE:
        raise AnalogizeError(
            f"ssim: images are {width}x{height}, smaller than the {SSIM_MIN_SIDE}x{SSIM_MIN_SIDE} "
            "SSIM window; compare larger images"
        )
    value = structural_similarity(
        expected, result, data_range=1.0, channel_axis=2,
        gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
    )
    return float(value)


MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
"""The five scale weights of Wang, Simoncelli & Bovik (2003), finest scale first."""


def ms_ssim(result: np.ndarray, expected: np.ndarray) -> float:
    """Multi-scale SSIM (Wang et al. 2003); 1 means identical.

    Each scale halves the image, and the 11-pixel window must still fit, so an image takes as many
    of the paper's five scales as it allows (three at 128 px, all five from 161 px), with their
    weights rescaled to sum to one; the side must be at least `SSIM_MIN_SIDE` pixels.
    """
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure

    _check_same_shape("ms_ssim", result=result, expected=expected)
    side = min(np.shape(result)[:2])
    if side < SSIM_MIN_SIDE:
        raise AnalogizeError(f"ms_ssim: images are smaller than the {SSIM_MIN_SIDE}-pixel SSIM window; "
                             "compare larger images")
    # torchmetrics asks the side to exceed (window - 1) * 2**(scales - 1).
    scales = max(1, min(len(MS_SSIM_WEIGHTS), 1 + int(np.floor(np.log2((side - 1) / (SSIM_MIN_SIDE - 1))))))
    weights = np.array(MS_SSIM_WEIGHTS[:scales]) / sum(MS_SSIM_WEIGHTS[:scales])
    value = multiscale_structural_similarity_index_measure(
        _to_batch(result), _to_batch(expected),
        data_range=1.0, kernel_size=SSIM_MIN_SIDE, sigma=1.5, betas=tuple(weights.tolist()), normalize="relu",
    )
    return float(value)


def high_frequency_energy(image: np.ndarray) -> float:
    """Mean squared Laplacian of the luma (4-neighbour, reflected borders): the energy of detail
    at the finest scale, where blur removes it first."""
    luma = np.asarray(image, np.float32) @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
    return float(np.mean(cv2.Laplacian(luma, cv2.CV_32F, ksize=1, borderType=cv2.BORDER_REFLECT_101) ** 2))


def sharpness_ratio(result: np.ndarray, expected: np.ndarray) -> float:
    """`high_frequency_energy(result) / high_frequency_energy(expected)`: 1 is as sharp as the
    answer, 0.5 has half its fine detail. Two flat images score 1."""
    _check_same_shape("sharpness_ratio", result=result, expected=expected)
    floor = 1e-12  # two flat images are equally sharp
    return (high_frequency_energy(result) + floor) / (high_frequency_energy(expected) + floor)


# ---------------------------------------------------------------------------------------------
# DIoU: did the edit change the right pixels?
#
# The paper's definition: the "editing target" of a pair is its after image minus its before
# image, in pixel space. The union of those areas over the training pairs is the task's expected
# target; the union of the areas the model changed on its outputs is the produced one; DIoU is the
# intersection over union of the two. Its table marks DIoU with an up-arrow and its best method has
# the highest value, so higher is better here, although one sentence of the text says "lower".
# The paper leaves "changed" open; `changed_pixels` fixes it.


def changed_pixels(before: np.ndarray, after: np.ndarray, threshold: float = DIOU_THRESHOLD) -> np.ndarray:
    """(H, W) bool map: where any channel of `after` differs from `before` by more than `threshold`.

    Any channel rather than the mean, so a change of hue that leaves brightness alone still
    counts. `threshold=0` is the paper's literal reading: every difference counts.
    """
    _check_same_shape("changed_pixels", before=before, after=after)
    difference = np.abs(np.asarray(after, np.float32) - np.asarray(before, np.float32))  # (H, W, 3)
    return difference.max(axis=2) > threshold


def diou(
    before: np.ndarray, result: np.ndarray, expected: np.ndarray, threshold: float = DIOU_THRESHOLD
) -> float:
    """DIoU of one triple: IoU of the pixels `expected` changed and the pixels `result` changed.

    1 means the edit touched exactly the right pixels, 0 that it touched none of them. When neither
    changed any pixel the two agree perfectly and the value is 1; note that this also rewards a
    method that does nothing on an image the edit should leave alone. The paper reports only the
    union over many pairs (`diou_over_pairs`); this per-image form is its building block.
    """
    _check_same_shape("diou", before=before, result=result, expected=expected)
    return _iou(changed_pixels(before, expected, threshold), changed_pixels(before, result, threshold))


def diou_over_pairs(
    expected_pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    produced_pairs: Sequence[tuple[np.ndarray, np.ndarray]],
    threshold: float = DIOU_THRESHOLD,
) -> float:
    """The paper's task-level DIoU: IoU of the union of expected and the union of produced changes.

    `expected_pairs` are (before, after) ground-truth pairs (the paper uses the training pairs);
    `produced_pairs` are (input, output) pairs of the method. The two lists may differ in length,
    but every image must have the same size, because the unions are taken pixel by pixel. With
    triples (before, result, expected): `diou_over_pairs([(b, e) ...], [(b, r) ...])`.
    """
    expected = _union_of_changes("expected_pairs", expected_pairs, threshold)
    produced = _union_of_changes("produced_pairs", produced_pairs, threshold)
    if expected.shape != produced.shape:
        raise AnalogizeError(
            f"diou_over_pairs: expected pairs are {_size(expected)} but produced pairs are "
            f"{_size(produced)}; the unions need one size, resize the images first"
        )
    return _iou(expected, produced)


def _union_of_changes(name: str, pairs: Sequence[tuple[np.ndarray, np.ndarray]], threshold: float) -> np.ndarray:
    if len(pairs) == 0:
        raise AnalogizeError(f"diou_over_pairs: {name} is empty; pass at least one (before, after) pair")
    union = changed_pixels(*pairs[0], threshold)
    for index, (before, after) in enumerate(pairs[1:], start=1):
        changed = changed_pixels(before, after, threshold)
        if changed.shape != union.shape:
            raise AnalogizeError(
                f"diou_over_pairs: {name}[{index}] is {_size(changed)} but {name}[0] is {_size(union)}; "
                "the union needs one size, resize the images first"
            )
        union |= changed
    return union


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    if union == 0:
        return 1.0
    return np.count_nonzero(a & b) / union


# ---------------------------------------------------------------------------------------------
# Shared checks and conversions


def _check_same_shape(metric: str, **images: np.ndarray) -> None:
    shapes = {name: tuple(np.shape(image)) for name, image in images.items()}
    for name, shape in shapes.items():
        if len(shape) != 3 or shape[2] != 3:
            raise AnalogizeError(
                f"{metric}: {name} has shape {shape}, not (H, W, 3); load images with analogize.images.load_image"
            )
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name} {shape[1]}x{shape[0]}" for name, shape in shapes.items())
        raise AnalogizeError(f"{metric}: images differ in size ({listed}); resize them to one size first")


def _size(mask: np.ndarray) -> str:
    return f"{mask.shape[1]}x{mask.shape[0]}"


def _to_batch(image: np.ndarray) -> torch.Tensor:
    """An image as float32, as analogize holds them. float64 would change MS-SSIM in the seventh
    digit and make its Gaussian convolutions several times slower on the CPU."""
    array = np.ascontiguousarray(image, dtype=np.float32)  # (H, W, 3)
    return torch.from_numpy(array).permute(2, 0, 1)[None]  # (1, 3, H, W)
