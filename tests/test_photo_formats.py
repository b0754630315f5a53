"""`apply --format/--quality` and what a result keeps of its photo: 16-bit depth, ICC profile, EXIF.

Inputs are written with OpenCV, tifffile and Pillow directly (not with save_image), so the code
under test cannot hide a bug in its own fixtures; the one exception, a 16-bit PNG with a profile
and EXIF (which no library here writes), is checked on its own by Pillow and OpenCV. Results are
read back with Pillow and OpenCV too. The edit is `identity`, learned instantly, so a result's
pixels are the photo's and any loss of depth is the writer's.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from PIL import ExifTags, Image, ImageCms

from analogize.batch import output_path
from analogize.cli import main
from analogize.errors import AnalogizeError
from analogize.images import PhotoMetadata, load_image, load_metadata, save_image

EXIF_IFD = ExifTags.IFD.Exif
ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
CAMERA = "Analogize Test Camera"


def run_cli(*args) -> int:
    return main([str(arg) for arg in args])


@pytest.fixture
def identity_edit(tmp_path, pair_folder) -> Path:
    path = tmp_path / "identity.edit"
    assert run_cli("learn", pair_folder, "-o", path, "--method", "identity", "--quiet") == 0
    return path


def gradient_16bit(height: int = 6, width: int = 3000) -> np.ndarray:
    """(H, W, 3) uint16: a smooth ramp in every channel (reversed in blue), ~3000 distinct levels."""
    ramp = np.linspace(0, 65535, width).round().astype(np.uint16)
    rgb = np.stack([ramp, ramp // 2 + 1000, ramp[::-1]], axis=-1)
    return np.ascontiguousarray(np.broadcast_to(rgb, (height, width, 3)))


def read_16bit(path: Path) -> np.ndarray:
    """The file's own pixels as RGB, without analogize."""
    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return data[..., ::-1]


def camera_exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Model] = CAMERA
    exif.get_ifd(EXIF_IFD)[ExifTags.Base.ISOSpeedRatings] = 400
    return exif


def exif_of(path: Path) -> Image.Exif:
    with Image.open(path) as image:
        exif = image.getexif()
        exif.get_ifd(EXIF_IFD)  # read the sub-IFD while the file is open
        return exif


def icc_of(path: Path) -> bytes | None:
    with Image.open(path) as image:
        return image.info.get("icc_profile")


# --- 16 bits per channel ----------------------------------------------------------------------


@pytest.mark.parametrize("source, file_format, suffix", [
    ("photo.png", "png", ".png"), ("photo.tif", "tiff", ".tif"), ("photo.png", "tiff", ".tif"),
    ("photo.tif", "png", ".png"),
])
def test_16bit_photos_come_out_16bit_with_every_level(tmp_path, identity_edit, source, file_format, suffix):
    pixels = gradient_16bit()
    photo = tmp_path / source
    cv2.imwrite(str(photo), pixels[..., ::-1])
    assert run_cli("apply", identity_edit, photo, "-o", tmp_path / "out", "--format", file_format, "--quiet") == 0
    result = read_16bit(tmp_path / "out" / f"photo{suffix}")
    assert result.dtype == np.uint16 and result.shape == pixels.shape
    assert len(np.unique(result[..., 0])) > 2500  # 8-bit values scaled up would give at most 256
    assert np.abs(result.astype(np.int64) - pixels).max() <= 2  # float32 round trip: within 2 of 65535
    assert load_metadata(tmp_path / "out" / f"photo{suffix}").bit_depth == 16


def test_8bit_photos_stay_8bit_and_16bit_ones_become_8bit_in_jpg(tmp_path, identity_edit):
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    cv2.imwrite(str(tmp_path / "b.png"), gradient_16bit(20, 30))
    assert run_cli("apply", identity_edit, tmp_path / "a.png", "-o", tmp_path / "png", "--quiet") == 0
    assert read_16bit(tmp_path / "png" / "a.png").dtype == np.uint8
    assert run_cli("apply", identity_edit, tmp_path / "b.png", "-o", tmp_path / "jpg", "--format", "jpg",
                   "--quiet") == 0
    assert read_16bit(tmp_path / "jpg" / "b.jpg").dtype == np.uint8


def test_16bit_grey_tiff_comes_out_as_16bit_rgb(tmp_path, identity_edit):
    grey = gradient_16bit(4, 1000)[..., 0]
    tifffile.imwrite(tmp_path / "scan.tif", grey)
    assert run_cli("apply", identity_edit, tmp_path / "scan.tif", "-o", tmp_path / "out", "--format", "tiff",
                   "--quiet") == 0
    result = read_16bit(tmp_path / "out" / "scan.tif")
    assert result.dtype == np.uint16 and result.shape == (4, 1000, 3)
    assert np.abs(result[..., 1].astype(np.int64) - grey).max() <= 2


# --- ICC profile and EXIF ---------------------------------------------------------------------


@pytest.mark.parametrize("file_format, suffix", [("png", ".png"), ("jpg", ".jpg"), ("webp", ".webp"),
                                                 ("tiff", ".tif")])
