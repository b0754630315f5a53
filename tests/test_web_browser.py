"""The web app in a real browser: Playwright drives Debian's Chromium (headless) against a server
started in this process. Screenshots of each screen go to the test's folder, and to
$ANALOGIZE_SCREENSHOTS (docs/images when refreshing the docs) when that is set.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from analogize.cli import main
from analogize.data.corpus import photos
from analogize.images import load_image, resize
from conftest import free_port, warm_edit, write_image

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
TRAINING_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_backbones):
    """A server whose --models-dir offers a tiny SD pipeline ("tiny-sd") and a tiny
    Paint-by-Example checkpoint ("tiny-pbe"), by name."""
    from analogize.tiny_backbones import write_tiny_paint_by_example
    from analogize.web.app import serve

    workdir = tmp_path_factory.mktemp("serve")
    models = tmp_path_factory.mktemp("models")
    (models / "tiny-sd").symlink_to(tiny_backbones["sd"])
    write_tiny_paint_by_example(models / "tiny-pbe")
    server = serve(workdir, "127.0.0.1", free_port(), max_upload_mb=5, models_dir=models, block=False)
    yield server.url, workdir
    server.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
    opened = context.new_page()
    opened.set_default_timeout(30_000)
    opened.goto(server[0])
    opened.wait_for_selector("#learn")
    yield opened
    context.close()


def screenshot(page, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    destination = os.environ.get("ANALOGIZE_SCREENSHOTS")
    if destination:
        shutil.copyfile(path, Path(destination) / f"{name}.png")


def choose(page, elem_id: str, option: str) -> None:
    """Pick `option` in a Gradio dropdown."""
    page.locator(f"#{elem_id} input").click()
    page.locator("li[role=option]", has_text=option).first.click()


def upload(page, elem_id: str, files: list[Path]) -> None:
    page.locator(f"#{elem_id} input[type=file]").set_input_files([str(path) for path in files])


def real_photo(index: int, width: int, height: int) -> np.ndarray:
    """A photo that ships with an installed package (so the screenshots show something real)."""
    return resize(photos()[index].load(), (width, height))


def pair_files(folder: Path, count: int = 3) -> tuple[list[Path], list[Path]]:
    before, after = [], []
    for index in range(count):
        image = real_photo(index, 48, 40)
        before.append(write_image(image, folder / "before" / f"p{index}.png"))
        after.append(write_image(warm_edit(image), folder / "after" / f"p{index}.png"))
    return before, after


def start_training(page, before: list[Path], after: list[Path], method: str, preset: str | None = None,
                   steps: int | None = None) -> None:
    """Upload the pairs on the Teach screen and press Learn."""
    upload(page, "before-files", before)
    upload(page, "after-files", after)
    choose(page, "method", method)
    if preset:
        choose(page, "preset", preset)
    if steps:
        page.locator("#steps input").fill(str(steps))
    page.click("#learn")


def start_pix2pix_training(page, tmp_path: Path, steps: int) -> None:
    """Upload three pairs and learn pix2pix (tiny preset) for `steps` steps."""
    start_training(page, *pair_files(tmp_path / "pairs"), "pix2pix", "tiny", steps)


def open_apply(page, photos: list[Path], edit_label: str) -> None:
    """The Apply screen with `photos` uploaded and the newest edit whose label holds `edit_label`."""
    page.get_by_role("tab", name="Apply").click()
    upload(page, "photos", photos)
    page.locator("#edit-choice input").click()
    page.locator("li[role=option]", has_text=edit_label).first.click()


def wait_for_status(page, text: str, timeout: int = TRAINING_TIMEOUT_MS) -> None:
    page.locator("#training-status", has_text=text).wait_for(timeout=timeout)


def test_teach_apply_paint_and_download_match_the_command_line(page, server, tmp_path):
    start_pix2pix_training(page, tmp_path, steps=12)
    wait_for_status(page, "done")
    progress = page.locator("#training-progress")
    assert progress.get_attribute("value") == progress.get_attribute("max") == "12"
    with page.expect_download() as download:
        page.click("#download-edit")
    edit_path = tmp_path / "downloaded.edit"
    download.value.save_as(edit_path)
    screenshot(page, tmp_path, "web-teach")

    photo_files = [write_image(real_photo(3 + index, 220, 150), tmp_path / "photos" / f"photo{index}.png")
                   for index in range(2)]
    open_apply(page, photo_files, "pix2pix")
    canvas = page.locator("#painter canvas").first
    canvas.wait_for()
    page.wait_for_timeout(500)  # the editor lays the photo out before it takes strokes
    page.click("#painter button[aria-label=Brush]")
    box = canvas.bounding_box()
    # One stroke left of the centre, where the photo is shown.
    page.mouse.move(box["x"] + box["width"] * 0.44, box["y"] + box["height"] * 0.4)
    page.mouse.down()
    for fraction in np.linspace(0.44, 0.48, 6):
        page.mouse.move(box["x"] + box["width"] * fraction, box["y"] + box["height"] * 0.5, steps=3)
    page.mouse.up()
    page.click("#apply")
    page.locator("#compare img").first.wait_for()
    with page.expect_download() as download:
        page.click("#download-all")
    zipped = tmp_path / "results.zip"
    download.value.save_as(zipped)
    web_results = tmp_path / "web-results"
    with zipfile.ZipFile(zipped) as archive:
        archive.extractall(web_results)
    assert sorted(path.name for path in web_results.iterdir()) == ["photo0.png", "photo1.png", "strength-map.png"]

    strength_map = load_image(web_results / "strength-map.png")
    assert 0 < (strength_map > 0).mean() < 0.5  # the stroke, not the whole photo
    cli_results = tmp_path / "cli-results"
    assert main([str(arg) for arg in ["apply", edit_path, *photo_files, "-o", cli_results,
                                      "--strength-map", web_results / "strength-map.png", "--quiet"]]) == 0
    untouched = strength_map.mean(axis=2) == 0  # the map has the first photo's size
    for photo in photo_files:
        from_web, from_cli = load_image(web_results / photo.name), load_image(cli_results / photo.name)
        assert np.array_equal(from_web, from_cli)
        original = load_image(photo)
        assert np.abs(from_web[untouched] - original[untouched]).max() <= 1 / 255 + 1e-6
        assert np.abs(from_web[~untouched] - original[~untouched]).max() > 0.1


def test_an_upload_that_is_not_an_image_shows_the_error_in_the_page(page, tmp_path):
    broken = tmp_path / "pairs"
    for side in ("before", "after"):
        (broken / side).mkdir(parents=True)
        (broken / side / "p0.png").write_text("this is text, not a photo")
    upload(page, "before-files", [broken / "before" / "p0.png"])
    upload(page, "after-files", [broken / "after" / "p0.png"])
    page.click("#learn")
    page.get_by_text("not an image Pillow can read").first.wait_for()
    assert page.locator("#training-status", has_text="running").count() == 0


def test_a_reload_during_training_keeps_its_progress(page, server, tmp_path):
    start_pix2pix_training(page, tmp_path, steps=100_000)
    wait_for_status(page, "running")
    page.wait_for_function("document.querySelector('#training-progress')?.value > 0", timeout=TRAINING_TIMEOUT_MS)
    job = page.locator("#training-status code").inner_text()
    page.reload()
    page.wait_for_selector("#learn")
    wait_for_status(page, job)
    assert "running" in page.locator("#training-status").inner_text()
    assert int(page.locator("#training-progress").get_attribute("value")) > 0
    page.click("#cancel")
    wait_for_status(page, "cancelled")
    page.click("#resume")
    wait_for_status(page, "running")
    page.click("#cancel")
    wait_for_status(page, "cancelled")


def test_a_colour_grade_learned_from_real_pairs_shows_in_the_apply_screen(page, server, tmp_path):
    """The docs' Apply screenshot: colormap learned in the page from real photo pairs of the
    benchmark's `grade`, applied to other real photos, gives the grade's own look."""
    from analogize.data.edits import get_edit
    from analogize.metrics import psnr

    grade = get_edit("grade")
    before = [write_image(real_photo(index, 160, 120), tmp_path / "pairs" / "before" / f"p{index}.png")
              for index in range(4)]
    after = [write_image(grade(load_image(path)), tmp_path / "pairs" / "after" / path.name) for path in before]
    start_training(page, before, after, "colormap")
    wait_for_status(page, "done")
    photos_shown = [write_image(real_photo(5 + index, 360, 240), tmp_path / "photos" / f"photo{index}.png")
                    for index in range(2)]
    open_apply(page, photos_shown, "colormap")
    page.click("#apply")
    page.locator("#compare img").first.wait_for()
    page.locator("#results img").nth(1).wait_for()
    screenshot(page, tmp_path, "web-apply")
    folder = max((server[1] / "apply").iterdir(), key=lambda path: path.stat().st_mtime)
    for photo in photos_shown:
        assert psnr(load_image(folder / "results" / photo.name), grade(load_image(photo))) > 30


def paint_stroke(page, painter: str) -> None:
    """One short horizontal brush stroke through the middle of the painter's canvas."""
    canvas = page.locator(f"#{painter} canvas").first
    canvas.wait_for()
    page.wait_for_timeout(500)
    page.click(f"#{painter} button[aria-label=Brush]")
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.5)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5, steps=4)
    page.mouse.up()


