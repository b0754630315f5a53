"""paint-by-example on tiny random components: the official pipeline's numbers, the mask
convention, paste-back, guidance, the one-token bottleneck, the training recipe's masks and a few
training steps, the model folder round trip, and the `paint` / `train-pbe` commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.measure import label

from analogize.cli import main
from analogize.errors import AnalogizeError
from analogize.methods.paint_by_example import (
    BoxedImages,
    PaintByExampleModel,
    PaintByExampleTask,
    bezier_mask,
    exemplar_pixels,
    grown_box,
    paint,
    starting_model,
    train_paint_by_example,
    training_config,
)
from analogize.tiny_backbones import write_tiny_clip_vision, write_tiny_paint_by_example

from conftest import random_image, write_image

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return write_tiny_paint_by_example(tmp_path_factory.mktemp("pbe") / "model")


@pytest.fixture(scope="module")
def model(checkpoint) -> PaintByExampleModel:
    return PaintByExampleModel.from_pretrained(checkpoint)


def box_mask(height: int, width: int, top: int, left: int, bottom: int, right: int) -> np.ndarray:
    mask = np.zeros((height, width), dtype=np.float32)
    mask[top:bottom, left:right] = 1.0
    return mask


def test_matches_the_official_pipeline(model, checkpoint, monkeypatch):
    """Same weights, noise and exemplar: our sampler gives diffusers' (deprecated) PaintByExamplePipeline's
    image inside the mask — the 9-channel layout, the inverted keep mask, the null token and the
    guidance formula are the official ones, and diffusers' encoder class reads our image_encoder/."""
    from diffusers import DDIMScheduler, PaintByExamplePipeline
    from diffusers.pipelines.deprecated.paint_by_example import PaintByExampleImageEncoder, pipeline_paint_by_example

    # The official pipeline samples the masked photo's latent; ours takes its mean. Compare like with like.
    monkeypatch.setattr(pipeline_paint_by_example, "retrieve_latents", lambda output, generator=None: output.latent_dist.mean)
    official = PaintByExamplePipeline(
        vae=model.vae, unet=model.unet, image_encoder=PaintByExampleImageEncoder.from_pretrained(checkpoint / "image_encoder"),
        # Our grid ends on the clean image (DDIM: its last step goes to ᾱ = 1) and never clips x̂_0.
        scheduler=DDIMScheduler.from_config(model.scheduler.config, set_alpha_to_one=True, clip_sample=False),
        safety_checker=None, feature_extractor=None,
    )
    official.set_progress_bar_config(disable=True)
    photo, exemplar = random_image(32, 32, seed=3), random_image(20, 24, seed=4)
    mask = box_mask(32, 32, 8, 10, 24, 26)
    backbone = model.backbone(CPU, 32)
    ours = paint(model, backbone, photo, mask, exemplar, steps=4, guidance=5.0, seed=7, context=10.0)

    start = torch.randn((1, 4, 16, 16), generator=torch.Generator().manual_seed(7))
    theirs = official(
        example_image=exemplar_pixels(model, exemplar), image=torch.from_numpy(photo.transpose(2, 0, 1))[None] * 2 - 1,
        mask_image=torch.from_numpy(mask)[None, None], height=32, width=32, num_inference_steps=4,
        guidance_scale=5.0, latents=start, output_type="np",
    ).images[0]
    inside = mask > 0.5
    np.testing.assert_allclose(ours[inside], theirs[inside], atol=2e-4)
    assert np.array_equal(ours[~inside], photo[~inside])


def test_only_the_masked_region_changes_on_a_large_photo(model):
    """A photo larger than the model's resolution, a mask in one corner: outside the mask every
    pixel is the photo's own (paste-back), inside it the model painted."""
    photo = random_image(90, 130, seed=5)
    mask = box_mask(90, 130, 60, 100, 85, 126)
    result = paint(model, model.backbone(CPU, 32), photo, mask, random_image(16, 16, seed=6), steps=3)
    assert result.shape == photo.shape
    assert np.array_equal(result[mask < 0.5], photo[mask < 0.5])
    assert np.abs(result[mask > 0.5] - photo[mask > 0.5]).mean() > 0.05


