import math

import cv2
import numpy as np
import pytest

from analogize.errors import AnalogizeError
from analogize.images import resize
from analogize.metrics import (
    DIOU_THRESHOLD,
    PSNR_CAP_DB,
    changed_pixels,
    diou,
    diou_over_pairs,
    high_frequency_energy,
    ms_ssim,
    psnr,
    sharpness_ratio,
    ssim,
)


def random_image(seed: int, size: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).random((size, size, 3), dtype=np.float32)


# --- PSNR / SSIM -------------------------------------------------------------------------------


def test_psnr_matches_formula_and_caps_identical_images():
    expected = np.full((4, 4, 3), 0.5, np.float32)
    result = expected.copy()
    result[:2] += 0.2  # half the values off by 0.2: MSE = 0.5 * 0.04 = 0.02
    assert psnr(result, expected) == pytest.approx(10 * math.log10(1 / 0.02), abs=1e-4)
    assert psnr(expected, expected) == PSNR_CAP_DB


def test_ssim_is_one_for_identical_images_and_falls_with_noise():
    image = random_image(0)
    rng = np.random.default_rng(1)
    slightly, heavily = (np.clip(image + rng.normal(0, s, image.shape), 0, 1).astype(np.float32) for s in (0.05, 0.3))
    assert ssim(image, image) == pytest.approx(1.0)
    assert 0 < ssim(heavily, image) < ssim(slightly, image) < 1
    assert ssim(slightly, image) == pytest.approx(ssim(image, slightly))


@pytest.mark.parametrize("metric", [psnr, ssim, lambda a, b: diou(a, a, b)])
def test_size_mismatch_is_a_clear_error(metric):
    with pytest.raises(AnalogizeError, match=r"differ in size .*16x16.*16x12"):
        metric(random_image(0), random_image(1)[:12])


def test_ssim_refuses_images_smaller_than_its_window():
    with pytest.raises(AnalogizeError, match="8x8"):
        ssim(random_image(0, size=8), random_image(1, size=8))


# --- DIoU --------------------------------------------------------------------------------------


def test_diou_on_hand_made_edits():
    before = np.zeros((4, 4, 3), np.float32)
    expected = before.copy()
    expected[0, :] = 0.5  # 4 changed pixels: row 0
    assert diou(before, expected, expected) == 1.0

    disjoint = before.copy()
    disjoint[3, :] = 0.5
    assert diou(before, disjoint, expected) == 0.0

    half = before.copy()
    half[0, :2] = 0.5  # 2 of the right pixels ...
    half[1, :2] = 0.5  # ... and 2 wrong ones: intersection 2, union 6
    assert diou(before, half, expected) == pytest.approx(2 / 6)

    assert diou(before, before, before) == 1.0  # nothing to change, nothing changed


def test_diou_threshold_separates_noise_from_the_edit():
    before = np.full((4, 4, 3), 0.5, np.float32)
    expected = before.copy()
    expected[:2, :, 0] = 0.9  # a change in one channel only still counts
    noisy = expected + 0.02  # the right edit plus resynthesis noise on every pixel
    assert changed_pixels(before, expected).sum() == 8
    assert diou(before, noisy, expected) == 1.0
    assert diou(before, noisy, expected, threshold=0.0) == pytest.approx(8 / 16)
    assert 0.02 < DIOU_THRESHOLD


def test_diou_over_pairs_compares_unions():
    before = np.zeros((4, 4, 3), np.float32)
    top, bottom = before.copy(), before.copy()
    top[:2] = 1.0
    bottom[2:] = 1.0
    # Each output edits the other half than its ground truth: per image DIoU is 0, but over the
    # task both unions cover the whole image.
    assert diou(before, bottom, top) == 0.0
    assert diou_over_pairs([(before, top), (before, bottom)], [(before, bottom), (before, top)]) == 1.0
    assert diou_over_pairs([(before, top), (before, bottom)], [(before, top)]) == pytest.approx(0.5)


def test_diou_over_pairs_needs_one_size_and_some_pairs():
    small, large = np.zeros((4, 4, 3), np.float32), np.zeros((6, 6, 3), np.float32)
    with pytest.raises(AnalogizeError, match=r"expected_pairs\[1\] is 6x6"):
        diou_over_pairs([(small, small), (large, large)], [(small, small)])
    with pytest.raises(AnalogizeError, match="produced_pairs is empty"):
        diou_over_pairs([(small, small)], [])


# --- MS-SSIM and the sharpness ratio ----------------------------------------------------------


def checkerboard(side: int, low: float, high: float) -> np.ndarray:
    rows, columns = np.indices((side, side))
    return np.repeat(np.where((rows + columns) % 2, high, low)[..., None], 3, axis=2).astype(np.float32)


def test_sharpness_ratio_on_hand_computed_checkerboards():
    # A 0/1 checkerboard has a Laplacian of ±4 everywhere (reflected borders keep the pattern), so
    # energy 16; at half the contrast (0.25/0.75) it is ±2, energy 4: a quarter of the energy.
    full, half = checkerboard(16, 0.0, 1.0), checkerboard(16, 0.25, 0.75)
    assert high_frequency_energy(full) == pytest.approx(16.0, rel=1e-5)
    assert sharpness_ratio(half, full) == pytest.approx(0.25, rel=1e-5)
    assert sharpness_ratio(full, half) == pytest.approx(4.0, rel=1e-5)
    assert sharpness_ratio(full, full) == 1.0
    flat = np.full((16, 16, 3), 0.4, dtype=np.float32)
    assert sharpness_ratio(flat, flat) == 1.0  # two flat images are equally sharp


def test_a_blurred_guess_wins_on_psnr_and_loses_on_sharpness():
    # What the sharpness ratio is for: PSNR prefers the blur to a sharp guess with some noise.
    answer = resize(random_image(seed=2, size=32), (128, 128))
    blurred = cv2.GaussianBlur(answer, (0, 0), 1.5)
    noisy = np.clip(answer + np.random.default_rng(1).normal(0, 0.1, answer.shape), 0, 1).astype(np.float32)
    assert psnr(blurred, answer) > psnr(noisy, answer)
    assert sharpness_ratio(blurred, answer) < 0.3 and sharpness_ratio(noisy, answer) > 0.8


def test_ms_ssim_is_one_for_identical_images_and_falls_with_noise():
    answer = resize(random_image(seed=5), (128, 128))
    assert ms_ssim(answer, answer) == pytest.approx(1.0, abs=1e-6)
    rng = np.random.default_rng(0)
    slightly, strongly = (np.clip(answer + rng.normal(0, sigma, answer.shape), 0, 1).astype(np.float32)
                          for sigma in (0.02, 0.2))
    assert 1.0 > ms_ssim(slightly, answer) > ms_ssim(strongly, answer) > 0.0
    assert 0.0 < ms_ssim(answer[:20, :20], strongly[:20, :20]) < 1.0  # one scale is all 20 px allow
    with pytest.raises(AnalogizeError, match="SSIM window"):
        ms_ssim(answer[:8, :8], answer[:8, :8])