def fill_model_and_steps(page, prefix: str, model: str, steps: int) -> None:
    choose(page, f"{prefix}-base-model", model)
    field = page.locator(f"#{prefix}-steps input[type=number]")
    field.fill(str(steps))
    field.press("Enter")


def test_pixels_screen_edits_where_painted_and_keeps_a_history(page, server, tmp_path):
    photo = write_image(real_photo(1, 96, 64), tmp_path / "photo.png")
    exemplar = write_image(real_photo(2, 96, 64), tmp_path / "exemplar.png")
    page.get_by_role("tab", name="Exemplar (PIXELS)").click()
    page.locator("#pixels-source input[type=file]").set_input_files(str(photo))
    page.locator("#pixels-exemplar input[type=file]").set_input_files(str(exemplar))
    paint_stroke(page, "pixels-painter")
    fill_model_and_steps(page, "pixels", "tiny-sd", 3)
    page.click("#pixels-run")
    page.locator("#pixels-compare img").first.wait_for(timeout=TRAINING_TIMEOUT_MS)
    steps_shown = "(document.querySelector('#pixels-history').innerText.match(/base_model/g) || []).length"
    page.wait_for_function(f"{steps_shown} == 1", timeout=TRAINING_TIMEOUT_MS)
    screenshot(page, tmp_path, "web-pixels")
    page.click("#pixels-again")
    page.wait_for_timeout(500)
    page.click("#pixels-run")
    page.wait_for_function(f"{steps_shown} == 2", timeout=TRAINING_TIMEOUT_MS)
    histories = sorted((server[1] / "edit").glob("*/result.png.history.json"), key=lambda path: path.stat().st_mtime)
    assert [len(json.loads(path.read_text())) for path in histories[-2:]] == [1, 2]


