"""Scores for what an edit produced against what it should have produced.

Images are float32 arrays (H, W, 3) in [0, 1], as everywhere in analogize.

- `psnr`, `ssim`: pixel fidelity to the ground truth (scikit-image).
- `ms_ssim`: multi-scale SSIM (torchmetrics), closer to what a viewer sees than one-scale SSIM.
- `sharpness_ratio`: high-frequency energy of the result over that of the answer. PSNR rewards a
  blurred guess (the mean of the possible answers is the least-squares best); this number shows
  it: 1.0 is as sharp as the answer, below is blurrier, above is noisier or over-sharpened.
- `diou`, `diou_over_pairs`: whether the edit changed the right pixels, the DIoU of the few-shot
  paired-data paper (/work/shared/papers/fewshot-paired-data-paper.txt, "Metrics").
- `LPIPS`, `lpips`, `fid`: perceptual scores that need trained networks. analogize ships no
  weights and never downloads any: the caller passes a network, or the paths of weight files
  they fetched themselves (`LPIPS.from_files`).
"""

from __future__ import annotations

import itertools
import os
import pickle
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torch import nn

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
        _to_batch(result, torch.device("cpu")).double(), _to_batch(expected, torch.device("cpu")).double(),
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
# LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric")


class LPIPS(nn.Module):
    """Learned perceptual distance between images; 0 for identical images, larger is more different.

    For each backbone layer: unit-normalise every feature vector along channels, square the
    difference between the two images, weight the channels by that layer's learned head, average
    over space; then sum over layers.

    Args:
        backbone: maps images (N, 3, H, W) in [0, 1] to a list of feature maps (N, C_l, H_l, W_l).
        head_weights: one vector of C_l non-negative channel weights per feature map, in order.

    The published metric is `LPIPS.from_files(...)`: an ImageNet AlexNet or VGG-16 trunk with the
    LPIPS v0.1 heads.
    """

    def __init__(self, backbone: nn.Module, head_weights: Sequence[torch.Tensor]):
        super().__init__()
        self.backbone = backbone
        self.heads = nn.ParameterList(nn.Parameter(weights.detach().reshape(-1).float()) for weights in head_weights)
        # A fixed metric: no parameter trains, but gradients still reach the input images,
        # so LPIPS can serve as a loss.
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_files(
        cls,
        backbone_weights: str | os.PathLike,
        heads: str | os.PathLike | None = None,
        net: str = "alex",
    ) -> LPIPS:
        """The published LPIPS from weight files on disk; nothing is downloaded.

        Args:
            backbone_weights: torchvision's ImageNet weights for `net` (`alexnet-owt-7be5be79.pth`
                or `vgg16-397923af.pth`, as .pth or converted to .safetensors).
            heads: the LPIPS v0.1 linear heads for `net` (`alex.pth` / `vgg.pth` of the LPIPS
                project); by default the copies that torchmetrics installs with itself.
            net: "alex" (the LPIPS authors' recommendation) or "vgg".
        """
        backbone = ImageNetFeatures(net)
        weights_file = _IMAGENET_TRUNKS[net][1]
        backbone_path = Path(backbone_weights)
        needed = (
            f"LPIPS-{net} needs torchvision's ImageNet weights {weights_file}; analogize never downloads "
            "weights, so fetch that file yourself and pass its path"
        )
        state = _load_weights(backbone_path, needed)
        trunk = {key: value for key, value in state.items() if key.startswith("features.")}
        try:
            backbone.load_state_dict(trunk)
        except RuntimeError:
            raise AnalogizeError(f"{backbone_path}: not {net} weights in torchvision's layout; {needed}") from None
        return cls(backbone, _load_heads(Path(heads) if heads is not None else _installed_heads(net), net))

    def forward(self, images_a: torch.Tensor, images_b: torch.Tensor) -> torch.Tensor:
        """Distances (N,) between two batches of images (N, 3, H, W) in [0, 1]."""
        features_a, features_b = self.backbone(images_a), self.backbone(images_b)
        if len(features_a) != len(self.heads):
            raise AnalogizeError(
                f"LPIPS: the backbone gives {len(features_a)} feature maps but there are "
                f"{len(self.heads)} heads; pass one head per feature map"
            )
        distance = images_a.new_zeros(images_a.shape[0])
        for layer, (feature_a, feature_b, head) in enumerate(zip(features_a, features_b, self.heads)):
            if feature_a.shape[1] != head.numel():
                raise AnalogizeError(
                    f"LPIPS: feature map {layer} has {feature_a.shape[1]} channels but its head has "
                    f"{head.numel()} weights; the heads do not belong to this backbone"
                )
            squared = (_unit_channels(feature_a) - _unit_channels(feature_b)) ** 2  # (N, C, h, w)
            distance = distance + (squared * head[:, None, None]).sum(dim=1).mean(dim=(1, 2))
        return distance