def test_jpeg_icc_and_exif_are_carried_with_orientation_1(tmp_path, identity_edit, file_format, suffix):
    photo = tmp_path / "phone.jpg"
    pixels = np.random.default_rng(1).integers(0, 256, (24, 40, 3), dtype=np.uint8)  # stored sideways
    Image.fromarray(pixels).save(photo, quality=95, icc_profile=ICC, exif=camera_exif(6))
    assert run_cli("apply", identity_edit, photo, "-o", tmp_path / "out", "--format", file_format, "--quiet") == 0
    result = tmp_path / "out" / f"phone{suffix}"
    assert icc_of(result) == ICC
    exif = exif_of(result)
    assert exif[ExifTags.Base.Model] == CAMERA
    assert exif[ExifTags.Base.Orientation] == 1
    assert exif.get_ifd(EXIF_IFD)[ExifTags.Base.ISOSpeedRatings] == 400  # the Exif sub-IFD too
    with Image.open(result) as image:
        assert image.size == (24, 40)  # upright: orientation 6 turned the 40x24 pixels


@pytest.mark.parametrize("file_format, suffix", [("png", ".png"), ("tiff", ".tif")])
def test_16bit_outputs_keep_the_icc_profile_and_the_camera(tmp_path, identity_edit, file_format, suffix):
    photo = tmp_path / "scan.png"
    cv2.imwrite(str(photo), gradient_16bit(8, 600)[..., ::-1])
    save_image(load_image(photo), photo, PhotoMetadata(16, ICC, camera_exif(6).tobytes()))
    assert run_cli("apply", identity_edit, photo, "-o", tmp_path / "out", "--format", file_format, "--quiet") == 0
    result = tmp_path / "out" / f"scan{suffix}"
    assert read_16bit(result).dtype == np.uint16
    assert icc_of(result) == ICC
    exif = exif_of(result)
    assert exif[ExifTags.Base.Model] == CAMERA and exif[ExifTags.Base.Orientation] == 1
    if file_format == "png":  # a 16-bit TIFF carries EXIF's main tags only (docs/cli.md)
        assert exif.get_ifd(EXIF_IFD)[ExifTags.Base.ISOSpeedRatings] == 400


def test_16bit_png_with_metadata_is_a_valid_png(tmp_path):
    path = save_image(gradient_16bit(5, 7).astype(np.float32) / 65535, tmp_path / "x.png",
                      PhotoMetadata(16, ICC, camera_exif(1).tobytes()))
    with Image.open(path) as image:
        image.verify()  # checks every chunk's CRC
    assert cv2.imread(str(path), cv2.IMREAD_UNCHANGED).dtype == np.uint16


def test_tiff_layout_tags_are_not_carried_as_exif(tmp_path):
    photo = tmp_path / "scan.tif"
    tifffile.imwrite(photo, gradient_16bit(4, 4), photometric="rgb",
                     extratags=[(ExifTags.Base.Model, "s", 0, CAMERA, True)])
    exif = Image.Exif()
    exif.load(load_metadata(photo).exif)
    assert exif[ExifTags.Base.Model] == CAMERA
    assert ExifTags.Base.StripOffsets not in exif and ExifTags.Base.BitsPerSample not in exif


def test_a_photo_without_metadata_gives_none(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "plain.png")
    assert load_metadata(tmp_path / "plain.png") == PhotoMetadata()


# --- --format and --quality -------------------------------------------------------------------


def test_lower_quality_writes_a_smaller_jpeg(tmp_path, identity_edit):
    photo = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(photo)
    sizes = {}
    for quality in (80, 95):
        out = tmp_path / f"q{quality}"
        assert run_cli("apply", identity_edit, photo, "-o", out, "--format", "jpg", "--quality", quality,
                       "--quiet") == 0
        with Image.open(out / "photo.jpg") as image:
            assert image.format == "JPEG"
        sizes[quality] = (out / "photo.jpg").stat().st_size
    assert sizes[80] < sizes[95]


@pytest.mark.parametrize("flags, expected", [
    (["--format", "jpg", "--quality", "0"], "out of range"),
    (["--format", "webp", "--quality", "101"], "out of range"),
    (["--quality", "80"], "only JPEG and WebP"),
    (["--format", "tiff", "--quality", "80"], "only JPEG and WebP"),
])
def test_bad_quality_is_one_line(tmp_path, capsys, flags, expected):
    # Refused before the edit is read: the edit file need not exist.
    assert run_cli("apply", tmp_path / "none.edit", tmp_path, "-o", tmp_path / "out", *flags) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0] and err[0].startswith("analogize: error: quality")


def test_output_path_defaults_to_png_and_refuses_unknown_formats(tmp_path):
    assert output_path(tmp_path, Path("a/b.jpg")) == tmp_path / "b.png"
    assert output_path(tmp_path, Path("b.jpg"), "tiff") == tmp_path / "b.tif"
    with pytest.raises(AnalogizeError, match="png, tiff, jpg, webp"):
        output_path(tmp_path, Path("b.jpg"), "gif")