def test_guidance_one_is_the_conditional_branch(model):
    """With guidance 1 the null token is never used: spoiling it changes nothing; with 5 it does."""
    photo, exemplar = random_image(32, 32, seed=1), random_image(32, 32, seed=2)
    mask = box_mask(32, 32, 4, 4, 28, 28)
    backbone = model.backbone(CPU, 32)
    run = lambda guidance: paint(model, backbone, photo, mask, exemplar, steps=3, guidance=guidance, seed=1)  # noqa: E731
    plain, guided = run(1.0), run(5.0)
    null = model.image_encoder.uncond_vector
    original = null.detach().clone()
    try:
        with torch.no_grad():
            null.add_(10.0)
        assert np.array_equal(run(1.0), plain)
        assert not np.allclose(run(5.0), guided)
    finally:
        with torch.no_grad():
            null.copy_(original)


def test_the_condition_is_one_token_per_exemplar(model):
    """The information bottleneck: whatever the exemplar, the UNet attends to exactly one token,
    and it depends on the exemplar."""
    pixels = torch.cat([exemplar_pixels(model, random_image(40, 30, seed=seed)) for seed in range(2)])
    with torch.no_grad():
        tokens = model.image_encoder(pixels)
    assert tokens.shape == (2, 1, model.unet.config.cross_attention_dim)
    assert not torch.allclose(tokens[0], tokens[1])


def test_exemplar_mask_cuts_out_the_object(model):
    """With an exemplar mask the encoder sees the object's box only, its background white."""
    exemplar = random_image(40, 40, seed=3)
    object_mask = box_mask(40, 40, 10, 20, 30, 40)
    expected = exemplar_pixels(model, exemplar[10:30, 20:40])
    assert torch.allclose(exemplar_pixels(model, exemplar, object_mask), expected)
    with pytest.raises(AnalogizeError, match="black everywhere"):
        exemplar_pixels(model, exemplar, np.zeros((40, 40), dtype=np.float32))