def lpips(result: np.ndarray, expected: np.ndarray, model: LPIPS) -> float:
    """LPIPS distance between two images; 0 means identical."""
    _check_same_shape("lpips", result=result, expected=expected)
    device = _device_of(model)
    with torch.no_grad():
        return float(model(_to_batch(result, device), _to_batch(expected, device))[0])


class ImageNetFeatures(nn.Module):
    """The convolutional trunk of AlexNet ("alex") or VGG-16 ("vgg"), returning the five ReLU
    outputs LPIPS reads, for images (N, 3, H, W) in [0, 1]. Weights start random: load them.

    Layers are numbered as in torchvision's `features`, so its published weight files load as
    they are. The trunk ends at the last ReLU LPIPS uses, so the final max-pool is left out.
    """

    def __init__(self, net: str = "alex"):
        super().__init__()
        if net not in _IMAGENET_TRUNKS:
            raise AnalogizeError(f"LPIPS: unknown net {net!r}; choose one of {', '.join(_IMAGENET_TRUNKS)}")
        # The output of each stage's last layer is one feature map.
        stages = _IMAGENET_TRUNKS[net][0]()
        self.features = nn.Sequential(*itertools.chain.from_iterable(stages))
        self.taps = {end - 1 for end in itertools.accumulate(len(stage) for stage in stages)}
        # LPIPS feeds the trunk images in [-1, 1], shifted and scaled to ImageNet statistics.
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = (images * 2 - 1 - self.shift) / self.scale  # (N, 3, H, W)
        outputs = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self.taps:
                outputs.append(x)
        return outputs


def _alexnet_stages() -> list[list[nn.Module]]:
    return [
        [nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU()],
        [nn.MaxPool2d(3, stride=2), nn.Conv2d(64, 192, 5, padding=2), nn.ReLU()],
        [nn.MaxPool2d(3, stride=2), nn.Conv2d(192, 384, 3, padding=1), nn.ReLU()],
        [nn.Conv2d(384, 256, 3, padding=1), nn.ReLU()],
        [nn.Conv2d(256, 256, 3, padding=1), nn.ReLU()],
    ]


def _vgg16_stages() -> list[list[nn.Module]]:
    stages, channels = [], 3
    for block, (width, depth) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]):
        layers: list[nn.Module] = [nn.MaxPool2d(2, stride=2)] if block else []
        for _ in range(depth):
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
            channels = width
        stages.append(layers)
    return stages


# net name -> (trunk builder, torchvision's file name for its ImageNet weights)
_IMAGENET_TRUNKS: dict[str, tuple[Callable[[], list[list[nn.Module]]], str]] = {
    "alex": (_alexnet_stages, "alexnet-owt-7be5be79.pth"),
    "vgg": (_vgg16_stages, "vgg16-397923af.pth"),
}


def _unit_channels(features: torch.Tensor) -> torch.Tensor:
    # The LPIPS reference adds 1e-10 to the norm, so all-zero feature vectors stay zero.
    return features / (features.norm(dim=1, keepdim=True) + 1e-10)  # (N, C, h, w)


def _installed_heads(net: str) -> Path:
    needed = (
        f"LPIPS-{net} needs the LPIPS v0.1 heads ({net}.pth of the LPIPS project); pass their path as "
        "heads=, or install torchmetrics, which ships them"
    )
    try:
        import torchmetrics
    except ImportError:
        raise AnalogizeError(f"LPIPS: torchmetrics is not installed; {needed}") from None
    path = Path(torchmetrics.__file__).parent / "functional" / "image" / "lpips_models" / f"{net}.pth"
    if not path.is_file():
        raise AnalogizeError(f"{path}: this torchmetrics does not ship LPIPS heads; {needed}")
    return path


