import math

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from analogize.errors import AnalogizeError
from analogize.images import resize
from analogize.metrics import (
    DIOU_THRESHOLD,
    LPIPS,
    PSNR_CAP_DB,
    ImageNetFeatures,
    changed_pixels,
    diou,
    diou_over_pairs,
    fid,
    high_frequency_energy,
    lpips,
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


# --- LPIPS -------------------------------------------------------------------------------------


class TinyBackbone(nn.Module):
    """Two conv layers, each output one LPIPS feature map."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 6, 3, stride=2, padding=1)

    def forward(self, images):
        first = torch.relu(self.conv1(images))
        return [first, torch.relu(self.conv2(first))]


def tiny_lpips() -> LPIPS:
    torch.manual_seed(0)
    return LPIPS(TinyBackbone(), [torch.rand(4), torch.rand(6)])


def test_lpips_is_zero_for_identical_images_symmetric_and_grows_with_noise():
    model = tiny_lpips()
    image = random_image(0)
    rng = np.random.default_rng(1)
    noise = rng.normal(0, 1, image.shape).astype(np.float32)
    slightly, heavily = (np.clip(image + s * noise, 0, 1) for s in (0.05, 0.3))
    assert lpips(image, image, model) == 0.0
    assert lpips(image, slightly, model) == pytest.approx(lpips(slightly, image, model))
    assert 0 < lpips(image, slightly, model) < lpips(image, heavily, model)


@pytest.mark.parametrize(
    ("net", "conv_layers"), [("alex", [0, 3, 6, 8, 10]), ("vgg", [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28])]
)
def test_lpips_from_files_reads_torchvision_layout_with_installed_heads(tmp_path, net, conv_layers):
    pytest.importorskip("torchmetrics")  # ships the LPIPS v0.1 heads
    weights = _trunk_weights(net)
    assert sorted({int(key.split(".")[1]) for key in weights}) == conv_layers  # torchvision's numbering
    weights["classifier.1.weight"] = torch.zeros(2, 2)  # full-model files carry a classifier too
    torch.save(weights, tmp_path / f"{net}.pth")
    model = LPIPS.from_files(tmp_path / f"{net}.pth", net=net)
    image = random_image(0, size=32)
    assert lpips(image, image, model) == 0.0
    assert lpips(image, 1 - image, model) > 0


def _trunk_weights(net: str) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return ImageNetFeatures(net).state_dict()


def test_lpips_missing_or_wrong_weights_name_the_file(tmp_path):
    missing = tmp_path / "nowhere" / "alexnet.pth"
    with pytest.raises(AnalogizeError, match=r"nowhere.*alexnet-owt-7be5be79\.pth"):
        LPIPS.from_files(missing, heads=tmp_path / "alex.pth")
    garbage = tmp_path / "vgg.pth"
    garbage.write_text("not weights")
    with pytest.raises(AnalogizeError, match=r"vgg\.pth: not a readable weights file"):
        LPIPS.from_files(garbage, heads=tmp_path / "heads.pth", net="vgg")
    with pytest.raises(AnalogizeError, match="heads.pth: no such file"):
        save_file(_trunk_weights("alex"), tmp_path / "alex.safetensors")
        LPIPS.from_files(tmp_path / "alex.safetensors", heads=tmp_path / "heads.pth")


# --- FID ---------------------------------------------------------------------------------------


class TinyExtractor(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 5, 3)

    def forward(self, images):
        return torch.relu(self.conv(images)).mean(dim=(2, 3))  # (N, 5)


def test_fid_matches_the_frechet_formula_and_is_zero_for_one_set():
    pytest.importorskip("torchmetrics")
    scipy_linalg = pytest.importorskip("scipy.linalg")
    real = [random_image(seed) for seed in range(12)]
    fake = [np.clip(image + 0.1, 0, 1) for image in real]
    extractor = TinyExtractor()
    with torch.no_grad():
        features = [
            extractor(torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2)).double().numpy()
            for images in (real, fake)
        ]
    (mean_r, mean_f), (cov_r, cov_f) = [f.mean(0) for f in features], [np.cov(f, rowvar=False) for f in features]
    reference = ((mean_r - mean_f) ** 2).sum() + np.trace(cov_r + cov_f - 2 * scipy_linalg.sqrtm(cov_r @ cov_f).real)
    assert fid(real, fake, extractor) == pytest.approx(reference, rel=1e-4)
    assert fid(real, real, extractor) == pytest.approx(0.0, abs=1e-9)
    assert fid(real, fake, extractor) < fid(real, [np.clip(image + 0.3, 0, 1) for image in real], extractor)


def test_fid_needs_an_extractor_and_two_images_per_set():
    images = [random_image(seed) for seed in range(3)]
    with pytest.raises(AnalogizeError, match="no feature extractor"):
        fid(images, images, None)
    with pytest.raises(AnalogizeError, match="fake_images holds 1 image"):
        fid(images, images[:1], TinyExtractor())


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