@pytest.mark.parametrize("box", [(20, 15, 45, 40), (0, 0, 12, 30), (50, 40, 64, 48)])
def test_bezier_masks_are_one_piece_inside_the_image(box):
    rng = np.random.default_rng(0)
    for _ in range(50):
        grown = grown_box(box, (48, 64), rng, 0.4)
        mask = bezier_mask(box, grown, (48, 64), rng)
        assert mask.shape == (48, 64)
        assert label(mask, connectivity=2).max() == 1
        assert mask[(box[1] + box[3]) // 2, (box[0] + box[2]) // 2]  # it covers the object's middle
        x0, y0, x1, y1 = grown
        outside = np.ones_like(mask)
        outside[max(0, y0 - 4):y1 + 4, max(0, x0 - 4):x1 + 4] = False
        assert not (mask & outside).any()  # no further out than the grown box (plus the jitter)


def boxed_folder(root: Path) -> Path:
    """Three photos, each with a bright square object on a smooth background, and boxes.json."""
    boxes = {}
    for index in range(3):
        photo = np.full((40, 48, 3), 0.2 + 0.2 * index, dtype=np.float32)
        top, left = 8 + 4 * index, 10 + 6 * index
        photo[top:top + 14, left:left + 14] = [0.9, 0.3 + 0.2 * index, 0.1]
        write_image(photo, root / f"photo{index}.png")
        boxes[f"photo{index}.png"] = [[left, top, left + 14, top + 14]]
    (root / "boxes.json").write_text(json.dumps(boxes))
    return root


@pytest.fixture(scope="module")
def sd_and_clip(tmp_path_factory) -> tuple[Path, Path]:
    from analogize.tiny_backbones import write_tiny_backbone

    root = tmp_path_factory.mktemp("start")
    return write_tiny_backbone("sd", root / "sd"), write_tiny_clip_vision(root / "clip")


def test_starting_from_plain_sd_adds_five_zero_channels(sd_and_clip):
    """The widened UNet ignores the 5 new channels at first, so it starts as the SD model it came from."""
    from diffusers import UNet2DConditionModel

    sd, clip = sd_and_clip
    model = starting_model(training_config("tiny", base_model=str(sd), clip_model=str(clip)))
    original = UNet2DConditionModel.from_pretrained(sd, subfolder="unet")
    latent, extra = torch.randn(1, 4, 8, 8), torch.randn(1, 5, 8, 8)
    text = torch.randn(1, 1, 32)
    with torch.no_grad():
        widened = model.unet(torch.cat([latent, extra], dim=1), 500, encoder_hidden_states=text).sample
        expected = original(latent, 500, encoder_hidden_states=text).sample
    assert model.unet.config.in_channels == 9
    torch.testing.assert_close(widened, expected)


def fixed_batch_loss(task: PaintByExampleTask) -> float:
    from accelerate import Accelerator

    losses = []
    for seed in range(4):
        batch = task.batch(np.random.default_rng([99, seed]))
        with torch.no_grad():
            losses.append(training_loss(task, batch))
    return float(np.mean(losses))


def training_loss(task, batch) -> float:
    """The task's loss on `batch` without a step: the step's own computation, with backward and the
    optimizer made no-ops."""
    class NoBackward:
        def backward(self, loss):
            pass

    steps = {name: optimizer.step for name, optimizer in task.optimizers.items()}
    for optimizer in task.optimizers.values():
        optimizer.step = lambda: None
    try:
        return task.training_step(batch, NoBackward())["loss"]
    finally:
        for name, optimizer in task.optimizers.items():
            optimizer.step = steps[name]


def test_training_lowers_the_loss_and_trains_unet_and_mapper_only(sd_and_clip, tmp_path):
    sd, clip = sd_and_clip
    images = BoxedImages.from_folder(boxed_folder(tmp_path / "images"))
    config = training_config("tiny", base_model=str(sd), clip_model=str(clip), steps=20, learning_rate=5e-3,
                             null_probability=0.0, log_with="none")
    before = starting_model(config)
    before_task = PaintByExampleTask(images, config, before, CPU)
    loss_before = fixed_batch_loss(before_task)
    frozen = {name: tensor.clone() for name, tensor in before.vae.state_dict().items()}
    clip_weights = {name: tensor.clone() for name, tensor in before.image_encoder.model.state_dict().items()}
    mapper = {name: tensor.clone() for name, tensor in before.image_encoder.mapper.state_dict().items()}

    trained = train_paint_by_example(images, config, tmp_path / "model", progress=False)
    loss_after = fixed_batch_loss(PaintByExampleTask(images, config, trained, CPU))
    assert loss_after < 0.8 * loss_before
    assert all(torch.equal(trained.vae.state_dict()[name], tensor) for name, tensor in frozen.items())
    assert all(torch.equal(trained.image_encoder.model.state_dict()[name], tensor) for name, tensor in clip_weights.items())
    assert any(not torch.equal(trained.image_encoder.mapper.state_dict()[name], tensor) for name, tensor in mapper.items())


def test_model_folder_round_trip_and_resume(checkpoint, tmp_path):
    """Train 2 steps, stop, resume to 4: the same weights as 4 steps straight; the saved folder
    loads back to the same model."""
    images = BoxedImages.from_folder(boxed_folder(tmp_path / "images"))
    config = lambda steps: training_config("tiny", base_model=str(checkpoint), steps=steps,  # noqa: E731
                                           checkpoint_every=2, log_with="none")
    straight = train_paint_by_example(images, config(4), tmp_path / "straight", progress=False)
    train_paint_by_example(images, config(2), tmp_path / "resumed", progress=False)
    resumed = train_paint_by_example(images, config(4), tmp_path / "resumed", resume=True, progress=False)
    for ours, theirs in ((straight.unet, resumed.unet), (straight.image_encoder, resumed.image_encoder)):
        for (name, tensor), other in zip(ours.state_dict().items(), theirs.state_dict().values()):
            assert torch.equal(tensor, other), name

    loaded = PaintByExampleModel.from_pretrained(straight.save_pretrained(tmp_path / "saved"))
    photo, mask, exemplar = random_image(32, 32, seed=1), box_mask(32, 32, 8, 8, 24, 24), random_image(32, 32, seed=2)
    assert np.array_equal(paint(loaded, loaded.backbone(CPU, 32), photo, mask, exemplar, steps=2),
                          paint(straight, straight.backbone(CPU, 32), photo, mask, exemplar, steps=2))


def test_boxes_file_errors_name_the_file_and_the_fix(tmp_path, assert_clear_error):
    with pytest.raises(AnalogizeError) as missing:
        BoxedImages.from_folder(tmp_path)
    assert_clear_error(missing.value, tmp_path / "boxes.json", "JSON")
    write_image(random_image(8, 8), tmp_path / "a.png")
    (tmp_path / "boxes.json").write_text(json.dumps({"a.png": [[5, 5, 2, 2]]}))
    with pytest.raises(AnalogizeError) as backwards:
        BoxedImages.from_folder(tmp_path)
    assert_clear_error(backwards.value, "a.png", "x0 < x1")
    (tmp_path / "boxes.json").write_text(json.dumps({"b.png": [[0, 0, 2, 2]]}))
    with pytest.raises(AnalogizeError) as absent:
        BoxedImages.from_folder(tmp_path)
    assert_clear_error(absent.value, "b.png", "remove the entry")


def test_paint_command_masks_by_name_box_and_transparency(checkpoint, tmp_path, capsys):
    """A folder of photos: one with NAME_mask.png beside it, one with a transparent hole; --box
    for a single photo. Outside each mask the photo is unchanged; a photo without a mask fails
    alone, with its reason in the summary."""
    from PIL import Image

    photos = tmp_path / "photos"
    first = random_image(40, 48, seed=1)
    write_image(first, photos / "first.png")
    write_image(box_mask(40, 48, 5, 5, 20, 20)[..., None].repeat(3, axis=2), photos / "first_mask.png")
    second = random_image(40, 48, seed=2)
    rgba = np.dstack([(second * 255).round().astype(np.uint8), np.full((40, 48), 255, dtype=np.uint8)])
    rgba[20:35, 25:40, 3] = 0
    Image.fromarray(rgba).save(photos / "second.png")
    write_image(random_image(40, 48, seed=3), photos / "third.png")
    exemplar = write_image(random_image(24, 24, seed=4), tmp_path / "exemplar.png")
    common = ["--exemplar", str(exemplar), "--base-model", str(checkpoint), "--resolution", "32", "--steps", "2", "-q"]

    assert main(["paint", str(photos), "-o", str(tmp_path / "out"), *common]) == 2
    summary = json.loads((tmp_path / "out" / "analogize-apply.json").read_text())
    assert summary["done"] == 2 and [failure["image"] for failure in summary["failed"]] == [str(photos / "third.png")]
    assert "third_mask.png" in summary["failed"][0]["reason"]
    out_first = np.asarray(Image.open(tmp_path / "out" / "first.png"), dtype=np.float32) / 255
    outside = box_mask(40, 48, 5, 5, 20, 20) < 0.5
    assert np.abs(out_first[outside] - first[outside]).max() < 1 / 255 + 1e-6
    out_second = np.asarray(Image.open(tmp_path / "out" / "second.png"), dtype=np.float32) / 255
    assert np.abs(out_second[:20] - second[:20]).max() < 1 / 255 + 1e-6

    assert main(["paint", str(photos / "third.png"), "--box", "10,10,30,30", "-o", str(tmp_path / "boxed"), *common]) == 0
    assert main(["paint", str(photos / "third.png"), "--box", "10,10,90,30", "-o", str(tmp_path / "bad"), *common]) == 2
    assert "must lie inside" in capsys.readouterr().err


def test_train_pbe_command_writes_a_model_paint_reads(sd_and_clip, tmp_path, capsys):
    sd, clip = sd_and_clip
    images = boxed_folder(tmp_path / "images")
    model = tmp_path / "model"
    assert main(["train-pbe", str(images), "-o", str(model), "--base-model", str(sd), "--clip-model", str(clip),
                 "--preset", "tiny", "--steps", "2", "-q"]) == 0
    assert (model / "model_index.json").is_file() and (tmp_path / "model.run" / "losses.csv").is_file()
    assert main(["paint", str(images / "photo0.png"), "--box", "5,5,20,20", "--exemplar", str(images / "photo1.png"),
                 "--base-model", str(model), "--resolution", "32", "--steps", "2", "-o", str(tmp_path / "out"), "-q"]) == 0
    assert main(["train-pbe", str(images), "-o", str(model), "--base-model", str(sd), "--preset", "tiny", "-q"]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["train-pbe", str(images), "-o", str(tmp_path / "other"), "--base-model", str(sd), "--preset",
                 "tiny", "-q"]) == 2
    assert "--clip-model" in capsys.readouterr().err


def test_missing_or_wrong_models_are_one_line_errors(sd_and_clip, tmp_path, assert_clear_error, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(AnalogizeError) as absent:
        PaintByExampleModel.from_pretrained("Fantasy-Studio/Paint-by-Example")
    assert_clear_error(absent.value, "Fantasy-Studio/Paint-by-Example", "hf download")
    sd, clip = sd_and_clip
    with pytest.raises(AnalogizeError) as plain_sd:
        PaintByExampleModel.from_pretrained(sd)
    assert_clear_error(plain_sd.value, sd, "train-pbe")
    with pytest.raises(AnalogizeError) as no_clip:
        starting_model(training_config("tiny", base_model=str(sd)))
    assert_clear_error(no_clip.value, sd, "--clip-model")