def _load_heads(path: Path, net: str) -> list[torch.Tensor]:
    needed = f"LPIPS-{net} needs the LPIPS v0.1 heads ({net}.pth of the LPIPS project)"
    state = _load_weights(path, needed)
    # The reference files name head l "lin{l}.model.1.weight", a (1, C_l, 1, 1) 1x1 convolution.
    by_layer = {}
    for key, weights in state.items():
        match = re.fullmatch(r"lin(\d+)\..*weight", key)
        if match:
            by_layer[int(match.group(1))] = weights
    if not by_layer:
        raise AnalogizeError(f"{path}: no LPIPS heads in it (keys lin0... lin4); {needed}")
    return [by_layer[layer] for layer in sorted(by_layer)]


def _load_weights(path: Path, needed: str) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors, or from .pth without unpickling anything but tensors."""
    if not path.is_file():
        raise AnalogizeError(f"{path}: no such file; {needed}")
    try:
        if path.suffix == ".safetensors":
            return load_file(path)
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError, SafetensorError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise AnalogizeError(f"{path}: not a readable weights file ({reason}); {needed}") from None
    if not isinstance(state, dict):
        raise AnalogizeError(f"{path}: holds no state dict of tensors; {needed}")
    return state


# ---------------------------------------------------------------------------------------------
# FID (Heusel et al. 2017)


def fid(
    real_images: Sequence[np.ndarray],
    fake_images: Sequence[np.ndarray],
    feature_extractor: nn.Module | None,
) -> float:
    """Fréchet distance between Gaussians fitted to the features of two image sets; 0 is best.

    With Inception-v3 pool features this is the usual FID; with another extractor the number is
    comparable only with itself. Each set needs at least two images (a covariance needs two), and
    in practice far more: FID from a few dozen images is strongly biased upwards.

    Args:
        real_images, fake_images: images (H, W, 3) in [0, 1]; sizes may vary within and between
            sets if the extractor accepts that.
        feature_extractor: maps images (N, 3, H, W) in [0, 1], on its own device, to features
            (N, D). Put it in eval mode first. analogize ships none.
    """
    if feature_extractor is None:
        raise AnalogizeError(
            "fid: no feature extractor; pass an nn.Module mapping (N, 3, H, W) images in [0, 1] to "
            "(N, D) features, e.g. an Inception-v3 built from weights you have (analogize ships none)"
        )
    for name, images in (("real_images", real_images), ("fake_images", fake_images)):
        if len(images) < 2:
            raise AnalogizeError(f"fid: {name} holds {len(images)} image(s); pass at least two per set")
    from torchmetrics.image.fid import FrechetInceptionDistance

    device = _device_of(feature_extractor)
    with torch.no_grad():
        first = feature_extractor(_to_batch(real_images[0], device))
        if first.ndim != 2:
            raise AnalogizeError(
                f"fid: the feature extractor returned shape {tuple(first.shape)}, not (N, D); end it "
                "with global pooling and a flatten"
            )
        # Telling torchmetrics the feature count up front stops it probing the extractor with a
        # 299x299 image on the CPU, which fails for extractors on another device.
        metric = FrechetInceptionDistance(feature=_WithFeatureCount(feature_extractor, first.shape[1]))
        metric = metric.to(device)
        for images, real in ((real_images, True), (fake_images, False)):
            for image in images:
                metric.update(_to_batch(image, device), real=real)
        # The distance is >= 0 in exact arithmetic; rounding can leave -1e-7 for equal sets.
        return max(float(metric.compute()), 0.0)


class _WithFeatureCount(nn.Module):
    def __init__(self, extractor: nn.Module, num_features: int):
        super().__init__()
        self.extractor = extractor
        self.num_features = num_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.extractor(images)


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


def _to_batch(image: np.ndarray, device: torch.device) -> torch.Tensor:
    array = np.ascontiguousarray(image, dtype=np.float32)  # (H, W, 3)
    return torch.from_numpy(array).permute(2, 0, 1)[None].to(device)  # (1, 3, H, W)


def _device_of(module: nn.Module) -> torch.device:
    tensor = next(itertools.chain(module.parameters(), module.buffers()), None)
    return tensor.device if tensor is not None else torch.device("cpu")