def test_pixels_without_a_base_model_says_why_in_the_page(page, tmp_path):
    photo = write_image(real_photo(1, 48, 32), tmp_path / "photo.png")
    page.get_by_role("tab", name="Exemplar (PIXELS)").click()
    page.locator("#pixels-source input[type=file]").set_input_files(str(photo))
    page.locator("#pixels-exemplar input[type=file]").set_input_files(str(photo))
    page.click("#pixels-run")
    page.get_by_text("this screen builds on a pretrained model").first.wait_for()


def test_paint_by_example_screen_repaints_only_the_painted_region(page, server, tmp_path):
    source = real_photo(1, 96, 64)
    photo = write_image(source, tmp_path / "photo.png")
    exemplar = write_image(real_photo(2, 40, 40), tmp_path / "exemplar.png")
    page.get_by_role("tab", name="Exemplar (Paint by Example)").click()
    page.locator("#pbe-source input[type=file]").set_input_files(str(photo))
    page.locator("#pbe-exemplar input[type=file]").set_input_files(str(exemplar))
    paint_stroke(page, "pbe-painter")
    fill_model_and_steps(page, "pbe", "tiny-pbe", 3)
    page.click("#pbe-run")
    page.locator("#pbe-compare img").first.wait_for(timeout=TRAINING_TIMEOUT_MS)
    screenshot(page, tmp_path, "web-paint-by-example")
    folder = max((server[1] / "edit").glob("*/mask.png"), key=lambda path: path.stat().st_mtime).parent
    painted = load_image(folder / "mask.png")[..., 0] >= 0.5
    result = load_image(folder / "result.png")
    assert painted.any() and not painted.all()
    assert np.abs(result[~painted] - source[~painted]).max() <= 1 / 255 + 1e-6
    assert np.abs(result[painted] - source[painted]).mean() > 0.02


def test_a_server_with_accounts_shows_nothing_but_its_login_until_signed_in(browser, tmp_path):
    from analogize.web.app import serve

    server = serve(tmp_path / "work", "127.0.0.1", free_port(), 5, credentials={"ann": "correct horse"}, block=False)
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.goto(server.url)

        def sign_in(password: str) -> None:
            page.get_by_label("username").fill("ann")  # a failed login clears both fields
            page.get_by_label("password").fill(password)
            page.get_by_role("button", name="Login").click()

        sign_in("wrong")
        page.get_by_text("Incorrect credentials").wait_for()
        assert page.locator("#learn").count() == 0
        sign_in("correct horse")
        page.wait_for_selector("#learn")
        screenshot(page, tmp_path, "web-login")
    finally:
        context.close()
        server.close()
