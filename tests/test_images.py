"""load_image / save_image on real files: every mode, every way a file can be bad."""

from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import ExifTags, Image

from analogize.errors import AnalogizeError
from analogize.images import DEFAULT_MAX_PIXELS, fit_within, load_image, resize, save_image


def load(path: Path, **kwargs) -> np.ndarray:
    """load_image, checking the contract every caller relies on."""
    array = load_image(path, **kwargs)
    assert array.dtype == np.float32
    assert array.ndim == 3 and array.shape[2] == 3
    assert array.min() >= 0.0 and array.max() <= 1.0
    return array


def mode_of(path: Path) -> str:
    """The mode Pillow opens `path` in, to check a test wrote the kind of file it meant to."""
    with Image.open(path) as image:
        return image.mode


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes) -> bytes:
    """A PNG built chunk by chunk, for files Pillow and OpenCV will not write (16-bit grey+alpha,
    absurd declared sizes). `rows` is the unfiltered pixel data, one filter byte per row included."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(rows)) + png_chunk(b"IEND", b"")
    )


def png_rows_16bit(array: np.ndarray) -> bytes:
    """(H, W, C) or (H, W) uint16 -> big-endian rows, each after a 0 (no filter) byte."""
    big_endian = array.astype(">u2").reshape(array.shape[0], -1)
    return b"".join(b"\x00" + row.tobytes() for row in big_endian)


def exif_chunk(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    return png_chunk(b"eXIf", exif.tobytes())


def encode_16bit_png(bgr: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".png", bgr)
    assert ok
    return encoded.tobytes()


def with_png_chunk(png: bytes, chunk: bytes) -> bytes:
    """Insert `chunk` just before the first IDAT chunk (where eXIf must go)."""
    at = png.index(b"IDAT") - 4
    return png[:at] + chunk + png[at:]


# --- round trip and atomic save ------------------------------------------------------------------


def test_png_round_trip_is_exact_to_one_level(tmp_path, random_image):
    exact = random_image(20, 30, seed=3)
    path = save_image(exact, tmp_path / "exact.png")
    np.testing.assert_array_equal(load(path), exact)

    arbitrary = np.random.default_rng(4).random((20, 30, 3), dtype=np.float32)
    loaded = load(save_image(arbitrary, tmp_path / "arbitrary.png"))
    assert np.abs(loaded - arbitrary).max() <= 0.5 / 255 + 1e-6


def test_save_clips_out_of_range_values(tmp_path):
    array = np.array([[[-0.5, 0.5, 1.5]]], dtype=np.float32)
    loaded = load(save_image(array, tmp_path / "clipped.png"))
    np.testing.assert_allclose(loaded[0, 0], [0.0, 128 / 255, 1.0], atol=1e-6)


def test_save_leaves_no_temporary_files(tmp_path, image):
    out_dir = tmp_path / "nested" / "out"
    save_image(image, out_dir / "a.png")
    save_image(image, out_dir / "a.jpg")
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.jpg", "a.png"]


def test_failed_save_keeps_the_old_file_and_leaves_nothing_partial(
    tmp_path, image, random_image, monkeypatch
):
    target = tmp_path / "out.png"
    save_image(image, target)
    old_bytes = target.read_bytes()

    def crash_halfway(self, fp, *args, **kwargs):
        Path(fp).write_bytes(b"\x89PNG half written")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", crash_halfway)
    with pytest.raises(OSError, match="disk full"):
        save_image(random_image(seed=9), target)
    with pytest.raises(OSError, match="disk full"):
        save_image(image, tmp_path / "new.png")

    assert target.read_bytes() == old_bytes
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


@pytest.mark.parametrize("name", ["out.xyz", "out.psd", "no_suffix"])
def test_save_refuses_formats_it_cannot_write(tmp_path, image, name, assert_clear_error):
    # .psd is a format Pillow reads but cannot write.
    with pytest.raises(AnalogizeError) as caught:
        save_image(image, tmp_path / name)
    assert_clear_error(caught.value, tmp_path / name, ".png")
    assert list(tmp_path.iterdir()) == []


# --- files that are not usable images ------------------------------------------------------------


def test_missing_file(tmp_path, assert_clear_error):
    path = tmp_path / "nowhere.png"
    with pytest.raises(AnalogizeError) as caught:
        load_image(path)
    assert_clear_error(caught.value, path, "no such file", "check the path")


def test_folder_is_not_an_image(tmp_path, assert_clear_error):
    with pytest.raises(AnalogizeError) as caught:
        load_image(tmp_path)
    assert_clear_error(caught.value, tmp_path, "no such file")


def test_text_file_named_jpg(tmp_path, assert_clear_error):
    path = tmp_path / "notes.jpg"
    path.write_text("these are my holiday notes, not a photo\n")
    with pytest.raises(AnalogizeError) as caught:
        load_image(path)
    assert_clear_error(caught.value, path, "not an image", "re-export")


@pytest.mark.parametrize("keep_fraction", [0.2, 0.6, 0.95])
def test_truncated_png(tmp_path, random_image, keep_fraction, assert_clear_error):
    whole = tmp_path / "whole.png"
    Image.fromarray((random_image(64, 64, seed=5) * 255).astype(np.uint8)).save(whole)
    data = whole.read_bytes()
    path = tmp_path / "cut.png"
    path.write_bytes(data[: int(len(data) * keep_fraction)])
    with pytest.raises(AnalogizeError) as caught:
        load_image(path)
    assert_clear_error(caught.value, path, "truncated or corrupt", "re-export")


def test_truncated_jpeg(tmp_path, random_image, assert_clear_error):
    whole = tmp_path / "whole.jpg"
    Image.fromarray((random_image(64, 64, seed=6) * 255).astype(np.uint8)).save(whole, quality=95)
    path = tmp_path / "cut.jpg"
    path.write_bytes(whole.read_bytes()[:300])
    with pytest.raises(AnalogizeError) as caught:
        load_image(path)
    assert_clear_error(caught.value, path, "re-export")


def test_truncated_16bit_png(tmp_path, assert_clear_error):
    # 16-bit colour takes its own reading path; a cut file must still be refused the same way.
    noise = np.random.default_rng(7).integers(0, 65536, size=(48, 48, 3), dtype=np.uint16)
    data = encode_16bit_png(noise)
    path = tmp_path / "cut16.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AnalogizeError) as caught:
        load_image(path)
    assert_clear_error(caught.value, path, "truncated or corrupt")


def test_huge_declared_size_is_refused_quickly(tmp_path, assert_clear_error):
    # A few dozen bytes declaring 10^10 pixels: the check must happen before any decoding.
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bytes(100_000, 100_000, 8, 2, rows=b"\x00" * 16))
    started = time.perf_counter()
    with pytest.raises(AnalogizeError) as caught:
        load_image(path)
    assert time.perf_counter() - started < 1.0
    assert_clear_error(caught.value, path, f"{DEFAULT_MAX_PIXELS:,}", "downscale")


def test_size_between_our_limit_and_pillows_is_refused(tmp_path, assert_clear_error):
    # 100 megapixels: past our 64 MP default but short of Pillow's own hard refusal.
    path = tmp_path / "big.png"
    path.write_bytes(png_bytes(10_000, 10_000, 8, 2, rows=b"\x00" * 16))
    with pytest.raises(AnalogizeError) as caught:
        load_image(path)
    assert_clear_error(caught.value, path, "10000x10000", f"{DEFAULT_MAX_PIXELS:,}", "downscale")


def test_max_pixels_is_honoured(tmp_path, random_image, assert_clear_error):
    path = tmp_path / "small.png"
    Image.fromarray((random_image(20, 30) * 255).astype(np.uint8)).save(path)
    assert load(path, max_pixels=600).shape == (20, 30, 3)
    with pytest.raises(AnalogizeError) as caught:
        load_image(path, max_pixels=599)
    assert_clear_error(caught.value, path, "30x20", "599")


# --- colour modes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cmyk, rgb",
    [
        ((0, 255, 255, 0), (1.0, 0.0, 0.0)),  # pure red
        ((255, 0, 255, 0), (0.0, 1.0, 0.0)),  # pure green
        ((0, 0, 0, 0), (1.0, 1.0, 1.0)),  # paper white
        ((0, 0, 0, 255), (0.0, 0.0, 0.0)),  # full black ink
    ],
)
def test_cmyk_jpeg_loads_with_the_right_colours(tmp_path, cmyk, rgb):
    path = tmp_path / "print.jpg"
    Image.new("CMYK", (16, 16), cmyk).save(path, quality=95)
    assert mode_of(path) == "CMYK"
    loaded = load(path)
    np.testing.assert_allclose(loaded.reshape(-1, 3).mean(axis=0), rgb, atol=0.03)


def test_16bit_grey_png_keeps_its_precision(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 64).round().astype(np.uint16).reshape(64, 64)
    path = tmp_path / "ramp16.png"
    Image.fromarray(ramp).save(path)
    assert mode_of(path).startswith("I")
    loaded = load(path)
    assert len(np.unique(loaded[..., 0])) > 256
    np.testing.assert_allclose(loaded[..., 0], ramp / 65535.0, atol=1e-6)
    np.testing.assert_array_equal(loaded[..., 0], loaded[..., 2])


def test_16bit_rgb_png_keeps_precision_and_channel_order(tmp_path):
    # Pillow cannot write 16-bit RGB, so OpenCV does (it takes BGR order).
    height, width = 32, 64
    ramp = np.linspace(0, 65535, height * width).round().astype(np.uint16).reshape(height, width)
    rgb = np.stack([ramp, np.full_like(ramp, 1000), 65535 - ramp], axis=2)
    path = tmp_path / "rgb16.png"
    assert cv2.imwrite(str(path), rgb[..., ::-1])
    loaded = load(path)
    assert len(np.unique(loaded[..., 0])) > 256
    np.testing.assert_allclose(loaded, rgb / 65535.0, atol=1e-6)


def test_16bit_rgba_png_is_composited_on_white_at_full_precision(tmp_path):
    rgba = np.zeros((4, 4, 4), dtype=np.uint16)
    rgba[..., 0] = 1000  # red channel well below one 8-bit level (257)
    rgba[..., 3] = 65535
    rgba[0, 0, 3] = 0  # fully transparent: white
    rgba[0, 1, :] = (0, 0, 0, 32768)  # half transparent black: mid grey
    path = tmp_path / "rgba16.png"
    assert cv2.imwrite(str(path), rgba[..., [2, 1, 0, 3]])
    loaded = load(path)
    np.testing.assert_allclose(loaded[0, 0], [1.0, 1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(loaded[0, 1], [1 - 32768 / 65535] * 3, atol=1e-6)
    np.testing.assert_allclose(loaded[1, 1], [1000 / 65535, 0.0, 0.0], atol=1e-6)


def test_16bit_grey_alpha_png(tmp_path):
    grey_alpha = np.zeros((2, 3, 2), dtype=np.uint16)
    grey_alpha[..., 0] = 1000
    grey_alpha[..., 1] = 65535
    grey_alpha[1, 2, 1] = 0
    path = tmp_path / "la16.png"
    path.write_bytes(png_bytes(3, 2, 16, 4, png_rows_16bit(grey_alpha)))
    loaded = load(path)
    np.testing.assert_allclose(loaded[0, 0], [1000 / 65535] * 3, atol=1e-6)
    np.testing.assert_allclose(loaded[1, 2], [1.0, 1.0, 1.0], atol=1e-6)


def test_greyscale_png_becomes_three_equal_channels(tmp_path):
    grey = np.arange(24, dtype=np.uint8).reshape(4, 6) * 10
    path = tmp_path / "grey.png"
    Image.fromarray(grey, mode="L").save(path)
    loaded = load(path)
    for channel in range(3):
        np.testing.assert_allclose(loaded[..., channel], grey / 255.0, atol=1e-6)


def test_grey_alpha_png_is_composited_on_white(tmp_path):
    image = Image.new("LA", (3, 1))
    image.putdata([(0, 0), (0, 128), (200, 255)])
    path = tmp_path / "la.png"
    image.save(path)
    loaded = load(path)
    np.testing.assert_allclose(loaded[0, 0], [1.0] * 3, atol=1e-6)
    np.testing.assert_allclose(loaded[0, 1], [1 - 128 / 255] * 3, atol=1 / 255)
    np.testing.assert_allclose(loaded[0, 2], [200 / 255] * 3, atol=1e-6)


def test_palette_png_with_transparency(tmp_path):
    image = Image.new("P", (2, 1))
    image.putpalette([0, 0, 0, 255, 0, 0] + [0, 0, 0] * 254)
    image.putdata([0, 1])
    path = tmp_path / "palette.png"
    image.save(path, transparency=0)
    assert mode_of(path) == "P"
    loaded = load(path)
    np.testing.assert_allclose(loaded[0, 0], [1.0, 1.0, 1.0], atol=1e-6)  # transparent entry
    np.testing.assert_allclose(loaded[0, 1], [1.0, 0.0, 0.0], atol=1e-6)


def test_rgba_png_is_composited_on_white(tmp_path):
    image = Image.new("RGBA", (3, 1))
    image.putdata([(0, 0, 0, 0), (0, 0, 0, 128), (10, 20, 30, 255)])
    path = tmp_path / "rgba.png"
    image.save(path)
    loaded = load(path)
    np.testing.assert_allclose(loaded[0, 0], [1.0, 1.0, 1.0], atol=1e-6)  # fully transparent
    np.testing.assert_allclose(loaded[0, 1], [0.5] * 3, atol=1 / 255)  # half transparent black
    np.testing.assert_allclose(loaded[0, 2], np.array([10, 20, 30]) / 255, atol=1e-6)


def test_float_tiff(tmp_path):
    values = np.linspace(0.0, 1.0, 12, dtype=np.float32).reshape(3, 4)
    path = tmp_path / "float.tif"
    Image.fromarray(values, mode="F").save(path)
    np.testing.assert_allclose(load(path)[..., 1], values, atol=1e-6)


# --- EXIF orientation ----------------------------------------------------------------------------


def test_exif_orientation_6_jpeg_is_turned_upright(tmp_path):
    # Stored 32 wide x 16 high, left half red, right half blue; orientation 6 says "turn 90°
    # clockwise to view", so the upright photo is 16 wide x 32 high with red on top.
    stored = np.zeros((16, 32, 3), dtype=np.uint8)
    stored[:, :16] = (255, 0, 0)
    stored[:, 16:] = (0, 0, 255)
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    path = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    loaded = load(path)
    assert loaded.shape == (32, 16, 3)
    np.testing.assert_allclose(loaded[:12].reshape(-1, 3).mean(axis=0), [1, 0, 0], atol=0.05)
    np.testing.assert_allclose(loaded[-12:].reshape(-1, 3).mean(axis=0), [0, 0, 1], atol=0.05)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_16bit_png_orientation_matches_8bit(tmp_path, random_image, orientation):
    # The 16-bit reader applies EXIF orientation itself; it must agree with Pillow's for 8-bit.
    levels = (random_image(4, 6, seed=orientation) * 255).round().astype(np.uint8)
    eight = tmp_path / "eight.png"
    sixteen = tmp_path / "sixteen.png"
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    Image.fromarray(levels).save(eight, exif=exif)
    bgr16 = levels[..., ::-1].astype(np.uint16) * 257  # exactly the same levels at 16 bits
    sixteen.write_bytes(with_png_chunk(encode_16bit_png(bgr16), exif_chunk(orientation)))
    expected = load(eight)
    assert expected.shape == ((6, 4, 3) if orientation >= 5 else (4, 6, 3))
    np.testing.assert_allclose(load(sixteen), expected, atol=1e-6)


# --- resizing ------------------------------------------------------------------------------------


def test_resize_takes_width_then_height(image):
    resized = resize(image, (10, 7))
    assert resized.shape == (7, 10, 3)
    assert resized.dtype == np.float32
    assert resized.min() >= 0.0 and resized.max() <= 1.0
    assert resize(image, (image.shape[1], image.shape[0])) is image


def test_resize_keeps_a_flat_colour(image):
    flat = np.full((9, 13, 3), (0.2, 0.5, 0.9), dtype=np.float32)
    np.testing.assert_allclose(resize(flat, (31, 17)), np.broadcast_to(flat[:1, :1], (17, 31, 3)), atol=1e-5)


def test_fit_within_keeps_aspect_and_never_upscales(random_image):
    wide = random_image(100, 300)
    assert fit_within(wide, 150).shape == (50, 150, 3)
    assert fit_within(wide, 300) is wide
    assert fit_within(wide, 1000) is wide


def test_saved_files_get_ordinary_permissions(tmp_path, monkeypatch):
    import os
    import stat

    from analogize.atomic import write_folder_atomic

    previous = os.umask(0o027)
    try:
        # Probing the umask sets it to 0 for a moment, a race with other threads: never done.
        monkeypatch.setattr(os, "umask", lambda mask: pytest.fail("the umask was changed"))
        path = save_image(np.zeros((4, 4, 3), np.float32), tmp_path / "shared.png")
        folder = write_folder_atomic(tmp_path / "model", lambda staging: (staging / "weights").write_bytes(b"1"))
    finally:
        monkeypatch.undo()
        os.umask(previous)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o750
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["model", "shared.png"]  # no temporaries left
